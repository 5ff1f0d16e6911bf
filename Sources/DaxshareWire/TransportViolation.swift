/// A breach of the transport rules (PROTOCOL.md §2.10). Every case is a reason to disconnect:
/// the side that detects it logs ``description`` and closes *that* connection only.
///
/// Cases marked "local" are raised when this side's own code tries something the rules forbid
/// (sending without a credit, say); they signal a bug or a moment to wait, not a hostile peer.
public enum TransportViolation: Error, Sendable, Hashable, CustomStringConvertible {
    /// A received message did not decode.
    case malformed(WireError)
    /// A negotiate message arrived after the handshake, or a data transfer message before it.
    case unexpectedMessage(TransportMessageType)
    /// The negotiate response's status was not success.
    case negotiateFailed(TransportStatus)
    /// A negotiate field is outside the protocol's bounds (field name).
    case invalidNegotiateParameter(String)
    /// The peer sent a message while it held no credit from us.
    case sentWithoutCredit
    /// A grant pushed our held credits above what we asked for in the negotiate message.
    case creditOverflow(held: Int, limit: UInt16)
    /// The peer asked for zero credits, or more than its negotiate message allowed.
    case creditsRequestedOutOfRange(UInt16)
    /// Local: no send credit is held.
    case noSendCredit
    /// Local: the last send credit may only go out on a message that grants credits.
    case lastCreditReserved
    /// Local: a client's first data transfer message must grant credits (the server holds none).
    case firstMessageMustGrant
    /// Local: tried to grant more credits than there are receives posted and not yet granted.
    case grantExceedsPostedReceives(grant: UInt16, available: Int)
    /// A message, or a reassembled message, is larger than the negotiated limit.
    case messageTooLarge(size: UInt64, limit: UInt64)
    /// A fragment's remainingDataLength does not continue the message being reassembled.
    case fragmentMismatch(expectedRemaining: UInt32, got: UInt32)
    /// The peer did not answer a keepalive, or sent nothing, within the allowed time.
    case keepaliveTimeout
    /// The peer did not complete negotiation in time.
    case negotiateTimeout

    public var description: String {
        switch self {
        case .malformed(let e): "malformed message: \(e)"
        case .unexpectedMessage(let t): "unexpected transport message \(t)"
        case .negotiateFailed(let s): "negotiate failed: \(s)"
        case .invalidNegotiateParameter(let f): "invalid negotiate parameter \(f)"
        case .sentWithoutCredit: "peer sent without a credit"
        case .creditOverflow(let held, let limit): "credit overflow: \(held) held, limit \(limit)"
        case .creditsRequestedOutOfRange(let n): "creditsRequested out of range: \(n)"
        case .noSendCredit: "no send credit"
        case .lastCreditReserved: "last credit reserved for a credit grant"
        case .firstMessageMustGrant: "the first message must grant credits"
        case .grantExceedsPostedReceives(let g, let a): "grant \(g) exceeds \(a) ungranted receives"
        case .messageTooLarge(let s, let l): "message of \(s) bytes exceeds limit \(l)"
        case .fragmentMismatch(let e, let g): "fragment remainingDataLength \(g), expected \(e)"
        case .keepaliveTimeout: "keepalive timeout"
        case .negotiateTimeout: "negotiate timeout"
        }
    }
}
