/// A monitoring level: what to keep of each event class, and which audit rules and process events
/// are active while it is in force.
public struct Profile: Sendable, Equatable {
    public var name: String
    /// Classes not listed are kept in full.
    public var treatments: [EventClass: Treatment]
    /// Audit rule files; nil for the built-in rule set named by `builtinRules`.
    public var ruleFiles: [String]?
    /// `pet` or `cattle`: the agent's built-in rule set used when `ruleFiles` is nil.
    public var builtinRules: String
    /// Proc-connector events while the profile is in force: `none`, `exits`, `all`; nil keeps the
    /// agent's setting.
    public var processEvents: String?

    public init(
        name: String, treatments: [EventClass: Treatment] = [:], ruleFiles: [String]? = nil, builtinRules: String,
        processEvents: String? = nil
    ) {
        self.name = name
        self.treatments = treatments
        self.ruleFiles = ruleFiles
        self.builtinRules = builtinRules
        self.processEvents = processEvents
    }

    public func treatment(for eventClass: EventClass) -> Treatment { treatments[eventClass] ?? .full }

    /// Long-lived, mutable hosts: everything, with the full rule set.
    public static let pet = Profile(name: "pet", builtinRules: "pet")

    /// Immutable hosts: program starts of one process tree in ten (no exit events), connections
    /// counted per destination each minute, the security-critical activity in full (its rules are
    /// few and quiet), and every first execution of a program the image did not run before.
    public static let cattle = Profile(
        name: "cattle",
        treatments: [
            .process: .sample(0.1), .network: .aggregate(intervalMilliseconds: 60_000), .other: .sample(0.1),
        ],
        builtinRules: "cattle", processEvents: "none")

    public static let builtIn: [String: Profile] = ["pet": pet, "cattle": cattle]
}

/// The policy part of the agent's configuration.
public struct PolicyConfiguration: Sendable, Equatable {
    /// Every profile by name: the built-in `pet` and `cattle` and the user's own.
    public var profiles: [String: Profile] = Profile.builtIn
    /// The host's level when nothing has raised it.
    public var baseProfile = "pet"
    /// Classes always kept: at least `EventClass.alwaysKept`.
    public private(set) var mustKeepClasses: Set<EventClass> = EventClass.alwaysKept
    /// Events tagged with one of these audit rule keys are always kept (what detection rules ask for).
    public var mustKeepTags: Set<String> = []
    /// Executions of these programs are always kept.
    public var mustKeepExecutables: Set<String> = []
    /// Flag (and keep) the first execution of each program on the host.
    public var flagsFirstSeen = true

    public init() {}

    /// Adds classes to the always-kept list (it cannot shrink).
    public mutating func keepAlways(_ classes: some Sequence<EventClass>) {
        mustKeepClasses.formUnion(classes)
    }

    /// Every profile keeps the always-kept classes in full; the base profile exists.
    public func validate() throws(PolicyError) {
        guard profiles[baseProfile] != nil else {
            throw PolicyError("profile '\(baseProfile)' is not defined (known: \(profiles.keys.sorted().joined(separator: ", ")))")
        }
        for (name, profile) in profiles.sorted(by: { $0.key < $1.key }) {
            for eventClass in mustKeepClasses.sorted() where profile.treatment(for: eventClass) != .full {
                throw PolicyError(
                    "profile '\(name)': \(eventClass.rawValue) events are always kept; '\(profile.treatment(for: eventClass))' is not allowed for them")
            }
        }
    }
}
