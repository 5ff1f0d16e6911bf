/// The `daxshare` CLI's exit codes, one per kind of failure, so scripts can tell "the file is
/// not there" from "the server is unreachable" without parsing messages.
///
/// Kept in the library (not the executable) so that the mapping is unit-tested and shared by
/// every tool that reports client errors the same way.
public enum CommandExitCode: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case success = 0
    /// Bad command line, URL, size or option (also argument-parser errors).
    case usage = 1
    /// The file, directory or export does not exist.
    case notFound = 2
    /// Access denied, read-only export, or authentication failed (either direction).
    case denied = 3
    /// Could not connect, or the connection or protocol broke.
    case connection = 4
    /// Any other error status from the server.
    case server = 5
    /// A local file could not be read or written.
    case localIO = 6

    public init(for error: ClientError) {
        switch error {
        case let .status(status, _, _):
            switch status {
            case .notFound: self = .notFound
            case .accessDenied, .authFailed, .notAuthenticated, .readOnly: self = .denied
            default: self = .server
            }
        case .authentication: self = .denied
        case .transport, .protocol, .layoutLost: self = .connection
        case .badURL, .invalidArgument: self = .usage
        case .localIO: self = .localIO
        }
    }

    public var description: String {
        switch self {
        case .success: "success"
        case .usage: "usage error: bad arguments, URL or size"
        case .notFound: "not found: no such file, directory or export"
        case .denied: "access denied, read-only export, or authentication failed"
        case .connection: "connection failed or broke (RDMA, transport or protocol error)"
        case .server: "any other error reported by the server"
        case .localIO: "a local file could not be read or written"
        }
    }

    /// The table printed in `daxshare --help`: one line per case, "  CODE  description".
    /// Written out rather than built from `allCases`: the CLI evaluates it on every start, and
    /// building it cost ~9 ms there in the testbed (CommandExitCodeTests keeps it in step).
    public static let helpTable = """
          0  success
          1  usage error: bad arguments, URL or size
          2  not found: no such file, directory or export
          3  access denied, read-only export, or authentication failed
          4  connection failed or broke (RDMA, transport or protocol error)
          5  any other error reported by the server
          6  a local file could not be read or written
        """
}
