/// A security event, typed, with the raw audit records it came from.
///
/// Field names follow the Elastic Common Schema; `ECSEncoder` writes the JSON form and
/// docs/ecs-mapping.md lists every field.
public struct Event: Sendable {
    public var timestamp: AuditTimestamp
    public var kind: EventKind
    public var outcome: Outcome
    public var host: Host
    public var process: Process?
    public var user: User?
    public var file: File?
    /// The initiator of a connection (the peer, for accept).
    public var source: Endpoint?
    /// The target of a connection.
    public var destination: Endpoint?
    public var network: Network?
    /// ECS `error.code`: the errno name of a failed syscall (`EACCES`).
    public var errorCode: String?
    /// ECS `message`: a one-line summary a person can read.
    public var message: String?
    /// ECS `tags`: the audit rule keys that matched.
    public var tags: [String]
    public var audit: Audit?
    /// `herdwatch.loss.*`: for `telemetryLoss` events, what was lost and where.
    public var loss: Loss?
    /// `herdwatch.agent.*`: for `agentHeartbeat` events, the agent's own health.
    public var agentHealth: AgentHealth?
    /// ECS `container.id`, from the process's cgroup.
    public var containerID: String?
    /// ECS `event.dataset`-like origin: `auditd` (default), `proc-connector`, `auth-log`.
    public var module: String = "auditd"
    /// ECS `event.id`: unique per event and the same on every delivery of it, so receivers can
    /// drop duplicates (the agent sets it before spooling).
    public var id: String?
    /// `herdwatch.sampling.*`: set when the event was kept by sampling, so counts can be scaled back.
    public var sampling: Sampling?
    /// `herdwatch.first_seen`: the first execution of this executable on this host (drift from the image).
    public var firstSeen = false
    /// `herdwatch.aggregate.*`: for `telemetryAggregate` events, what was counted instead of sent.
    public var aggregate: Aggregate?
    /// `herdwatch.level.*`: for `levelChange` events, the host's monitoring level before and after.
    public var levelChange: LevelChange?
    /// `herdwatch.response.*`: for `responseAction` events, the server's command and what became of it.
    public var response: ResponseAction?

    public init(timestamp: AuditTimestamp, kind: EventKind, outcome: Outcome = .unknown, host: Host = Host()) {
        self.timestamp = timestamp
        self.kind = kind
        self.outcome = outcome
        self.host = host
        self.tags = []
    }

    /// How a sampled event was chosen: whole process trees are kept or dropped together.
    public struct Sampling: Sendable, Hashable {
        /// The fraction of trees kept (0 < rate <= 1): each kept event stands for 1/rate events.
        public var rate: Double
        /// The entity id the decision was keyed on (the tree's session leader).
        public var treeID: String?
        /// Kept whole although the rate would drop it: a must-keep or first-seen event happened in it.
        public var promoted: Bool

        public init(rate: Double, treeID: String?, promoted: Bool = false) {
            self.rate = rate
            self.treeID = treeID
            self.promoted = promoted
        }
    }

    /// Events of one class counted under one key (an executable, a destination) over a window.
    public struct Aggregate: Sendable, Hashable {
        /// The event class (`process`, `network`, `file`, ...).
        public var eventClass: String
        /// What was counted: the executable, `ip:port`, the path or the action.
        public var key: String
        public var count: Int
        public var windowStart: Int64
        public var windowEnd: Int64

        public init(eventClass: String, key: String, count: Int, windowStart: Int64, windowEnd: Int64) {
            self.eventClass = eventClass
            self.key = key
            self.count = count
            self.windowStart = windowStart
            self.windowEnd = windowEnd
        }
    }

    /// A command from the server as the agent carried it out (or refused it).
    public struct ResponseAction: Sendable, Hashable {
        /// The command's id; nil when a refused command could not be read (a bad signature).
        public var commandID: String?
        /// `level`, `kill`, `block`, `unblock`, `isolate`, `release`.
        public var action: String?
        /// What it acted on: an entity id, an address, a level.
        public var target: String?
        /// `succeeded`, `failed`, `refused`.
        public var status: String
        /// Why it failed or was refused, or what was done.
        public var detail: String?
        /// `refused` only: a stable reason code (`bad-signature`, `expired`, `replayed`, `wrong-host`, ...).
        public var refusal: String?
        public var requestedBy: String?

