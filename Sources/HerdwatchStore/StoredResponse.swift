/// One response decision and its outcome.
///
/// The server records a response when it decides on one (an alert matched a response policy, or
/// someone acted by hand), and again whenever its status changes: `record(responses:)` replaces it
/// by `id`; `updateResponse(commandID:…)` changes it when the agent answers the signed command
/// it was sent. Read through the `responses` view.
public struct StoredResponse: Sendable, Equatable {
    /// Unique decision id.
    public var id: String
    /// Milliseconds since the epoch, when decided.
    public var time: Int64
    public var host: String
    public var alertID: String?
    public var ruleID: String?
    public var ruleTitle: String?
    /// The response policy's name, or `manual`.
    public var policy: String
    /// `notify`, `raise-level`, `kill`, `block`, `isolate`, `release`, `bounce`.
    public var action: String
    /// What the action is on: an entity id, an address, a level name, a webhook name …
    public var target: String?
    public var dryRun: Bool
    /// `planned`, `dry-run`, `rate-limited`, `sent`, `succeeded`, `failed`, `refused`.
    public var status: String
    public var detail: String?
    /// The id of the signed command sent to the agent, if any.
    public var commandID: String?
    /// Milliseconds since the epoch, the last status change.
    public var updated: Int64

    public init(
        id: String, time: Int64, host: String, alertID: String? = nil, ruleID: String? = nil, ruleTitle: String? = nil,
        policy: String, action: String, target: String? = nil, dryRun: Bool = false, status: String, detail: String? = nil,
        commandID: String? = nil, updated: Int64? = nil
    ) {
        self.id = id
        self.time = time
        self.host = host
        self.alertID = alertID
        self.ruleID = ruleID
        self.ruleTitle = ruleTitle
        self.policy = policy
        self.action = action
        self.target = target
        self.dryRun = dryRun
        self.status = status
        self.detail = detail
        self.commandID = commandID
        self.updated = updated ?? time
    }

    /// The `response_store` columns, in `values` order (both engines).
    static let columns = [
        "id", "time", "host", "alert_id", "rule_id", "rule_title", "policy", "action", "target", "dry_run", "status", "detail",
        "command_id", "updated",
    ]

    /// Columns that hold integers (`dry_run` is 1 or 0 in both engines, as SQLite has no booleans).
    static let integerColumns: Set<String> = ["time", "dry_run", "updated"]

    /// The values of `columns`.
    var values: [ColumnValue] {
        [
            .text(id), .integer(time), .text(host), ColumnValue(alertID), ColumnValue(ruleID), ColumnValue(ruleTitle), .text(policy),
            .text(action), ColumnValue(target), .integer(dryRun ? 1 : 0), .text(status), ColumnValue(detail), ColumnValue(commandID),
            .integer(updated),
        ]
    }

    /// The last of each id: a batch that records one decision twice keeps the later record, as
    /// recording them one after the other would.
    static func lastOfEachID(_ responses: [StoredResponse]) -> [StoredResponse] {
        var position: [String: Int] = [:]
        var kept: [StoredResponse] = []
        for response in responses {
            if let index = position[response.id] {
                kept[index] = response
            } else {
                position[response.id] = kept.count
                kept.append(response)
            }
        }
        return kept
    }
}
