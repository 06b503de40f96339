import Foundation

/// The rule pack shipped with herdwatch (Sigma YAML under Sources/HerdwatchDetection/Builtin),
/// written for the events the agent collects. `herdwatch rules check builtin` lists it.
public enum BuiltinRules {
    static let bundleName = "herdwatch_HerdwatchDetection.resources"

    /// The directory the pack is installed in: the resource bundle beside the executable (where
    /// `swift build` puts it), or `HERDWATCH_BUILTIN_RULES`. Nil when neither exists; the package's
    /// own `Bundle.module` would stop the process instead.
    public static var directory: String? {
        if let configured = ProcessInfo.processInfo.environment["HERDWATCH_BUILTIN_RULES"] {
            return configured
        }
        let executable = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let bundle = executable.deletingLastPathComponent().appendingPathComponent(bundleName)
        let rules = bundle.appendingPathComponent("Builtin").path
        return FileManager.default.fileExists(atPath: rules) ? rules : nil
    }

    public static func load() -> SigmaLoader.Result {
        guard let directory else {
            var result = SigmaLoader.Result()
            result.errors.append(
                RuleError(
                    file: "builtin",
                    reason: "the built-in rule pack is not installed beside the executable (\(bundleName)/Builtin); copy it there or set HERDWATCH_BUILTIN_RULES"))
            return result
        }
        return SigmaLoader.load(path: directory).resolvingCorrelations()
    }
}