        public init(
            commandID: String?, action: String?, target: String?, status: String, detail: String?, refusal: String? = nil,
            requestedBy: String? = nil
        ) {
            self.commandID = commandID
            self.action = action
            self.target = target
            self.status = status
            self.detail = detail
            self.refusal = refusal
            self.requestedBy = requestedBy
        }
    }

    /// A change of the host's monitoring level (profile).
    public struct LevelChange: Sendable, Hashable {
        public var previous: String
        public var current: String
        /// `escalation`, `expiry`, `reset`, `restart`.
        public var reason: String
        /// Who asked: `local`, `server`, ...
        public var requestedBy: String?
        /// Milliseconds since the epoch when the level falls back; nil for no end.
        public var expiresAt: Int64?

        public init(previous: String, current: String, reason: String, requestedBy: String? = nil, expiresAt: Int64? = nil) {
            self.previous = previous
            self.current = current
            self.reason = reason
            self.requestedBy = requestedBy
            self.expiresAt = expiresAt
        }
    }

    /// What one event class cost in an interval, before and after the telemetry policy.
    public struct ClassCost: Sendable, Hashable {
        public var eventClass: String
        public var eventsBefore: Int
        public var eventsAfter: Int
        public var bytesBefore: Int
        public var bytesAfter: Int

        public init(eventClass: String, eventsBefore: Int, eventsAfter: Int, bytesBefore: Int, bytesAfter: Int) {
            self.eventClass = eventClass
            self.eventsBefore = eventsBefore
            self.eventsAfter = eventsAfter
            self.bytesBefore = bytesBefore
            self.bytesAfter = bytesAfter
        }
    }

    /// What the agent did and cost in the last interval.
    public struct AgentHealth: Sendable, Hashable {
        public var intervalSeconds: Double
        /// Events per second in the interval, by source (`auditd`, `proc-connector`, `auth-log`, ...).
        public var eventsPerSecond: [String: Double]
        public var eventsTotal: Int
        /// Everything lost since the agent started (telemetry-loss counts summed).
        public var lostTotal: Int
        public var residentBytes: Int
        /// CPU time used in the interval, as a percentage of one core.
        public var cpuPercent: Double
        public var uptimeSeconds: Double
        /// The monitoring level (profile) in force at the heartbeat.
        public var profile: String?
        /// Events and bytes per class in the interval, before and after the telemetry policy.
        public var cost: [ClassCost] = []

        public init(
            intervalSeconds: Double, eventsPerSecond: [String: Double], eventsTotal: Int, lostTotal: Int,
            residentBytes: Int, cpuPercent: Double, uptimeSeconds: Double
        ) {
            self.intervalSeconds = intervalSeconds
            self.eventsPerSecond = eventsPerSecond
            self.eventsTotal = eventsTotal
            self.lostTotal = lostTotal
            self.residentBytes = residentBytes
            self.cpuPercent = cpuPercent
            self.uptimeSeconds = uptimeSeconds
        }
    }

    /// Telemetry the agent could not deliver in a window: counted, and reported as an event itself.
    public struct Loss: Sendable, Hashable {
        /// Which source lost data: `kernel-audit`, `audit-socket`, `assembler`.
        public var source: String
        /// How many records or events were lost in the window.
        public var count: Int
        /// What the count counts: `records` (kernel lost counter), `overflows` (ENOBUFS on the
        /// socket, each one any number of records), `events` (completed before all records came).
        public var unit: String
        /// The window the count covers, in milliseconds since the epoch.
        public var windowStart: Int64
        public var windowEnd: Int64

        public init(source: String, count: Int, unit: String, windowStart: Int64, windowEnd: Int64) {
            self.source = source
            self.count = count
            self.unit = unit
            self.windowStart = windowStart
            self.windowEnd = windowEnd
        }
    }

