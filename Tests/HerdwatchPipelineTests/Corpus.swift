import Foundation
import HerdwatchPipeline
import Logging

/// Locations of the package and of the shared third-party corpus beside the checkout.
enum Corpus {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let auditLogs = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus/audit-logs")
    static let fixtures = packageRoot.appendingPathComponent("Tests/HerdwatchPipelineTests/Fixtures")

    /// Every `.log` file of the corpus, as paths relative to `auditLogs`, sorted.
    static func logFiles() -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: auditLogs.path) else { return [] }
        var files: [String] = []
        while let path = enumerator.nextObject() as? String {
            if path.hasSuffix(".log") { files.append(path) }
        }
        return files.sorted()
    }

    static func temporaryFile(_ name: String) -> String {
        NSTemporaryDirectory() + "herdwatch-test-\(getpid())-\(name)"
    }

    /// Replays `inputs` to a temporary file and returns the statistics and the output lines.
    static func replay(
        _ inputs: [String], configure: (inout Replay.Configuration) -> Void = { _ in }
    ) throws -> (PipelineStatistics, [String], failedInputs: Int) {
        var configuration = Replay.Configuration()
        configuration.hostName = nil
        configure(&configuration)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let path = temporaryFile(UUID().uuidString + ".jsonl")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (statistics, failed): (PipelineStatistics, Int)
        do {
            let output = try OutputFile(path: path)
            (statistics, failed) = try Replay(configuration: configuration, logger: logger).run(inputs: inputs, output: output)
        }
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        return (statistics, lines, failed)
    }
}
