// swift-tools-version:6.0
// The libFuzzer target over the DaxshareWire decoders. A separate package so that the
// sanitizer flags (-sanitize=fuzzer,address) never touch the main build; it depends on the root
// package by path and builds only the DaxshareWire library from it. Run it with ./run.sh SECONDS.
import PackageDescription

let package = Package(
    name: "DaxshareFuzz",
    dependencies: [.package(name: "daxshare", path: "..")],
    targets: [
        .target(name: "CLibFuzzer"),
        .executableTarget(
            name: "DaxshareWireFuzz",
            dependencies: ["CLibFuzzer", .product(name: "DaxshareWire", package: "daxshare")],
            // No top-level code: the entry point is DaxshareWireFuzz_main (see WireFuzz.swift).
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
