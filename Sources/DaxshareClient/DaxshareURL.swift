import DaxshareWire

/// A file on a daxshare server: `daxshare://[IDENTITY@]HOST[:PORT]/EXPORT/PATH`.
///
/// - `HOST` is a name, an IPv4 address or a bracketed IPv6 address (`[fe80::1]`).
/// - `PORT` defaults to 5445, the SMB Direct port the server listens on.
/// - `IDENTITY`, optional, names which of the server's secrets to use (SESSION_SETUP).
/// - `EXPORT` is the export name; `PATH` is relative to the export's root and may be empty
///   (the root itself). A trailing `/` is ignored.
/// - Components are percent-decoded (`%20` is a space, `%3F` a `?`); a decoded component
///   may not contain `/` or NUL, and `.`/`..`/empty components are refused here, before
///   the server would refuse them with "access denied".
///
/// Parsing is strict and every rejection says what is wrong, because a URL is the first
/// thing a newcomer types and "bad URL" alone would not help.
public struct DaxshareURL: Sendable, Hashable, CustomStringConvertible {
    public static let scheme = "daxshare"
    public static let defaultPort: UInt16 = Limits.defaultPort

    /// Host name or address, without IPv6 brackets.
    public var host: String
    public var port: UInt16
    /// The identity from `IDENTITY@`, if given.
    public var identity: String?
    public var export: String
    /// Relative to the export root: no leading or trailing `/`; empty for the root.
    public var path: String

    public init(host: String, port: UInt16 = DaxshareURL.defaultPort, identity: String? = nil, export: String,
                path: String = "") {
        self.host = host
        self.port = port
        self.identity = identity
        self.export = export
        self.path = path
    }

    public init(_ string: String) throws(ClientError) {
        self = try Self.parse(string)
    }

    /// The last path component, or nil at the export root.
    public var lastComponent: String? {
        guard !path.isEmpty else { return nil }
        return path.split(separator: "/").last.map(String.init)
    }

    /// The same export with `path` replaced.
    public func with(path: String) -> DaxshareURL {
        var u = self
        u.path = path
        return u
    }

    /// Whether `other` names the same server, port and export (RENAME works only within one).
    public func isSameExport(as other: DaxshareURL) -> Bool {
        host == other.host && port == other.port && export == other.export
    }

    /// The canonical form: percent-encoded where needed, port omitted when it is the default.
    /// Parsing it gives back an equal value.
    public var description: String {
        var s = Self.scheme + "://"
        if let identity { s += Self.encode(identity) + "@" }
        s += host.contains(":") ? "[\(host)]" : host
        if port != Self.defaultPort { s += ":\(port)" }
        s += "/" + Self.encode(export)
        if !path.isEmpty {
            s += "/" + path.split(separator: "/", omittingEmptySubsequences: false).map { Self.encode(String($0)) }
                .joined(separator: "/")
        }
        return s
    }

    // MARK: Parsing

    static let usage = "expected daxshare://HOST[:PORT]/EXPORT[/PATH]"

    static func parse(_ string: String) throws(ClientError) -> DaxshareURL {
        guard let schemeEnd = string.firstRange(of: "://") else {
            throw .badURL("\(usage)")
        }
        let scheme = string[..<schemeEnd.lowerBound]
        guard scheme.lowercased() == Self.scheme else {
            throw .badURL("the scheme must be daxshare://, not \(scheme)://")
        }
        let rest = string[schemeEnd.upperBound...]
        if rest.contains("?") || rest.contains("#") {
            throw .badURL("'?' and '#' are not allowed (percent-encode them as %3F and %23)")
        }
        let authority: Substring
        let pathPart: Substring?
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            pathPart = rest[rest.index(after: slash)...]
        } else {
            authority = rest
            pathPart = nil
        }

        // [identity@]host[:port]
        var hostPort = authority
        var identity: String?
        if let at = authority.lastIndex(of: "@") {
            identity = try decode(authority[..<at], what: "identity", in: string)
            if identity!.utf8.count > Limits.maxIdentityLength {
                throw .badURL("the identity is longer than \(Limits.maxIdentityLength) bytes")
            }
            hostPort = authority[authority.index(after: at)...]
        }
        let (host, port) = try parseHostPort(hostPort, in: string)

