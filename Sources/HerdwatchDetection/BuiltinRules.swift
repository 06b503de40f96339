import Foundation

/// The rule pack shipped with herdwatch (Sigma YAML under Sources/HerdwatchDetection/Builtin),
/// written for the events the agent collects. `herdwatch rules check builtin` lists it.
public enum BuiltinRules {
    /// The directory the pack is installed in, beside the executable.
    public static var directory: String? {
        Bundle.module.resourceURL?.appendingPathComponent("Builtin").path
    }

    public static func load() -> SigmaLoader.Result {
        guard let directory else {
            var result = SigmaLoader.Result()
            result.errors.append(RuleError(file: "builtin", reason: "the built-in rule pack is not installed beside the executable"))
            return result
        }
        return SigmaLoader.load(path: directory).resolvingCorrelations()
    }
}
