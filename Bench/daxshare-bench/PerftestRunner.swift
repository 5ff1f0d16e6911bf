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
    /// Operations whose `--odp` runs failed: measured without it from then on.
    var noODP: Set<BenchOp> = []

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

    /// Two tries with `--odp`, then (seen on rxe: ib_write_bw --odp ending in a remote access
    /// error) one without, which the row's note says.
    mutating func measure(op: BenchOp, size: Int, seconds: Int, txDepth: Int) -> (BenchMeasurement?, String) {
        var log = ""
        // Once ODP failed twice for an operation, later points go straight to the plain run.
        let tries = noODP.contains(op) ? [(1, false)] : [(1, true), (2, true), (3, false)]
        for (attempt, odp) in tries {
            if !odp { noODP.insert(op) }
            let port = nextPort
            nextPort += 1
            let (mbps, out) = once(op: op, size: size, seconds: seconds, txDepth: txDepth, port: port, odp: odp)
            if let mbps {
                let bytes = UInt64(mbps * 1e6 * Double(seconds))
                let note = !odp ? "perftest without --odp (ODP run failed)" : attempt > 1 ? "perftest retried once" : nil
                let m = BenchMeasurement(bytes: bytes, ops: bytes / UInt64(size), seconds: Double(seconds), note: note)
                return (m, log)
            }
            log += "perftest attempt \(attempt)\(odp ? "" : " (without --odp)") failed: \(Self.reason(out))\n"
        }
        return (nil, log)
    }

    /// The lines of a failed run that say why.
    static func reason(_ out: String) -> String {
        let lines = out.split(whereSeparator: \.isNewline).map(String.init)
            .filter { $0.contains("ail") || $0.contains("rror") || $0.contains("r^2") || $0.contains("Can't") }
        return lines.isEmpty ? String(out.suffix(300)) : lines.prefix(4).joined(separator: " / ")
    }

    private func once(op: BenchOp, size: Int, seconds: Int, txDepth: Int, port: Int, odp: Bool) -> (Double?, String) {
        let tool = Perftest.tool(for: op)
        let bound = String(seconds + 12)
        let serverArgs = Perftest.arguments(device: device, size: size, seconds: seconds, txDepth: txDepth, port: port, odp: odp)
        let clientArgs = Perftest.arguments(device: device, size: size, seconds: seconds, txDepth: txDepth, port: port,
                                            server: address, odp: odp)
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

    /// A child (`ChildProcess`), its stdout and stderr in a temporary file.
    struct Running {
        let pid: pid_t
        let output: String
        func finish() -> String {
            _ = ChildProcess.wait(pid)
            defer { unlink(output) }
            return (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        }
    }

    private func start(_ tool: String, _ args: [String]) throws -> Running {
        let output = NSTemporaryDirectory() + "daxshare-bench-perftest-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        let command = ([tool] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let argv = ["/bin/sh", "-c", "exec \(command) </dev/null >'\(output)' 2>&1"]
        let pid = try ChildProcess.spawn(argv)
        return Running(pid: pid, output: output)
    }
}
