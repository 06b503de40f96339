import Foundation
import HerdwatchCommands
import HerdwatchShipping
import Logging
import Synchronization
import Testing

@testable import HerdwatchAgent

/// Log messages at warning and above, kept for the test to read.
private struct WarningRecorder: LogHandler {
    let warnings: Arc
    final class Arc: Sendable { let messages = Mutex<[String]>([]) }

    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level >= .warning { warnings.messages.withLock { $0.append("\(event.message)") } }
    }
}

@Suite struct CommandChannelTests {
    /// `herdwatch run` starts agent and server together: a first request that finds no server yet
    /// is retried quietly; a second failure in a row is a warning, once.
    @Test func aServerNotListeningYetIsAWarningOnlyAtTheSecondFailure() throws {
        let port = try LoopbackListener().port  // closed again: connections are refused
        let recorder = WarningRecorder.Arc()
        var logger = Logger(label: "test") { _ in WarningRecorder(warnings: recorder) }
        logger.logLevel = .trace
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herdwatch-commands-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let channel = CommandChannel(
            client: try HTTPSink.Configuration(url: "http://127.0.0.1:\(port)", token: "test-token-0123456789"),
            verifier: try CommandVerifier(publicKeyBase64: CommandSigner().publicKeyBase64, hostName: "h", acceptedActions: ["level"]),
            ledgerPath: folder.appendingPathComponent("ledger").path, inbox: CommandInbox(), logger: logger)

        func run(for milliseconds: Int64) {
            let until = CommandChannel.now() + milliseconds
            channel.run(shouldStop: { CommandChannel.now() >= until })
        }
        run(for: 150)  // one refused request, then the 250 ms wait cut short
        #expect(recorder.messages.withLock { $0 }.isEmpty)
        run(for: 1_200)  // refused at 0, 250 and 750 ms
        #expect(recorder.messages.withLock { $0 } == ["command channel failing; retrying"])
    }
}
