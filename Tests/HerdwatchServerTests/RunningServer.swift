import HerdwatchStore
import Logging
import ServiceLifecycle
import Synchronization

@testable import HerdwatchServer

/// `herdwatch server` as it runs (its `ServerRuntime` services in a group) on 127.0.0.1 and a port
/// the system picks, for the duration of `test`, which gets the port. The group is shut down after,
/// also when the test throws.
func withRunningServer(settings: ServerRuntime.Settings, store: any FleetStore, _ test: (Int) async throws -> Void) async throws {
    var settings = settings
    settings.port = 0
    let port = Mutex(0)
    settings.onListening = { bound in port.withLock { $0 = bound } }
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    let runtime = try ServerRuntime(settings: settings, store: store, logger: logger)
    let group = ServiceGroup(configuration: .init(services: try await runtime.services().map { .init(service: $0) }, logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        for _ in 0..<100 where port.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(50)) }
        do {
            try await test(port.withLock { $0 })
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}
