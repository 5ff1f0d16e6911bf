// swift-tools-version:6.0
// daxshare: an SMB Direct-style file server for persistent memory.
//
// Layers, bottom up (no module reaches around the one below it):
//   CRDMA, CPmem, CFuse     C system libraries (libibverbs + librdmacm, libpmem, libfuse3)
//   CLinux                  the one C target for Linux-only calls and constants (openat2,
//                           renameat2, fallocate, leases, delegations, io_uring's ranged fsync,
//                           MAP_SYNC...): _GNU_SOURCE is defined in its .c files only, so Swift
//                           needs no dlsym or syscall numbers
//   DaxshareVerbs           typed Swift over verbs and rdma_cm
//   DaxsharePmem            typed Swift over DAX file mappings and libpmem
//   DaxshareWire            the wire protocol codec (Protocol/PROTOCOL.md)
//   DaxshareTransport       credits and fragmentation over a verbs connection
//   DaxshareServer          exports, sessions, files, layouts
//   DaxshareConfigFile      daxshared.conf: YAML to ServerConfiguration, every problem with its line
//   DaxshareClient          the client library shared by the CLI and the benchmarks
//   DaxshareMount           a FUSE file system (libfuse3's low-level API) over the client library
//   DaxshareService         running under systemd (sd_notify); beside the layers, needs none of them
//   CConcurrencyHooks, DaxshareExecutor   the Swift runtime's global-executor hooks, and the
//                           thread pool daxshared installs there (no periodic wake-ups); beside
//                           the layers, needs none of them but CLinux (to name its threads)
//   daxshared, daxshare, daxshare-bench   the executables
import PackageDescription

let package = Package(
    name: "daxshare",
    products: [
        .executable(name: "daxshared", targets: ["daxshared"]),
        .executable(name: "daxshare", targets: ["daxshare"]),
        .executable(name: "daxshare-bench", targets: ["daxshare-bench"]),
        .library(name: "DaxshareWire", targets: ["DaxshareWire"]),
        .library(name: "DaxshareClient", targets: ["DaxshareClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Counters through swift-metrics; daxshared serves them to Prometheus over a small HTTP server.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
        // daxshared's configuration file (YAML: every node knows its line, for errors).
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // The benchmark's allocations per I/O (preloaded by `make bench`).
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CRDMA",
            pkgConfig: "librdmacm",
            providers: [.apt(["libibverbs-dev", "librdmacm-dev"])]
        ),
        .systemLibrary(
            name: "CPmem",
            pkgConfig: "libpmem",
            providers: [.apt(["libpmem-dev"])]
        ),
        .systemLibrary(
            name: "CFuse",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]
        ),
        // Linux-only calls (dxs_ functions) and the headers Glibc's module map omits
        // (epoll, eventfd, signalfd, openat2). _GNU_SOURCE is set in shim.c, not the header.
        .target(name: "CLinux"),
        .target(
            name: "DaxshareVerbs",
            dependencies: [
                "CRDMA", "CLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DaxsharePmem",
            dependencies: [
                "CPmem", "CLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "DaxshareWire"),
        .target(
            name: "DaxshareTransport",
            dependencies: [
                "DaxshareVerbs", "DaxshareWire",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DaxshareServer",
            dependencies: [
                "DaxshareVerbs", "DaxsharePmem", "DaxshareWire", "DaxshareTransport", "CLinux",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "DaxshareConfigFile",
            dependencies: [
                "DaxshareServer", "DaxshareVerbs", "DaxsharePmem", "DaxshareWire",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "DaxshareClient",
            dependencies: [
                "DaxshareVerbs", "DaxshareWire", "DaxshareTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "DaxshareMount",
            dependencies: [
                "CFuse", "DaxshareClient", "DaxshareWire",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A library rather than part of daxshared so that its tests can import it.
        .target(name: "DaxshareService", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(name: "CConcurrencyHooks"),
        .target(name: "DaxshareExecutor", dependencies: ["CConcurrencyHooks", "CLinux"]),
        .executableTarget(
            name: "daxshared",
            dependencies: [
                "DaxshareServer", "DaxshareConfigFile", "DaxsharePmem", "DaxshareVerbs", "DaxshareWire", "DaxshareService", "DaxshareExecutor", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "daxshare",
            dependencies: [
                "DaxshareClient", "DaxshareMount", "DaxshareVerbs", "DaxshareWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The benchmarks' pure logic (statistics, rows, ratios, table, JSON, SVG), unit-tested on the host.
        .target(
            name: "DaxshareBench",
            dependencies: [.product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "Bench/DaxshareBench"
        ),
        .executableTarget(
            name: "daxshare-bench",
            dependencies: [
                "DaxshareBench", "DaxshareClient", "DaxshareVerbs", "DaxsharePmem", "DaxshareWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "Bench/daxshare-bench"
        ),
        .testTarget(name: "DaxshareWireTests", dependencies: ["DaxshareWire"]),
        .testTarget(name: "DaxshareVerbsTests", dependencies: ["DaxshareVerbs"]),
        .testTarget(name: "DaxsharePmemTests", dependencies: ["DaxsharePmem"]),
        .testTarget(name: "DaxshareTransportTests", dependencies: ["DaxshareTransport", "DaxshareWire"]),
        // DaxshareTransport and DaxshareVerbs for the fake channel's types (no device is opened)
        // and an event loop to run tasks on; DaxsharePmem, SystemPackage and Logging for the
        // file system's own types; Crypto for the client's half of SESSION_SETUP.
        .testTarget(
            name: "DaxshareServerTests",
            dependencies: [
                "DaxshareServer", "DaxshareWire", "DaxshareTransport", "DaxshareVerbs", "DaxsharePmem",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(name: "DaxshareConfigFileTests", dependencies: ["DaxshareConfigFile", "DaxshareServer"]),
        .testTarget(name: "DaxshareClientTests", dependencies: ["DaxshareClient", "DaxshareVerbs"]),
        .testTarget(name: "DaxshareMountTests", dependencies: ["DaxshareMount", "DaxshareClient", "DaxshareWire"]),
        .testTarget(name: "BenchTests", dependencies: ["DaxshareBench"]),
        // The notifier, and `make install` into a temporary root checked with systemd-analyze and man.
        .testTarget(name: "DaxshareServiceTests", dependencies: ["DaxshareService"]),
        .testTarget(name: "DaxshareExecutorTests", dependencies: ["DaxshareExecutor"]),
        // Runs only inside the testbed VM (real rxe, real fsdax): `make test-vm`.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "DaxshareVerbs", "DaxsharePmem", "DaxshareWire", "DaxshareTransport", "DaxshareClient",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ]
)
