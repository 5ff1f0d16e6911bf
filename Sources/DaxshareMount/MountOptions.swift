/// `-o` options of `daxshare mount`, split into daxshare's own and those for the kernel and
/// libfuse (mount(8)'s usual form: `-o ro,allow_other,secret-file=/etc/daxshare/secret`).
///
/// daxshare's own: `secret-file=PATH`, `identity=NAME`, `two-sided` (no layouts),
/// `attr-timeout=SECONDS` (how long the kernel may trust attributes and names; default 1),
/// `cache=direct|cached` (direct: every read and write goes to the server, no page cache — the
/// default, so another client's or a local writer's change is seen at once; cached: the page
/// cache keeps file data until a recall or a changed mtime invalidates it),
/// `queue-depth=N`, `poll` (the connection's event loop busy-polls its completions, as
/// perftest does: lower latency per request for a core that spins while mounted), `readers=N`
/// (threads reading /dev/fuse; default 2), `max_write=BYTES` (the largest write request the
/// kernel sends; default and maximum 1 MiB). What fstab adds for mount(8) itself (`defaults`,
/// `_netdev`, `nofail`, `noauto`, `auto`, `user`, `users`, `x-*`) is dropped. Everything else
/// goes to libfuse, which knows the kernel's options (ro, rw, nosuid, nodev, noexec, noatime,
/// sync, ...) and its own (allow_other, default_permissions, max_read=N, ...).
public struct MountOptions: Sendable, Hashable {
    public enum CacheMode: String, Sendable, Hashable { case direct, cached }

    public var secretFile: String?
    public var identity: String?
    public var twoSided = false
    public var attributeTimeout: Double = 1
    public var cache: CacheMode = .direct
    public var queueDepth: Int?
    public var poll = false
    /// Threads reading requests from /dev/fuse (`readers=N`). Each posts a read's or write's
    /// work request itself and goes back to reading, so a few keep many I/Os in flight; more
    /// threads than that only sleep and wake in turn (2 against 4 was +13-17% 4 KiB QD8 random
    /// reads on the testbed's 2 CPUs, the same at QD1 and 1 MiB: Bench/NOTES.md).
    public var readers = 2
    /// The largest write the kernel sends in one request (`max_write=BYTES`, at most 1 MiB).
    public var maxWrite: UInt32 = 1 << 20
    /// For libfuse, in order.
    public var fuseOptions: [String] = []

    public init() {}

    /// Parses the comma-separated lists of every `-o`; later values win.
    public init(parsing lists: [String]) throws(MountOptionError) {
        for list in lists {
            for item in list.split(separator: ",", omittingEmptySubsequences: true).map(String.init) {
                try apply(item)
            }
        }
    }

    private static let forMountItself: Set<String> = ["defaults", "_netdev", "nofail", "noauto", "auto", "user", "users", "nouser"]

    private mutating func apply(_ item: String) throws(MountOptionError) {
        let (key, value): (String, String?) = {
            guard let eq = item.firstIndex(of: "=") else { return (item, nil) }
            return (String(item[..<eq]), String(item[item.index(after: eq)...]))
        }()
        func required() throws(MountOptionError) -> String {
            guard let value, !value.isEmpty else { throw MountOptionError("option \(key) needs a value (\(key)=...)") }
            return value
        }
        switch key {
        case "secret-file": secretFile = try required()
        case "identity": identity = try required()
        case "two-sided":
            guard value == nil else { throw MountOptionError("option two-sided takes no value") }
            twoSided = true
        case "poll":
            guard value == nil else { throw MountOptionError("option poll takes no value") }
            poll = true
        case "attr-timeout":
            guard let seconds = Double(try required()), seconds >= 0, seconds <= 3600 else {
                throw MountOptionError("attr-timeout must be a number of seconds from 0 to 3600")
            }
            attributeTimeout = seconds
        case "cache":
            guard let mode = CacheMode(rawValue: try required()) else {
                throw MountOptionError("cache must be direct or cached, not \(value ?? "")")
            }
            cache = mode
        case "queue-depth":
            guard let n = Int(try required()), (1...64).contains(n) else {
                throw MountOptionError("queue-depth must be between 1 and 64")
            }
            queueDepth = n
        case "readers":
            guard let n = Int(try required()), (1...16).contains(n) else {
                throw MountOptionError("readers must be between 1 and 16")
            }
            readers = n
        case "max_write":
            guard let n = UInt32(try required()), n >= 4096, n <= 1 << 20, n % 4096 == 0 else {
                throw MountOptionError("max_write must be a multiple of 4096 from 4096 to 1048576")
            }
            maxWrite = n
        case _ where Self.forMountItself.contains(key) || key.hasPrefix("x-"):
            break
        case "fsname", "subtype":
            throw MountOptionError("option \(key) is set by daxshare mount itself")
        default:
            fuseOptions.append(item)
        }
    }
}

public struct MountOptionError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
