import DaxshareBench
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// perftest's `ib_read_bw`/`ib_write_bw` on the same device, server and client in this machine,
/// each bounded by `timeout`; one retry when perftest cannot produce a report.
struct PerftestRunner {
    let device: String
    let address: String
    var nextPort = 18_515

    static func isInstalled() -> Bool {
        ["ib_read_bw", "ib_write_bw", "timeout"].allSatisfy { which($0) != nil }
    }

    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    mutating func measure(op: BenchOp, size: Int, seconds: Int, txDepth: Int) -> (BenchMeasurement?, String) {
        var log = ""
        for attempt in 1...2 {
            let port = nextPort
            nextPort += 1
            let (mbps, out) = once(op: op, size: size, seconds: seconds, txDepth: txDepth, port: port)
            if let mbps {
                let bytes = UInt64(mbps * 1e6 * Double(seconds))
                let m = BenchMeasurement(bytes: bytes, ops: bytes / UInt64(size), seconds: Double(seconds),
                                    note: attempt > 1 ? "perftest retried once" : nil)
                return (m, log)
            }
            log += "perftest attempt \(attempt) failed:\n\(out.suffix(1500))\n"
        }
        return (nil, log)
    }

    private func once(op: BenchOp, size: Int, seconds: Int, txDepth: Int, port: Int) -> (Double?, String) {
        let tool = Perftest.tool(for: op)
        let bound = String(seconds + 20)
        let serverArgs = Perftest.arguments(device: device, size: size, seconds: seconds, txDepth: txDepth, port: port)
        let clientArgs = Perftest.arguments(device: device, size: size, seconds: seconds, txDepth: txDepth, port: port, server: address)
        guard let server = try? start("timeout", ["-k", "5", bound, tool] + serverArgs) else { return (nil, "cannot start \(tool)") }
        Thread.sleep(forTimeInterval: 1.0)
        guard let client = try? start("timeout", ["-k", "5", bound, tool] + clientArgs) else {
            kill(server.pid, SIGTERM)
            _ = server.finish()
            return (nil, "cannot start \(tool) client")
        }
        let clientOut = client.finish()
        let serverOut = server.finish()
        let text = clientOut + "\n" + serverOut
        if let v = Perftest.averageMBps(in: clientOut, size: size) ?? Perftest.averageMBps(in: serverOut, size: size) {
            return (v, text)
        }
        return (nil, text)
    }

    /// A child started with posix_spawnp (default attributes: what a shell would give it), its
    /// stdout and stderr in a temporary file. (Foundation's Process gave perftest's client a run
    /// that never ended its -D duration.)
    struct Running {
        let pid: pid_t
        let output: String
        func finish() -> String {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            defer { unlink(output) }
            return (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        }
    }

    private func start(_ tool: String, _ args: [String]) throws -> Running {
        let output = NSTemporaryDirectory() + "daxshare-bench-perftest-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        let command = ([tool] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let argv = ["/bin/sh", "-c", "exec \(command) </dev/null >'\(output)' 2>&1"]
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", nil, nil, &cArgs, environ)
        guard rc == 0 else { throw BenchFailure("posix_spawn /bin/sh: \(rc)") }
        return Running(pid: pid, output: output)
    }
}
