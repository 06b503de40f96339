// swift-tools-version:6.0
import PackageDescription

// One library target per pipeline stage; executables only parse arguments and wire stages.
//
//   HerdwatchEvents   the event model and its ECS JSON encoding
//   HerdwatchAudit    audit record parser, event assembler, interpretation (syscalls, sockaddr, ...)
//   HerdwatchPipeline reading logs (plain, gzip, stdin) through the audit stages to an event sink
//   HerdwatchCollectors  live sources on the host: the kernel's audit netlink socket and its rules
//   HerdwatchPolicy      how much a host keeps: profiles, coherent sampling, escalation, cost
//   HerdwatchShipping    getting events off the host: the disk spool and the sinks (NATS JetStream, syslog)
//   HerdwatchDetection   Sigma rules compiled into matchers, correlations, alerts
//   HerdwatchStore       the central store (SQLite via GRDB, or PostgreSQL via postgres-nio) and its read-only fleet queries
//   HerdwatchCommands    signed commands from the server to an agent (Ed25519), and the agent's checks
//   HerdwatchAgent       the live agent as services (collection, spool, sinks, control socket)
//   HerdwatchServer      `herdwatch server`: ingest, detection, web UI and query API (Hummingbird), response policies and notify actions
//
// `herdwatch-agent` must stay lean: it never links the server's web or database dependencies.
let package = Package(
    name: "herdwatch",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "herdwatch", targets: ["herdwatch"]),
        .executable(name: "herdwatch-agent", targets: ["herdwatch-agent"]),
        .library(name: "HerdwatchEvents", targets: ["HerdwatchEvents"]),
        .library(name: "HerdwatchAudit", targets: ["HerdwatchAudit"]),
        .library(name: "HerdwatchPipeline", targets: ["HerdwatchPipeline"]),
        .library(name: "HerdwatchCollectors", targets: ["HerdwatchCollectors"]),
        .library(name: "HerdwatchPolicy", targets: ["HerdwatchPolicy"]),
        .library(name: "HerdwatchShipping", targets: ["HerdwatchShipping"]),
        .library(name: "HerdwatchDetection", targets: ["HerdwatchDetection"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .target(name: "HerdwatchEvents"),
        .target(name: "HerdwatchAudit", dependencies: ["HerdwatchEvents"]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // zstd from Debian's libzstd-dev, behind HerdwatchCompression's Zstd: the HTTP sink's
        // compressed batches, the server that reads them, and the store's event blocks.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .target(name: "HerdwatchCompression", dependencies: ["CZstd"]),
        .target(
            name: "HerdwatchPipeline",
            dependencies: [
                "HerdwatchEvents", "HerdwatchAudit", "CZlib",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // linux/audit.h, linux/netlink.h, linux/cn_proc.h from linux-libc-dev: constants and structs only.
        .systemLibrary(name: "CLinuxAudit", providers: [.apt(["linux-libc-dev"])]),
        .target(
            name: "HerdwatchCollectors",
            dependencies: [
                "HerdwatchEvents", "HerdwatchAudit", "HerdwatchPipeline", "CLinuxAudit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "HerdwatchPolicy",
            dependencies: ["HerdwatchEvents", .product(name: "Metrics", package: "swift-metrics")]
        ),
        // PCRE2 from Debian's libpcre2-dev: Sigma's `re` values are PCRE.
        .systemLibrary(name: "CPCRE2", pkgConfig: "libpcre2-8", providers: [.apt(["libpcre2-dev"])]),
        .target(
            name: "HerdwatchDetection",
            dependencies: ["HerdwatchEvents", "HerdwatchAudit", "CPCRE2", .product(name: "Yams", package: "Yams")],
            resources: [.copy("Builtin")]
        ),
        // crypt(3) from Debian's libcrypt-dev: the web UI's users file holds /etc/shadow-style hashes.
        .systemLibrary(name: "CCrypt", providers: [.apt(["libcrypt-dev"])]),
        // Server → agent commands: signed by the server, verified by the agent (swift-crypto's Ed25519).
        .target(name: "HerdwatchCommands", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // The central store (server side only: the agent never links it).
        .target(
            name: "HerdwatchStore",
            dependencies: [
                "HerdwatchEvents", "HerdwatchCompression", .product(name: "GRDB", package: "GRDB.swift"),
                // SQLite's C API for the ingest's row binding (GRDB's own SQLite module).
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
                // gettid(2) for a thread's CPU priority (ThreadPriority).
                "CLinuxProcess",
            ]
        ),
        .target(
            name: "HerdwatchServer",
            dependencies: [
                "HerdwatchStore", "HerdwatchShipping", "HerdwatchCompression", "HerdwatchDetection", "HerdwatchPolicy", "HerdwatchCommands",
                "CCrypt",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                // Notify actions (webhook, Slack): server side only, like the web and database dependencies.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The NATS C client from Debian's libnats-dev, behind HerdwatchShipping's JetStream type.
        .systemLibrary(name: "CNATS", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        // OpenSSL from Debian's libssl-dev, behind HerdwatchShipping's TLSContext (the agent's https).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // CRC-32C with the processor's instruction (a header of our own, nothing to link).
        .systemLibrary(name: "CCRC32C"),
        .target(
            name: "HerdwatchShipping",
            dependencies: [
                "HerdwatchEvents", "HerdwatchCompression", "CNATS", "COpenSSL", "CCRC32C", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "herdwatch",
            dependencies: [
                "HerdwatchPipeline", "HerdwatchStore", "HerdwatchServer", "HerdwatchDetection", "HerdwatchEvents", "HerdwatchAgent",
                "HerdwatchCommands",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // pidfd_open(2) and pidfd_send_signal(2) through syscall(2), for the agent's kill action.
        .systemLibrary(name: "CLinuxProcess"),
        // The live agent as services: `herdwatch-agent run`, and `herdwatch run` beside the server.
        .target(
            name: "HerdwatchAgent",
            dependencies: [
                "HerdwatchPipeline", "HerdwatchCollectors", "HerdwatchPolicy", "HerdwatchShipping", "HerdwatchCommands", "CLinuxProcess",
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "herdwatch-agent",
            dependencies: [
                "HerdwatchEvents", "HerdwatchAgent", "HerdwatchPipeline", "HerdwatchCollectors", "HerdwatchPolicy", "HerdwatchShipping",
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // scripts/bench-ship: the shipping path's throughput (spool → NATS JetStream sink).
        .executableTarget(
            name: "herdwatch-bench-ship",
            dependencies: ["HerdwatchShipping", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/ShipBench"
        ),
        // scripts/bench-store: ingest and hunt latency at fleet scale (SQLite and PostgreSQL).
        .executableTarget(name: "herdwatch-bench-store", dependencies: ["HerdwatchStore"], path: "Benchmarks/StoreBench"),
        .testTarget(name: "HerdwatchEventsTests", dependencies: ["HerdwatchEvents"]),
        .testTarget(name: "HerdwatchCompressionTests", dependencies: ["HerdwatchCompression"]),
        .testTarget(name: "HerdwatchCommandsTests", dependencies: ["HerdwatchCommands"]),
        .testTarget(name: "HerdwatchStoreTests", dependencies: ["HerdwatchStore", "HerdwatchEvents", "HerdwatchTestSupport"]),
        .testTarget(
            name: "HerdwatchServerTests",
            dependencies: [
                "HerdwatchServer", "HerdwatchStore", "HerdwatchDetection", "HerdwatchShipping", "HerdwatchCompression", "HerdwatchTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "HerdwatchAuditTests", dependencies: ["HerdwatchAudit", "HerdwatchEvents"]),
        .testTarget(
            name: "HerdwatchPipelineTests",
            dependencies: ["HerdwatchPipeline", "HerdwatchAudit", "HerdwatchEvents"],
            exclude: ["Fixtures"]
        ),
        // Servers the tests start (nats-server), shared by the test targets.
        .target(name: "HerdwatchTestSupport", dependencies: ["HerdwatchCollectors", "HerdwatchCompression"], path: "Tests/HerdwatchTestSupport"),
        .testTarget(name: "HerdwatchShippingTests", dependencies: ["HerdwatchShipping", "HerdwatchEvents", "HerdwatchTestSupport"]),
        .testTarget(name: "HerdwatchPolicyTests", dependencies: ["HerdwatchPolicy", "HerdwatchEvents"]),
        // The agent's host actions (kill, block, isolate) against the real kernel and nftables.
        .testTarget(name: "HerdwatchAgentTests", dependencies: ["HerdwatchAgent", "HerdwatchCollectors", "HerdwatchTestSupport"]),
        .testTarget(
            name: "HerdwatchDetectionTests",
            dependencies: ["HerdwatchDetection", "HerdwatchEvents", "HerdwatchPipeline", "HerdwatchAudit"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "HerdwatchCollectorsTests",
            dependencies: [
                "HerdwatchCollectors", "HerdwatchAudit", "HerdwatchEvents", "HerdwatchPipeline", "HerdwatchShipping",
                "HerdwatchCommands", "HerdwatchTestSupport", .product(name: "Yams", package: "Yams"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
