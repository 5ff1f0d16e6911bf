/// An upper-layer command code (PROTOCOL.md §3.3).
///
/// A struct rather than an enum so that a header naming a command this dialect does not know
/// still decodes: the server then answers NOT_SUPPORTED instead of dropping the connection,
/// which is what lets a newer client probe an older server.
public struct Command: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let negotiate = Command(rawValue: 0x0001)
    public static let sessionSetup = Command(rawValue: 0x0002)
    public static let logoff = Command(rawValue: 0x0003)
    public static let treeConnect = Command(rawValue: 0x0004)
    public static let treeDisconnect = Command(rawValue: 0x0005)
    public static let echo = Command(rawValue: 0x0006)
    public static let serverStats = Command(rawValue: 0x0007)
    /// Per-client extension of SERVER_STATS (offered under the SERVER_STATS capability).
    public static let serverClients = Command(rawValue: 0x0008)
    public static let open = Command(rawValue: 0x0010)
    public static let close = Command(rawValue: 0x0011)
    public static let stat = Command(rawValue: 0x0012)
    public static let list = Command(rawValue: 0x0013)
    public static let setSize = Command(rawValue: 0x0014)
    public static let punchHole = Command(rawValue: 0x0015)
    public static let unlink = Command(rawValue: 0x0016)
    public static let rename = Command(rawValue: 0x0017)
    public static let flush = Command(rawValue: 0x0018)
    /// MKDIR, SET_ATTRIBUTES, STATFS and ALLOCATE: added to 1.0 for file systems mounted over
    /// daxshare (PROTOCOL.md §4.21–4.24); an older server answers NOT_SUPPORTED.
    public static let mkdir = Command(rawValue: 0x0019)
    public static let setAttributes = Command(rawValue: 0x001A)
    public static let statfs = Command(rawValue: 0x001B)
    public static let allocate = Command(rawValue: 0x001C)
    public static let read = Command(rawValue: 0x0020)
    public static let write = Command(rawValue: 0x0021)
    public static let layoutGet = Command(rawValue: 0x0030)
    public static let layoutCommit = Command(rawValue: 0x0031)
    public static let layoutReturn = Command(rawValue: 0x0032)
    /// Server to client only (flag CALLBACK); the client's reply has CALLBACK|RESPONSE.
    public static let cbLayoutRecall = Command(rawValue: 0x0040)

    /// Every command v1 defines, in code order.
    public static let all: [Command] = [
        .negotiate, .sessionSetup, .logoff, .treeConnect, .treeDisconnect, .echo, .serverStats, .serverClients,
        .open, .close, .stat, .list, .setSize, .punchHole, .unlink, .rename, .flush,
        .mkdir, .setAttributes, .statfs, .allocate, .read, .write, .layoutGet, .layoutCommit, .layoutReturn, .cbLayoutRecall,
    ]

    public var isKnown: Bool { Command.all.contains(self) }

    /// Commands a client may send before its session is authenticated.
    public var allowedBeforeAuthentication: Bool { self == .negotiate || self == .sessionSetup }

    public var name: String {
        switch self {
        case .negotiate: "NEGOTIATE"
        case .sessionSetup: "SESSION_SETUP"
        case .logoff: "LOGOFF"
        case .treeConnect: "TREE_CONNECT"
        case .treeDisconnect: "TREE_DISCONNECT"
        case .echo: "ECHO"
        case .serverStats: "SERVER_STATS"
        case .serverClients: "SERVER_CLIENTS"
        case .open: "OPEN"
        case .close: "CLOSE"
        case .stat: "STAT"
        case .list: "LIST"
        case .setSize: "SET_SIZE"
        case .punchHole: "PUNCH_HOLE"
        case .unlink: "UNLINK"
        case .rename: "RENAME"
        case .flush: "FLUSH"
        case .mkdir: "MKDIR"
        case .setAttributes: "SET_ATTRIBUTES"
        case .statfs: "STATFS"
        case .allocate: "ALLOCATE"
        case .read: "READ"
        case .write: "WRITE"
        case .layoutGet: "LAYOUTGET"
        case .layoutCommit: "LAYOUTCOMMIT"
        case .layoutReturn: "LAYOUTRETURN"
        case .cbLayoutRecall: "CB_LAYOUTRECALL"
        default: "COMMAND_0x\(hex4(rawValue))"
        }
    }

    public var description: String { name }
}
