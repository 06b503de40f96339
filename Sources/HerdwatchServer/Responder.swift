import Foundation
import HerdwatchCommands
import HerdwatchDetection
import HerdwatchStore
import Logging
import ServiceLifecycle
import Synchronization

/// Automated response: every alert meets the response policies; each matching policy's actions
/// run (unless rate-limited or dry-run), and every decision and outcome is recorded (the
/// `responses` view). Actions on a host travel as signed commands (`CommandIssuer`); the agent's
/// `response-action` events, stored like any event, complete the record (`observe`).
///
/// Alerts are handed over without waiting (`respond(to:)`); the service runs each alert's actions
/// concurrently, so a slow webhook or bounce never holds up ingest or another alert.
public final class Responder: Service, Sendable {
    private let configuration: ResponseConfiguration
    private let issuer: CommandIssuer
    private let store: any FleetStore
    private let hostTags: [String: HostTags]
    private let notifier: Notifier
    private let logger: Logger
    private let alerts: AsyncStream<(Alert, StoredAlert)>
    private let input: AsyncStream<(Alert, StoredAlert)>.Continuation
    /// Times each policy ran for each host (`policy host`), for the rate limits.
    private let history = Mutex<[String: [Int64]]>([:])

    public init(
        configuration: ResponseConfiguration, issuer: CommandIssuer, store: any FleetStore, hostTags: [String: HostTags],
        notifier: Notifier, logger: Logger
    ) {
        self.configuration = configuration
        self.issuer = issuer
        self.store = store
        self.hostTags = hostTags
        self.notifier = notifier
        self.logger = logger
        (alerts, input) = AsyncStream.makeStream(of: (Alert, StoredAlert).self, bufferingPolicy: .bufferingNewest(100_000))
    }

    public var policyCount: Int { configuration.policies.count }