        guard let pathPart, !pathPart.isEmpty, !pathPart.hasPrefix("/") else {
            throw .badURL("missing export name; \(usage)")
        }
        var components = pathPart.split(separator: "/", omittingEmptySubsequences: false)
        if components.count > 1 && components.last == "" { components.removeLast() }  // trailing "/"
        let export = try decode(components[0], what: "export name", in: string)
        if export.utf8.count > Limits.maxExportNameLength {
            throw .badURL("the export name is longer than \(Limits.maxExportNameLength) bytes")
        }
        var names: [String] = []
        for raw in components.dropFirst() {
            if raw.isEmpty { throw .badURL("empty path component ('//')") }
            let name = try decode(raw, what: "path component", in: string)
            if name == "." || name == ".." {
                throw .badURL("'\(name)' path components are not allowed")
            }
            if name.utf8.contains(0x2F) {
                throw .badURL("a path component may not contain an encoded '/' (%2F)")
            }
            if name.utf8.count > Limits.maxNameLength {
                throw .badURL("a path component is longer than \(Limits.maxNameLength) bytes")
            }
            names.append(name)
        }
        let path = names.joined(separator: "/")
        if path.utf8.count > Limits.maxPathLength {
            throw .badURL("the path is longer than \(Limits.maxPathLength) bytes")
        }
        return DaxshareURL(host: host, port: port, identity: identity, export: export, path: path)
    }

    private static func parseHostPort(_ s: Substring, in url: String) throws(ClientError) -> (String, UInt16) {
        var host: Substring
        var portText: Substring?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else {
                throw .badURL("missing ']' after the IPv6 address")
            }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .badURL("unexpected '\(after)' after ']'") }
                portText = after.dropFirst()
            }
            let allowed = Set("0123456789abcdefABCDEF:.%")
            guard host.contains(":"), host.allSatisfy({ allowed.contains($0) || $0.isLetter || $0.isNumber }) else {
                throw .badURL("'[\(host)]' is not an IPv6 address")
            }
        } else {
            let colons = s.filter { $0 == ":" }.count
            if colons > 1 { throw .badURL("put an IPv6 address in brackets, as in daxshare://[fe80::1]/EXPORT") }
            if let colon = s.firstIndex(of: ":") {
                host = s[..<colon]
                portText = s[s.index(after: colon)...]
            } else {
                host = s
            }
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
            if let bad = host.first(where: { !allowed.contains($0) }) {
                throw .badURL("'\(bad)' is not allowed in a host name")
            }
        }
        if host.isEmpty { throw .badURL("missing host; \(usage)") }
        var port = defaultPort
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let p = Int(portText), (1...65535).contains(p)
            else { throw .badURL("bad port '\(portText)' (1-65535)") }
            port = UInt16(p)
        }
        return (String(host), port)
    }

    /// Percent-decodes one component; the result must be non-empty valid UTF-8 without NUL.
    static func decode(_ s: Substring, what: String, in url: String) throws(ClientError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b != UInt8(ascii: "%") {
                bytes.append(b)
                continue
            }
            guard it.count >= 2, let hi = hexValue(it[it.startIndex]), let lo = hexValue(it[it.startIndex + 1]) else {
                throw .badURL("bad percent-encoding in the \(what) (expected %XX)")
            }
            bytes.append(hi << 4 | lo)
            it = it.dropFirst(2)
        }
        if bytes.isEmpty { throw .badURL("empty \(what)") }
        if bytes.contains(0) { throw .badURL("the \(what) contains a NUL byte") }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw .badURL("the \(what) is not valid UTF-8 after percent-decoding")
        }
        return decoded
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters and a few safe
    /// sub-delimiters, so the printed form parses back to the same components.
    static func encode(_ s: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=".utf8)
        var out = ""
        for b in s.utf8 {
            if safe.contains(b) {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 0xF)]], as: UTF8.self)
            }
        }
        return out
    }
}
