import DaxshareVerbs
import DaxshareWire

/// Why a message channel ended or refused an operation.
public enum TransportError: Error, CustomStringConvertible {
    /// The peer broke the transport rules; the channel closed itself.
    case violation(TransportViolation)
    /// The queue pair failed or the peer disconnected.
    case verbs(VerbsError)
    /// The channel was closed locally.
    case closed(reason: String)
    /// The message could not be encoded or fragmented.
    case wire(WireError)

    public var description: String {
        switch self {
        case let .violation(v): "protocol violation: \(v)"
        case let .verbs(e): "\(e)"
        case let .closed(reason): "channel closed: \(reason)"
        case let .wire(e): "\(e)"
        }
    }
}
