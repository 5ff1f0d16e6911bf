#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 socket address as rdma_cm takes it (`struct sockaddr_storage`).
public struct SocketAddress: Sendable, CustomStringConvertible {
    var storage: sockaddr_storage

    /// Resolves `host` (numeric or a name, via `getaddrinfo`) with `port`.
    public init(host: String, port: UInt16) throws(VerbsError) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let h = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard getaddrinfo(h, String(port), &hints, &result) == 0, let ai = result else {
            throw .badAddress(host)
        }
        defer { freeaddrinfo(result) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: ai.pointee.ai_addr, count: Int(ai.pointee.ai_addrlen)))
        }
        self.storage = storage
    }

    init(copying sa: UnsafeMutablePointer<sockaddr>) {
        var storage = sockaddr_storage()
        let len = sa.pointee.sa_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: len)) }
        self.storage = storage
    }

    /// Splits `HOST[:PORT]` (IPv6 as `[ADDR]:PORT`), using `defaultPort` when
    /// no port is given.
    public static func parse(_ text: String, defaultPort: UInt16) throws(VerbsError) -> (host: String, port: UInt16) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .badAddress(text) }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (host, defaultPort) }
            guard rest.first == ":", let p = UInt16(rest.dropFirst()) else { throw .badAddress(text) }
            return (host, p)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1 where !text.isEmpty: return (text, defaultPort)
        case 2 where !parts[0].isEmpty:
            guard let p = UInt16(parts[1]) else { throw .badAddress(text) }
            return (String(parts[0]), p)
        default:
            throw .badAddress(text)
        }
    }

    public var port: UInt16 {
        withUnsafeBytes(of: storage) { raw in
            let family = raw.load(as: sa_family_t.self)
            if family == sa_family_t(AF_INET6) { return UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port) }
            return UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
        }
    }

    public var host: String {
        withUnsafeBytes(of: storage) { raw -> String in
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            let family = raw.load(as: sa_family_t.self)
            if family == sa_family_t(AF_INET6) {
                var a = raw.load(as: sockaddr_in6.self).sin6_addr
                inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
            } else {
                var a = raw.load(as: sockaddr_in.self).sin_addr
                inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
            }
            return String(cString: buf)
        }
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    func withSockaddr<R>(_ body: (UnsafeMutablePointer<sockaddr>) throws(VerbsError) -> R) throws(VerbsError) -> R {
        var copy = storage
        return try withUnsafeMutablePointer(to: &copy) { p throws(VerbsError) -> R in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa throws(VerbsError) -> R in try body(sa) }
        }
    }
}
