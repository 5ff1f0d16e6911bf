import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
#if canImport(Glibc)
import Glibc
#endif

/// Everything a client operation can fail with, typed so that callers (the CLI's exit codes,
/// the benchmarks' retry logic) can decide by case instead of by parsing messages.
///
/// `description` is one human line without the operation or URL, so a caller can prefix its
/// own context: `daxshare: stat daxshare://h/e/x: not found`.
public enum ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server answered `command` with a status other than OK. `retryAfterMs` is the
    /// server's hint with TRY_LATER, else 0.
    case status(Status, Command, retryAfterMs: UInt32 = 0)
    /// The connection could not be made, or broke: rdma_cm, verbs or transport failures.
    case transport(String)
    /// The server broke the protocol (a malformed message, a response nobody asked for).
    /// The client disconnects when it sees one.
    case `protocol`(String)
    /// Mutual authentication did not complete on the client's side: the server could not
    /// prove it knows the secret, or the secret itself is unusable.
    case authentication(String)
    /// A `daxshare://` URL that does not parse.
    case badURL(String)
    /// An argument the client refuses before sending anything (sizes, names, options).
    case invalidArgument(String)
    /// A local file could not be opened, read or written.
    case localIO(path: String, reason: String)
    /// A layout was revoked (LAYOUT_REVOKED) or a one-sided operation through it failed (a
    /// remote access error, which also breaks the connection): `unwrittenBytes` bytes that
    /// earlier calls reported written one-sided, not yet covered by an acknowledged
    /// LAYOUTCOMMIT, are not written (PROTOCOL.md §5.6). Re-send them, e.g. two-sided.
    case layoutLost(reason: String, unwrittenBytes: UInt64)

    public var description: String {
        switch self {
        case let .status(status, command, retry):
            if status == .tryLater && command == .sessionSetup {
                return "the server refuses authentication from this address for now (too many failed attempts); retry after \(retry) ms"
            }
            if status == .tryLater && retry > 0 { return "\(status.summary) (retry after \(retry) ms)" }
            // An older server answers a command it does not know with NOT_SUPPORTED (PROTOCOL.md §3.7).
            if status == .notSupported { return "\(command) is not supported by this server" }
            return status.summary
        case let .transport(reason): return "connection error: \(reason)"
        case let .protocol(reason): return "protocol error: \(reason)"
        case let .authentication(reason): return "authentication failed: \(reason)"
        case let .badURL(reason): return "bad URL: \(reason)"
        case let .invalidArgument(reason): return reason
        case let .localIO(path, reason): return "\(path): \(reason)"
        case let .layoutLost(reason, unwritten):
            return unwritten == 0 ? "one-sided I/O failed: \(reason)"
                : "one-sided I/O failed: \(reason); \(unwritten) bytes reported written were not written"
        }
    }

    /// The status the server answered with, if that is what this error is.
    public var status: Status? {
        if case let .status(s, _, _) = self { return s }
        return nil
    }

    /// Maps whatever a transport or verbs call threw to a client error, naming the reason
    /// a user can act on (a refused connection says why the server refused it).
    public init(transportFailure error: any Error) {
        if let e = error as? ClientError {
            self = e
            return
        }
        if let e = error as? TransportError {
            switch e {
            case let .wire(w): self = .invalidArgument("message cannot be encoded: \(w)")
            case let .verbs(v): self = ClientError(transportFailure: v)
            case let .violation(v): self = .protocol("\(v)")
            case let .closed(reason): self = .transport(reason)
            }
            return
        }
        if let e = error as? VerbsError {
            switch e {
            case let .rejected(privateData, status):
                if let reply = try? ConnectPrivateData.decode(privateData), reply.kind == .reject {
                    self = .transport("the server refused the connection: \(Self.rejectText(reply.reason))")
                } else {
                    self = .transport("connection refused (rdma_cm status \(status)); is daxshared listening there?")
                }
            case let .noSuchDevice(name):
                self = .transport(name.isEmpty ? "no RDMA device on this machine" : "no RDMA device named '\(name)'")
            case let .unexpectedEvent(expected, got, status):
                self = .transport("cannot reach the server (\(got) while waiting for \(expected), status \(status))")
            case .disconnected:
                self = .transport("the connection was closed")
            case let .call(name, code) where code.rawValue == ENODEV:
                self = .transport("no RDMA device on this machine (\(name): \(code))")
            default:
                self = .transport("\(e)")
            }
            return
        }
        self = .transport("\(error)")
    }

    static func rejectText(_ reason: ConnectPrivateData.RejectReason) -> String {
        switch reason {
        case .badPrivateData: "it did not understand our connect request"
        case .versionNotSupported: "no common protocol version"
        case .tooManyConnections: "too many connections"
        case .shuttingDown: "it is shutting down"
        default: "reason \(reason.rawValue)"
        }
    }
}
