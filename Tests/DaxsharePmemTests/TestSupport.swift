import Foundation
import Glibc
import Logging
import Synchronization
import SystemPackage

/// A fresh directory under /tmp (or `$DAXSHARE_PMEM` when asked), removed by `remove()`.
struct TemporaryDirectory {
    let path: FilePath

    init(under root: String = "/tmp") {
        var template = Array("\(root)/daxshare-pmem-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(errno)")
        path = FilePath(String(platformString: template))
    }

    func file(_ name: String) -> FilePath { path.appending(name) }

    func remove() { try? FileManager.default.removeItem(atPath: path.string) }
}

/// A log handler that keeps every message, to check what the code logged.
final class CapturedLogs: @unchecked Sendable {
    private let messages = Mutex<[String]>([])
    var all: [String] { messages.withLock { $0 } }

    func logger() -> Logger {
        Logger(label: "test") { _ in Handler(sink: self) }
    }

    fileprivate func append(_ line: String) { messages.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            sink.append("\(event.message) \(fields.joined(separator: " "))")
        }
    }
}

/// Spawns a program with `posix_spawn`, returning its pid.
func spawn(_ arguments: [String]) -> pid_t {
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let result = argv.withUnsafeBufferPointer {
        posix_spawn(&pid, arguments[0], nil, nil, $0.baseAddress!, environ)
    }
    precondition(result == 0, "posix_spawn failed: \(result)")
    return pid
}

/// Waits for a child; returns its exit status, or nil if `nohang` and it still runs.
func waitForExit(_ pid: pid_t, nohang: Bool = false) -> Int32? {
    var status: Int32 = 0
    while true {
        let result = waitpid(pid, &status, nohang ? WNOHANG : 0)
        if result == -1 && errno == EINTR { continue }
        if result == 0 { return nil }
        precondition(result == pid)
        return (status >> 8) & 0xff
    }
}

/// Runs `body` on a new thread of its own and returns its result; for tests
/// that need a thread whose signal mask they control.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.start()
    }
}
