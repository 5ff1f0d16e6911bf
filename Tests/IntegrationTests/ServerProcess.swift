import Foundation
import Testing

/// A real `daxshared` process serving a fresh export on the fsdax mount, as a
/// user would start it. Stopped with SIGTERM, and its exit status checked.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let port: UInt16
    let exportDir: String
    let secretFile: String
    let logFile: String
    /// Where the configuration file is (written only when started with one).
    let configPath: String
    private let output = Pipe()

    /// Where `daxshared` and `daxshare` are: $DAXSHARE_BIN_DIR if set (a build in another
    /// scratch path), else the repository's `.build/debug`.
    static let binDir = ProcessInfo.processInfo.environment["DAXSHARE_BIN_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/debug").path

    /// Ports are per test so servers of different tests never meet.
    /// `restarting` starts a new server on the export, secret and port of one
    /// that was stopped or killed. With `configFile`, the server is started with `--config` and
    /// that text, in which {LISTEN}, {ADDR}, {EXPORT}, {SECRET} and {DIR} (a scratch directory) are
    /// replaced, instead of the flags.
    init(name: String, port: UInt16, readOnly: Bool = false, extraExports: [String] = [], secret: String = "s3cret-\(UUID())",
         restarting previous: ServerProcess? = nil, arguments: [String] = [], configFile: String? = nil,
         environment: [String: String] = [:]) throws {
        self.port = port
        exportDir = try previous?.exportDir ?? Testbed.pmemPath("export-\(name)")
        try FileManager.default.createDirectory(atPath: exportDir, withIntermediateDirectories: true)
        let dir = NSTemporaryDirectory() + "daxshare-it-\(name)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        secretFile = previous?.secretFile ?? dir + "/secret"
        logFile = dir + "/server\(previous == nil ? "" : "-restarted").log"
        if previous == nil {
            FileManager.default.createFile(atPath: secretFile, contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
        }
        FileManager.default.createFile(atPath: logFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binDir + "/daxshared")
        configPath = dir + "/daxshared.conf"
        if let configFile {
            let text = configFile.replacingOccurrences(of: "{LISTEN}", with: "\(try Testbed.address):\(port)")
                .replacingOccurrences(of: "{ADDR}", with: try Testbed.address)
                .replacingOccurrences(of: "{EXPORT}", with: exportDir).replacingOccurrences(of: "{SECRET}", with: secretFile)
                .replacingOccurrences(of: "{DIR}", with: dir)
            try text.write(toFile: configPath, atomically: true, encoding: .utf8)
            process.arguments = ["--config", configPath] + arguments
        } else {
            process.arguments = [
                "--listen", "\(try Testbed.address):\(port)", "--export", "data=\(exportDir)\(readOnly ? ":ro" : "")",
                "--secret-file", secretFile, "--log-level", "info",
            ] + extraExports.flatMap { ["--export", $0] } + arguments
        }
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: logFile)
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        try process.run()
        // The server prints its address once it listens.
        let line = try readLine(timeout: 20)
        guard line.contains("listening") else { throw TestbedError.missing("daxshared start-up line, got '\(line)'") }
    }

    /// What daxshared printed after its start-up line (the metrics address), a line at a time.
    private var pending: [UInt8] = []

    func readLine(timeout: TimeInterval) throws -> String {
        let handle = output.fileHandleForReading
        var bytes = pending
        defer {
            if let nl = bytes.firstIndex(of: 0x0A) { pending = Array(bytes[(nl + 1)...]) } else { pending = [] }
        }
        if let nl = bytes.firstIndex(of: 0x0A) { return String(decoding: bytes[..<nl], as: UTF8.self) }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { if !process.isRunning { break }; continue }
            bytes += chunk
            if bytes.contains(0x0A) { break }
        }
        return String(decoding: bytes.prefix { $0 != 0x0A }, as: UTF8.self)
    }

    /// SIGHUP: the server rereads its configuration.
    func hangUp() { kill(process.processIdentifier, SIGHUP) }

    var url: String { get throws { "daxshare://\(try Testbed.address):\(port)/data" } }

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// SIGTERM, then the exit status (0 is a clean stop).
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    /// SIGKILL: no clean-up of any kind, as in a crash.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var secret: [UInt8] { get throws { Array(try Data(contentsOf: URL(fileURLWithPath: secretFile))) } }

    deinit { if process.isRunning { process.terminate() } }
}

/// Runs a command to its end; returns status, stdout and stderr.
@discardableResult
func run(_ executable: String, _ arguments: [String], stdin: Data? = nil) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let input = Pipe()
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