    /// Queues alerts (and the same alerts as stored) for the policies; returns at once.
    public func respond(to alerts: [Alert], stored: [StoredAlert]) {
        for pair in zip(alerts, stored) { input.yield(pair) }
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for await (alert, stored) in alerts.cancelOnGracefulShutdown() {
                group.addTask { await self.handle(alert, stored: stored) }
            }
        }
    }

    /// Runs the policies for one alert; returns the responses recorded (for tests).
    @discardableResult
    func handle(
        _ alert: Alert, stored: StoredAlert? = nil, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
    ) async -> [StoredResponse] {
        let host = alert.host ?? ""
        let stored = stored ?? DetectionStage.stored(alert)
        var recorded: [StoredResponse] = []
        for policy in configuration.policies where policy.matches(alert, hostTags: hostTags[host]?.tagText) {
            let limited = !admit(policy, host: host, now: now)
            for (index, action) in policy.actions.enumerated() {
                var response = StoredResponse(
                    id: "\(stored.id)|\(policy.name)|\(index)", time: now, host: host, alertID: stored.id, ruleID: alert.ruleID,
                    ruleTitle: alert.ruleTitle, policy: policy.name, action: action.name, target: target(of: action, alert: alert),
                    dryRun: policy.dryRun, status: "planned")
                if limited {
                    response.status = "rate-limited"
                    response.detail = "more than \(policy.rateLimit.maximum) in \(policy.rateLimit.seconds) s for this host"
                } else if policy.dryRun {
                    response.status = "dry-run"
                    response.detail = "would \(describe(action, alert: alert))"
                } else {
                    let (outcome, isRecorded) = await perform(action, alert: alert, stored: stored, policy: policy, response: response)
                    response = outcome
                    // A command's record is written before it is sent; writing it again could
                    // overwrite the agent's report, which may already be in.
                    if isRecorded {
                        recorded.append(response)
                        continue
                    }
                }
                await record(response)
                recorded.append(response)
            }
        }
        return recorded
    }

    /// The agents' reports on commands (`response-action` events among the events just stored, as
    /// detection parsed them): each completes its response record; a refusal raises an alert, since
    /// a command that fails its checks is either a fault or someone forging the channel.
    func observe(_ events: [JSONSubject]) async -> [Alert] {
        var raised: [Alert] = []
        for event in events {
            let object = event.object
            guard (object["event"] as? [String: Any])?["action"] as? String == "response-action",
                let herdwatch = object["herdwatch"] as? [String: Any], let report = herdwatch["response"] as? [String: Any],
                let status = report["status"] as? String
            else { continue }
            let host = (object["host"] as? [String: Any])?["name"] as? String
            let detail = report["detail"] as? String
            let time = event.timeMilliseconds > 0 ? event.timeMilliseconds : Int64(Date().timeIntervalSince1970 * 1000)
            if let id = report["command_id"] as? String {
                do {
                    try await store.updateResponse(commandID: id, status: status, detail: detail, time: time)
                } catch {
                    logger.error("response not updated", metadata: ["command": "\(id)", "error": "\(error)"])
                }
            }
            if status == "refused" {
                logger.warning("agent refused a command", metadata: ["host": "\(host ?? "")", "reason": "\(detail ?? "")"])
                let event = (object["event"] as? [String: Any])?["id"] as? String
                raised.append(
                    Alert(
                        ruleID: "herdwatch-command-refused", ruleTitle: "Agent Refused A Server Command", level: .high,
                        tags: ["attack.defense-evasion"], ruleFile: "server response channel", correlation: nil, host: host,
                        timeMilliseconds: time, eventIDs: [event], entityID: nil, pid: nil, executable: nil,
                        commandLine: detail.map { "\(report["refusal"] as? String ?? "refused"): \($0)" }, userName: nil, recordType: nil))
            }
        }
        return raised
    }

    // MARK: Actions

    /// The response after the action, and whether it is already recorded (commands are).
    private func perform(
        _ action: ResponsePolicy.Action, alert: Alert, stored: StoredAlert, policy: ResponsePolicy, response: StoredResponse
    ) async -> (StoredResponse, Bool) {
        var response = response
        let host = alert.host ?? ""
        let requestedBy = "policy \(policy.name)"
        func send(_ name: String, _ arguments: [String: String]) async {
            let command = issuer.prepare(host: host, action: name, arguments: arguments, requestedBy: requestedBy, now: response.time)
            response.commandID = command.id
            response.status = "sent"
            response.detail = "signed command to the agent"
            // Recorded before it is sent: the agent's report may come back within milliseconds.
            await record(response)
            issuer.send(command)
        }
        switch action {
        case .notify(let target):
            let outcome = await notifier.send(
                AlertNotification(
                    alert: stored, policy: policy.name, hostTags: hostTags[host]?.tagText.split(separator: ",").map(String.init) ?? [],
                    dryRun: policy.dryRun, actions: policy.actions.map(\.name)),
                to: target)
            response.status = outcome.succeeded ? "succeeded" : "failed"
            response.detail = outcome.detail
        case .raise(let level, let seconds):
            await send("level", ["level": level, "seconds": String(seconds)])
        case .kill:
            guard let entity = alert.entityID else { return (failed(response, "the alert names no process (no entity id)"), false) }
            await send("kill", ["entity_id": entity])
        case .block(let seconds):
            guard let address = alert.destination else { return (failed(response, "the alert's event has no remote address"), false) }
            await send("block", ["address": address, "seconds": String(seconds)])
        case .isolate(let seconds):
            await send("isolate", seconds.map { ["seconds": String($0)] } ?? [:])
        case .bounce(let command, let timeout):
            let result = await Bounce.run(
                command, host: host, tags: hostTags[host] ?? [:], alert: stored, policy: policy.name, timeoutSeconds: timeout)
            response.status = result.succeeded ? "succeeded" : "failed"
            response.detail = result.detail
        }
        if response.commandID != nil { return (response, true) }
        response.updated = max(response.updated, Int64(Date().timeIntervalSince1970 * 1000))
        return (response, false)
    }

    private func failed(_ response: StoredResponse, _ why: String) -> StoredResponse {
        var response = response
        response.status = "failed"
        response.detail = why
        return response
    }

    private func target(of action: ResponsePolicy.Action, alert: Alert) -> String? {
        switch action {
        case .notify(let target): target.kind
        case .raise(let level, _): level
        case .kill: alert.entityID
        case .block: alert.destination
        case .isolate: alert.host
        case .bounce(let command, _): command
        }
    }

    private func describe(_ action: ResponsePolicy.Action, alert: Alert) -> String {
        switch action {
        case .notify(let target): "notify (\(target.kind))"
        case .raise(let level, let seconds): "raise the level to \(level) for \(seconds) s"
        case .kill: "kill \(alert.entityID ?? "the alert's process")"
        case .block(let seconds): "block \(alert.destination ?? "the remote address") for \(seconds) s"
        case .isolate(let seconds): "isolate the host" + (seconds.map { " for \($0) s" } ?? "")
        case .bounce(let command, _): "run \(command)"
        }
    }

    /// True when the policy may act for this host now (and counts it).
    private func admit(_ policy: ResponsePolicy, host: String, now: Int64) -> Bool {
        history.withLock { history in
            let key = "\(policy.name) \(host)"
            var times = history[key, default: []].filter { $0 > now - Int64(policy.rateLimit.seconds) * 1000 }
            defer { history[key] = times }
            guard times.count < policy.rateLimit.maximum else { return false }
            times.append(now)
            return true
        }
    }

    private func record(_ response: StoredResponse) async {
        do {
            try await store.record(responses: [response])
        } catch {
            logger.error("response not recorded", metadata: ["id": "\(response.id)", "error": "\(error)"])
        }
        logger.notice(
            "response",
            metadata: [
                "policy": "\(response.policy)", "action": "\(response.action)", "host": "\(response.host)", "status": "\(response.status)",
                "target": "\(response.target ?? "")",
            ])
    }
}

