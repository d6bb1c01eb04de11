// swift-tools-version: 6.1
import PackageDescription

// Layers, each depending only on the ones above it:
//   ParleySIP          SIP message core: model, parser, serializer, stream framing (no sockets)
//   ParleyTransaction  RFC 3261 section 17 transaction state machines (value types, injected clock)
//   ParleyTransport    SwiftNIO transports (UDP, TCP) and the SIP stack that drives the transactions
//   ParleyProxy        the RFC 3261 section 16 stateful proxy core the later roles reuse
//   ParleyDialog       dialogs (RFC 3261 12) and the SDP session a B2BUA owns per leg (RFC 3264 8)
//   ParleyRules        Lua rule engine (depends on the message core only)
//   ParleyAdmin        the admin API on Hummingbird, over the call center's roles
//   parley             the command-line tool
let package = Package(
    name: "Parley",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .library(name: "ParleySIP", targets: ["ParleySIP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(name: "ParleySIP"),
        .target(name: "ParleyTransaction", dependencies: ["ParleySIP"]),
        .target(
            name: "ParleyTransport",
            dependencies: [
                "ParleySIP", "ParleyTransaction",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "ParleyProxy", dependencies: ["ParleyTransport", "ParleyDialog", .product(name: "Logging", package: "swift-log")]),
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        .target(name: "CLuaShim", dependencies: ["CLua"]),
        .target(name: "CHeapStats"),
        .target(
            name: "ParleyRules",
            dependencies: ["ParleySIP", "CLuaShim", .product(name: "Logging", package: "swift-log")]
        ),
        // Call records and the queue log (issue 6), in SQLite through GRDB; of ours, only the
        // message core's byte helpers.
        .target(name: "ParleyRecords", dependencies: ["ParleySIP", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift")]),
        .testTarget(name: "ParleyRecordsTests", dependencies: ["ParleyRecords"]),
        // The dialog layer (RFC 3261 12, RFC 3264 8): dialogs per leg, what crosses a B2BUA, the
        // SDP session Parley owns toward each leg. Below the call center, above transactions.
        .target(
            name: "ParleyDialog",
            dependencies: ["ParleySIP", "ParleyTransaction", "ParleyTransport", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "ParleyDialogTests", dependencies: ["ParleyDialog", "ParleySIP"]),
        // The call path (issue 5): distributor, buffer server, agents, handoff encodings.
        .target(
            name: "ParleyCallCenter",
            dependencies: [
                "ParleySIP", "ParleyTransaction", "ParleyTransport", "ParleyDialog", "ParleyRules", "ParleyRecords",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The admin API (issue 19): agents, queues, calls, rules, events, metrics, the wallboard.
        .target(
            name: "ParleyAdmin",
            dependencies: [
                "ParleyCallCenter", "ParleyRecords", "ParleyRules", "ParleySIP", "ParleyTransport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ParleyAdminTests",
            dependencies: ["ParleyAdmin", "ParleyCallCenter", .product(name: "Hummingbird", package: "hummingbird")]
        ),
        // Configuration (YAML) and the wiring of roles into one process.
        .target(
            name: "ParleyApp",
            dependencies: [
                "ParleyCallCenter", "ParleyDialog", "ParleyRegistration", "ParleyTransport", "ParleyRules", "ParleySIP", "CHeapStats",
                "ParleyAdmin",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .testTarget(
            name: "ParleyCallCenterTests",
            dependencies: ["ParleyCallCenter", "ParleyDialog", "ParleyTransport", "ParleyRules", "ParleySIP",
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(name: "ParleyTransportTests", dependencies: ["ParleyTransport", "ParleySIP", .product(name: "NIOCore", package: "swift-nio"),
                                                         .product(name: "NIOPosix", package: "swift-nio"),
                                                         .product(name: "NIOEmbedded", package: "swift-nio"),
                                                         .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "ParleyAppTests", dependencies: ["ParleyApp", "ParleyCallCenter", "ParleyRecords"]),
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyApp",
                "ParleyAdmin",
                "ParleyRecords",
                "ParleySIP",
                "ParleyRules",
                "ParleyTransport",
                "ParleyProxy",
                "ParleyRegistration",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Allocation counts of the message core (issue 20): CAllocCounter replaces malloc in
        // this executable only.
        .target(name: "CAllocCounter"),
        .executableTarget(
            name: "parley-alloc-counts",
            dependencies: ["ParleySIP", "CAllocCounter"],
            path: "Tests/alloc-counts"
        ),
        .executableTarget(
            name: "parley-bench",
            dependencies: ["ParleySIP"],
            path: "bench/Sources/parley-bench"
        ),
        .testTarget(
            name: "ParleySIPTests",
            dependencies: ["ParleySIP"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "ParleyTransactionTests", dependencies: ["ParleyTransaction"]),
        .target(
            name: "ParleyRegistration",
            dependencies: ["ParleySIP", "ParleyRules", "ParleyTransaction", "ParleyTransport", "ParleyProxy", "ParleyRecords",
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "ParleyRegistrationTests",
            dependencies: ["ParleyRegistration", "ParleyRules", "ParleySIP", "ParleyProxy", "ParleyTransport", "ParleyTransaction",
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(
            name: "ParleyProxyTests",
            dependencies: ["ParleyProxy", "ParleyTransport", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(name: "ParleyRulesTests", dependencies: ["ParleyRules", "ParleySIP"]),
        .executableTarget(
            name: "parley-rules-bench",
            dependencies: ["ParleyRules", "ParleySIP"],
            path: "bench/rules/Sources"
        ),
    ],
    swiftLanguageModes: [.v6]
)