    public struct Host: Sendable, Hashable {
        public var name: String?
        public init(name: String? = nil) { self.name = name }
    }

    public struct Process: Sendable {
        public var pid: Int64?
        public var parentPID: Int64?
        public var name: String?
        public var executable: String?
        public var args: [String]?
        /// The argument count the kernel reported; may exceed `args.count` when records were lost.
        public var argsCount: Int?
        public var title: String?
        public var workingDirectory: String?
        public var exitCode: Int64?
        /// ECS `process.command_line`: the arguments joined with spaces, or for sudo's USER_CMD the
        /// command sudo ran.
        public var commandLine: String?
        /// ECS `process.entity_id`: stays the same for the life of the process and never names
        /// another one, even after its pid is reused (boot id, pid and start time).
        public var entityID: String?
        /// ECS `process.parent.*` beyond the pid.
        public var parent: Parent?
        /// ECS `process.session_leader.*`: the nearest ancestor (or the process itself) that leads
        /// its session; for a process whose session leader is gone, its topmost ancestor below
        /// init. It roots the process tree that sampling keeps or drops whole.
        public var sessionLeaderEntityID: String?
        public var sessionLeaderPID: Int64?
        /// Entity ids of the ancestors, parent first, bounded (`process.Ext.ancestry`, as Elastic
        /// Endpoint writes it).
        public var ancestry: [String] = []
        public init() {}
    }

    public struct Parent: Sendable, Hashable {
        public var entityID: String?
        public var name: String?
        public var executable: String?
        public var args: [String]?
        public init() {}
    }

    /// A user identity: numeric id and, where known, the name.
    public struct Identity: Sendable, Hashable {
        /// Nil when only the name is known (a login attempt for an account that may not exist).
        public var id: String?
        public var name: String?
        public init(id: String?, name: String? = nil) {
            self.id = id
            self.name = name
        }
    }

    public struct User: Sendable {
        /// `user.*`: the real uid, or for user-space messages the account acted on (`acct=`).
        public var user: Identity?
        public var group: Identity?
        public var effective: Identity?
        public var effectiveGroup: Identity?
        public var saved: Identity?
        public var savedGroup: Identity?
        public var filesystem: Identity?
        public var filesystemGroup: Identity?
        /// The login uid (`auid`), which survives su and sudo.
        public var audit: Identity?
        public init() {}
    }

    public struct File: Sendable {
        public var path: String?
        /// For a rename, the old path; `path` is the new one.
        public var previousPath: String?
        public var inode: String?
        public var device: String?
        /// Octal permission bits, `0755`.
        public var mode: String?
        /// `file` / `dir` / `symlink` / `char` / `block` / `fifo` / `socket`.
        public var type: String?
        public var uid: String?
        public var gid: String?
        public var owner: String?
        public var group: String?
        public init() {}
    }

    public struct Endpoint: Sendable {
        public var ip: String?
        public var port: Int?
        /// A unix socket path or other non-IP address.
        public var address: String?
        /// A host name from a user-space message (`hostname=`).
        public var domain: String?
        public init() {}
    }

    public struct Network: Sendable {
        /// `ipv4`, `ipv6`, `unix`, `netlink`, or the family number.
        public var type: String?
        public var direction: String?
        public init() {}
    }

    /// The audit-specific part: the records as they were written, and what was read from them.
    public struct Audit: Sendable {
        public var sequence: UInt64
        public var node: String?
        public var recordType: String
        public var syscall: String?
        public var arch: String?
        public var result: String?
        /// The audit session id (`ses`), set at login and inherited by the session's processes.
        public var session: String?
        /// The controlling terminal (`tty=pts1`).
        public var tty: String?
        /// Every record of the event, raw.
        public var records: [AuditRecord]
        /// Every PATH record, interpreted.
        public var paths: [Path]
        public init(sequence: UInt64, recordType: String, records: [AuditRecord]) {
            self.sequence = sequence
            self.recordType = recordType
            self.records = records
            self.paths = []
        }
    }

    public struct Path: Sendable {
        public var name: String?
        public var nameType: String?
        public var inode: String?
        public var mode: String?
        public init() {}
    }
}
