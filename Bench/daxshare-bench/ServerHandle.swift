import DaxshareBench
import Foundation

/// The daxshared the client modes talk to: one this process started (on a fresh export on the
/// fsdax mount, with a fresh secret) or one given with --url (then its pid, if given, for CPU).
// @unchecked: set up once before the run, read after.
final class ServerHandle: @unchecked Sendable {
    let host: String
    let port: UInt16
    let export: String
    let secretFile: String
    let pid: Int32?
    private let process: Process?
    private let workDirectory: String?
    let exportDirectory: String?

    /// An existing server.
    init(host: String, port: UInt16, export: String, secretFile: String, pid: Int32?) {
        self.host = host
        self.port = port
        self.export = export
        self.secretFile = secretFile
        self.pid = pid
        self.process = nil
        self.workDirectory = nil
        self.exportDirectory = nil
    }

    /// Starts `daxshared` and waits for its "listening" line.
    init(binary: String, host: String, port: UInt16, pmemDirectory: String, extraArguments: [String] = []) throws {
        let fm = FileManager.default
        guard fm.isExecutableFile(atPath: binary) else {
            throw BenchFailure("no daxshared at \(binary) (build it: swift build --product daxshared, or pass --daxshared)")
        }
        let work = NSTemporaryDirectory() + "daxshare-bench-\(getpid())-\(port)"
        try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
        let exportDir = "\(pmemDirectory)/bench-export-\(getpid())-\(port)"
        try fm.createDirectory(atPath: exportDir, withIntermediateDirectories: true)
        var key = [UInt8](repeating: 0, count: 32)
        for i in key.indices { key[i] = UInt8.random(in: 0...255) }
        let secret = work + "/secret"
        _ = fm.createFile(atPath: secret, contents: Data(key), attributes: [.posixPermissions: 0o600])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--listen", "\(host):\(port)", "--export", "bench=\(exportDir)", "--secret-file", secret,
                       "--log-level", "warning"] + extraArguments
        let out = Pipe()
        p.standardOutput = out
        _ = fm.createFile(atPath: work + "/server.log", contents: nil)
        p.standardError = FileHandle(forWritingAtPath: work + "/server.log")
        try p.run()
        var bytes: [UInt8] = []
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !bytes.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { if !p.isRunning { break }; continue }
            bytes += chunk
        }
        guard String(decoding: bytes, as: UTF8.self).contains("listening") else {
            if p.isRunning { p.terminate() }
            let log = (try? String(contentsOfFile: work + "/server.log", encoding: .utf8)) ?? ""
            throw BenchFailure("daxshared did not start: \(log.suffix(500))")
        }
        self.host = host
        self.port = port
        self.export = "bench"
        self.secretFile = secret
        self.pid = p.processIdentifier
        self.process = p
        self.workDirectory = work
        self.exportDirectory = exportDir
    }

    /// user + system CPU seconds of the server process, from /proc/PID/stat.
    func cpuSeconds() -> Double? {
        guard let pid, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let ticks = ProcStat.cpuTicks(statLine: text) else { return nil }
        return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// SIGTERM and clean-up of what this process created.
    func stop() {
        guard let process else { return }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if let d = exportDirectory { try? FileManager.default.removeItem(atPath: d) }
        if let w = workDirectory { try? FileManager.default.removeItem(atPath: w) }
    }
}
