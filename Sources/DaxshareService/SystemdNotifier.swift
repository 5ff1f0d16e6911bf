#if canImport(Glibc)
import Glibc
#endif
import Logging

/// systemd's service notification protocol, sd_notify(3), written out rather than linked from
/// libsystemd: one datagram of `KEY=VALUE` lines, sent with sendto(2) to the AF_UNIX socket
/// named by `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading '@').
///
/// Without `$NOTIFY_SOCKET` (not started by systemd, or not `Type=notify`) every call does
/// nothing. A notification that cannot be sent is logged and otherwise ignored: the server
/// serves the same either way, and systemd reports the missing READY=1 itself.
public enum SystemdNotifier {
    /// The environment variable systemd sets for `Type=notify` services.
    public static let environmentVariable = "NOTIFY_SOCKET"

    /// READY=1 with a STATUS= line: start-up is complete (systemd then starts what
    /// waits for the unit).
    public static func ready(status: String) {
        notify([("READY", "1"), ("STATUS", status)])
    }

    /// RELOADING=1 with MONOTONIC_USEC=, the CLOCK_MONOTONIC time the reload began: systemd
    /// 253 and later need the timestamp to match this message to the reload it belongs to
    /// (required for `Type=notify-reload`, harmless before). Follow with `readyAfterReload`.
    public static func reloading() {
        notify([("RELOADING", "1"), ("MONOTONIC_USEC", String(monotonicMicroseconds())), ("STATUS", "reloading")])
    }

    /// READY=1 again once a reload finished (with or without errors), with the new status.
    public static func readyAfterReload(status: String) {
        notify([("READY", "1"), ("STATUS", status)])
    }

    /// STOPPING=1: the server is shutting down (systemd shows the unit as deactivating).
    public static func stopping() {
        notify([("STOPPING", "1"), ("STATUS", "stopping")])
    }

    /// STATUS= alone: the one-line status `systemctl status` shows.
    public static func status(_ text: String) {
        notify([("STATUS", text)])
    }

    /// Sends `fields` to `$NOTIFY_SOCKET` if it is set; logs a failure and carries on.
    static func notify(_ fields: [(String, String)]) {
        guard let value = getenv(environmentVariable).map({ String(cString: $0) }), !value.isEmpty else { return }
        do throws(Failure) {
            guard let socket = NotifySocket(environmentValue: value) else { throw .unsupportedAddress(value) }
            try send(message(fields), to: socket)
        } catch {
            Logger(label: "daxshare.systemd")
                .warning("sd_notify \(fields.first.map { "\($0.0)=\($0.1)" } ?? ""): \(error)")
        }
    }

    /// The datagram: one `KEY=VALUE` line per field. A newline inside a value would start a
    /// new assignment, so it becomes a space.
    static func message(_ fields: [(String, String)]) -> String {
        fields.map { key, value in
            "\(key)=\(value.map { $0.isNewline ? " " : $0 }.map(String.init).joined())\n"
        }.joined()
    }

    /// CLOCK_MONOTONIC in microseconds, as systemd's `now(CLOCK_MONOTONIC)` (clock_gettime(2)).
    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    /// Sends one datagram to `socket`: socket(2) AF_UNIX/SOCK_DGRAM, sendto(2), close(2).
    static func send(_ message: String, to socket: NotifySocket) throws(Failure) {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .socket(errno) }
        defer { close(fd) }
        let bytes = Array(message.utf8)
        var address = socket.socketAddress
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                // MSG_NOSIGNAL: a vanished receiver is an error here, never a SIGPIPE.
                sendto(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL), sa, socket.length)
            }
        }
        guard sent >= 0 else { throw .send(errno) }
        guard sent == bytes.count else { throw .shortSend(sent, bytes.count) }
    }

    /// Why a notification was not sent.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// `$NOTIFY_SOCKET` is neither an absolute path nor '@' and a name, or is too long.
        case unsupportedAddress(String)
        case socket(Int32)
        case send(Int32)
        case shortSend(Int, Int)

        public var description: String {
            switch self {
            case let .unsupportedAddress(value): "unsupported \(SystemdNotifier.environmentVariable) '\(value)'"
            case let .socket(code): "socket: \(String(cString: strerror(code)))"
            case let .send(code): "sendto: \(String(cString: strerror(code)))"
            case let .shortSend(sent, total): "sendto sent \(sent) of \(total) bytes"
            }
        }
    }
}

/// The address in `$NOTIFY_SOCKET`, as sd_notify(3) reads it: an absolute path to a socket
/// file, or '@' and a name in the abstract namespace (unix(7): sun_path starts with a NUL and
/// the name is the rest of the given length, with no terminator).
struct NotifySocket: Equatable {
    /// The bytes of sun_path that matter: the path and its NUL, or a NUL and the abstract name.
    let pathBytes: [UInt8]

    /// `sun_path`'s capacity (108 on Linux).
    static let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)

    init?(environmentValue value: String) {
        let utf8 = Array(value.utf8)
        switch utf8.first {
        case UInt8(ascii: "/"): pathBytes = utf8 + [0]
        case UInt8(ascii: "@") where utf8.count > 1: pathBytes = [0] + utf8.dropFirst()
        default: return nil  // relative paths and vsock: addresses (systemd 254+) are not ours
        }
        guard pathBytes.count <= Self.capacity, !utf8.contains(0) else { return nil }
    }

    /// The length passed to sendto(2): through the path's NUL, or exactly through the abstract
    /// name (a longer length would make the trailing zeros part of the name).
    var length: socklen_t {
        socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count)
    }

    var socketAddress: sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        return address
    }
}
