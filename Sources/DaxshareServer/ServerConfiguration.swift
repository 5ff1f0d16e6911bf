#if canImport(Glibc)
import Glibc
#endif
import DaxsharePmem
import DaxshareWire
import SystemPackage

/// Everything `daxshared` is told at start-up.
public struct ServerConfiguration: Sendable {
    /// One exported directory.
    public struct ExportSpec: Sendable, Equatable {
        public var name: String
        public var path: FilePath
        public var readOnly: Bool
        /// The identities whose sessions may connect to it; nil: every authenticated identity.
        public var identities: Set<String>?

        public init(name: String, path: FilePath, readOnly: Bool = false, identities: Set<String>? = nil) {
            self.name = name
            self.path = path
            self.readOnly = readOnly
            self.identities = identities
        }

        /// Parses `NAME=DIR[:ro]` (`:rw` is accepted for symmetry).
        public init(parsing text: String) throws(ServerError) {
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                throw .configuration("export '\(text)' is not NAME=DIR[:ro]")
            }
            name = String(text[..<eq])
            var dir = String(text[text.index(after: eq)...])
            readOnly = false
            if dir.hasSuffix(":ro") { readOnly = true; dir.removeLast(3) } else if dir.hasSuffix(":rw") { dir.removeLast(3) }
            guard !dir.isEmpty else { throw .configuration("export '\(name)' has no directory") }
            guard name.utf8.count <= Limits.maxExportNameLength, !name.contains("/") else {
                throw .configuration("export name '\(name)' must be at most \(Limits.maxExportNameLength) bytes, without '/'")
            }
            path = FilePath(dir)
            identities = nil
        }
    }

    public var host: String
    public var port: UInt16
    /// More addresses to listen on, beside `host`:`port` (an RDMA device each, or one device's
    /// addresses; 0.0.0.0 listens on every device).
    public var alsoListen: [(host: String, port: UInt16)] = []
    public var exports: [ExportSpec]
    /// The pre-shared secret of every identity without one in `secrets`; empty: only the
    /// identities in `secrets` may authenticate. Secrets never cross the wire.
    public var secret: [UInt8]
    /// Pre-shared secrets by client identity (SESSION_SETUP's identity, PROTOCOL.md §4.4).
    public var secrets: [String: [UInt8]] = [:]
    /// Identities whose sessions see every client in SERVER_CLIENTS (others see their own).
    public var administrators: Set<String> = []
    public var transport = TransportConfig()
    /// Connections served at once; more are rejected with a reason.
    public var maxConnections = 64
    /// Open files per session.
    public var maxOpenFiles = 1024
    /// Layouts per session.
    public var maxLayouts = 1024
    /// Threads that poll completions and serve two-sided READ and WRITE, a connection on
    /// each in turn: one per online CPU by default.
    public var eventLoops = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// How long a layout holder has to return a recalled layout before it is
    /// fenced; well under /proc/sys/fs/lease-break-time (45 s), so a local
    /// opener is released by the recall, not by the kernel giving up.
    public var recallDeadlineMs: UInt32 = 5000
    /// Hold an OS write lease on files with layouts, so local opens recall them.
    public var fileLeases = true
    /// Which OS lease: a delegation (F_SETDELEG, Linux 6.19) also recalls layouts on a local
    /// unlink, rename or attribute change; where the kernel has none, a lease (F_SETLEASE) is
    /// taken instead, which a local open or truncate breaks, nothing else.
    public var leaseKind: FileLease.Mechanism = .delegation
    /// Prefetch (`ibv_advise_mr`) each layout's range at LAYOUTGET, so the client's first
    /// access does not take an ODP fault (an RNR NAK and a retry). Off only to measure it.
    public var layoutPrefetch = true
    /// Offer RDMA FLUSH as the one-sided commit (PROTOCOL.md §5.8) where the device and this
    /// build have it; false keeps every commit a LAYOUTCOMMIT.
    public var rdmaFlush = true
    /// How long a connection may go without a session (from its start, or from a LOGOFF)
    /// before the server closes it (PROTOCOL.md §3.4).
    public var sessionSetupTimeout: Duration = .seconds(10)
    /// Failed authentications tolerated per connection before it is closed.
    public var maxAuthFailures = 3
    /// Failed authentications an address may make (across connections) before its
    /// SESSION_SETUPs get TRY_LATER (`AuthRateLimiter`).
    public var authFailureBurst = 10
    /// How fast an address earns back one failed authentication.
    public var authFailureRefill: Duration = .seconds(6)
    /// Where requests that may block (FLUSH, LAYOUTCOMMIT, a truncate, a recall…) run: Swift's
    /// global pool unless the process has its own (daxshared's `ThreadPoolExecutor`).
    public var requestExecutor: any TaskExecutor = globalConcurrentExecutor

    public init(host: String, port: UInt16 = Limits.defaultPort, exports: [ExportSpec], secret: [UInt8]) {
        self.host = host
        self.port = port
        self.exports = exports
        self.secret = secret
    }
}

/// Why the server could not start or serve.
public enum ServerError: Error, CustomStringConvertible, Equatable {
    case configuration(String)

    public var description: String {
        switch self {
        case let .configuration(s): s
        }
    }
}