/// The bounce action: an operator's program (the cloud CLI that terminates and replaces an
/// instance, a ticket, a page) run with the host's identity in its environment and the host name
/// as its argument: HERDWATCH_HOST, HERDWATCH_HOST_TAGS (`env=prod,role=web`), HERDWATCH_TAG_<KEY>,
/// HERDWATCH_ALERT_ID, HERDWATCH_RULE_ID, HERDWATCH_RULE_TITLE, HERDWATCH_LEVEL, HERDWATCH_ENTITY_ID,
/// HERDWATCH_POLICY. Exit 0 is success. It runs under coreutils' `timeout`, in a process group of
/// its own, so that at its timeout the whole group is stopped (SIGTERM, then SIGKILL 5 s later),
/// whatever it started.
enum Bounce {
    static func run(
        _ path: String, host: String, tags: HostTags, alert: StoredAlert, policy: String, timeoutSeconds: Int
    ) async -> (succeeded: Bool, detail: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--kill-after=5", "\(timeoutSeconds)", path, host]
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        environment["HERDWATCH_HOST"] = host
        environment["HERDWATCH_HOST_TAGS"] = tags.tagText
        for (key, value) in tags {
            let name = key.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }
            environment["HERDWATCH_TAG_\(String(name))"] = value
        }
        environment["HERDWATCH_ALERT_ID"] = alert.id
        environment["HERDWATCH_RULE_ID"] = alert.ruleID
        environment["HERDWATCH_RULE_TITLE"] = alert.ruleTitle
        environment["HERDWATCH_LEVEL"] = alert.level
        environment["HERDWATCH_ENTITY_ID"] = alert.entityID ?? ""
        environment["HERDWATCH_POLICY"] = policy
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let (exit, exited) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { process in
            exited.yield(process.terminationStatus)
            exited.finish()
        }
        do {
            try process.run()
        } catch {
            return (false, "cannot run /usr/bin/timeout for \(path)")
        }
        try? output.fileHandleForWriting.close()
        // Read to the end (the program and whatever it started closing the pipe), keeping the
        // last 1 KiB for the record; reading all along means a talkative program never blocks.
        let tail: [UInt8] = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var bytes: [UInt8] = []
                while case let data = output.fileHandleForReading.availableData, !data.isEmpty {
                    bytes += data
                    if bytes.count > 4096 { bytes.removeFirst(bytes.count - 1024) }
                }
                continuation.resume(returning: Array(bytes.suffix(1024)))
            }
        }
        var exitStatus: Int32?
        for await code in exit { exitStatus = code }
        let text = String(decoding: tail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let status = exitStatus else { return (false, "\(path) \(host): no exit status") }
        let reason =
            switch (process.terminationReason, status) {
            case (.uncaughtSignal, _): "killed by signal \(status)"
            case (_, 124), (_, 137): "stopped after its timeout of \(timeoutSeconds) s"
            case (_, 126), (_, 127): "cannot run (exit \(status): missing or not executable)"
            default: "exit \(status)"
            }
        return (status == 0 && process.terminationReason == .exit, "\(path) \(host): \(reason)" + (text.isEmpty ? "" : ": \(text)"))
    }
}
