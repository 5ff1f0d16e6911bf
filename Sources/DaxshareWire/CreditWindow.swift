/// Credit accounting for one connection, from one side's point of view (PROTOCOL.md §2.8).
///
/// RDMA SENDs need a receive posted at the other end, or the queue pair fails with an RNR
/// error. Credits make that explicit: each credit a side holds is one receive the peer has
/// posted for it. The rules this type enforces:
///
/// 1. Never send without a credit; each message costs one.
/// 2. Grant only receives that are posted and not yet granted, and no more than the peer's
///    current target (`creditsRequested`, a total).
/// 3. The last credit is kept for a message that grants credits, so two messages that cross
///    on the wire can never leave both sides holding zero credits.
/// 4. A side whose send leaves it with no credit, or with one credit and no receive left to
///    grant (so it could not send again on its own), sets RESPONSE_REQUESTED; the peer must
///    answer promptly with a message that grants at least one credit (unless the asker already
///    holds its target). This is what keeps a side with
///    little traffic of its own (a server with a recall to send) from being stranded.
/// 5. A peer that sends without a credit, asks for 0 or more credits than it negotiated, or is
///    granted beyond what we asked for, is violating the protocol.
///
/// The type is a plain value: feed it what happens (receives posted, messages sent and
/// received) and it answers what may be sent and what to put in the credit fields. It does no
/// I/O and takes no locks; the connection owns one and mutates it on its event loop.
public struct CreditWindow: Sendable, Hashable {
    /// Credits this side holds: messages it may still send.
    public private(set) var sendCredits: UInt16
    /// What this side asked for in its negotiate message; holding more is a peer violation.
    public let maxSendCredits: UInt16
    /// Receives this side has posted and that no message has consumed yet.
    public private(set) var postedReceives: Int
    /// Credits the peer holds, as far as this side knows (granted, not yet consumed).
    public private(set) var peerCredits: UInt16
    /// The peer's latest `creditsRequested` (the total it would like to hold).
    public private(set) var peerTarget: UInt16
    /// The peer's negotiate `creditsRequested`; later requests may not exceed it.
    public let peerMaxTarget: UInt16
    /// The next message must grant at least one credit: true for a client right after
    /// negotiation, because the server holds no credit until the client's first message.
    public private(set) var mustGrantOnNextSend: Bool = false
    /// The peer set RESPONSE_REQUESTED and this side has not yet sent a message granting it
    /// credits (or found it already holding its target).
    public private(set) var owesResponse: Bool

    public init(sendCredits: UInt16, maxSendCredits: UInt16, postedReceives: Int, peerCredits: UInt16,
                peerTarget: UInt16, peerMaxTarget: UInt16) {
        self.sendCredits = sendCredits
        self.maxSendCredits = maxSendCredits
        self.postedReceives = max(0, postedReceives)
        self.peerCredits = peerCredits
        self.peerTarget = peerTarget
        self.peerMaxTarget = peerMaxTarget
        self.owesResponse = false
    }

    /// A client's window right after negotiation: its first message must grant credits.
    static func afterClientNegotiate(sendCredits: UInt16, maxSendCredits: UInt16, postedReceives: Int,
                                     peerTarget: UInt16) -> CreditWindow {
        var w = CreditWindow(sendCredits: sendCredits, maxSendCredits: maxSendCredits, postedReceives: postedReceives,
                             peerCredits: 0, peerTarget: peerTarget, peerMaxTarget: peerTarget)
        w.mustGrantOnNextSend = true
        return w
    }

    /// The header fields to stamp on an outgoing data transfer message.
    public struct Outgoing: Sendable, Hashable {
        public var creditsRequested: UInt16
        public var creditsGranted: UInt16
        public var flags: DataTransferFlags
        public init(creditsRequested: UInt16, creditsGranted: UInt16, flags: DataTransferFlags = []) {
            self.creditsRequested = creditsRequested
            self.creditsGranted = creditsGranted
            self.flags = flags
        }
    }

    /// Receives posted but not promised to the peer.
    public var ungrantedReceives: Int { max(0, postedReceives - Int(peerCredits)) }

    /// How many credits the next message should grant: what the peer still wants, bounded by
    /// the receives available to promise.
    public var creditsToGrant: UInt16 {
        let wanted = peerTarget > peerCredits ? Int(peerTarget - peerCredits) : 0
        let room = Int(UInt16.max) - Int(peerCredits)
        return UInt16(clamping: min(wanted, ungrantedReceives, room))
    }

    /// Whether a message granting `grant` credits may be sent now.
    public func canSend(granting grant: UInt16) -> Bool {
        guard sendCredits >= 1, Int(grant) <= ungrantedReceives else { return false }
        if mustGrantOnNextSend && grant == 0 { return false }
        return sendCredits > 1 || grant > 0
    }

    /// Whether anything may be sent now with the grant this side would attach.
    public var canSend: Bool { canSend(granting: creditsToGrant) }

    /// True when this side must send a message now even if it has nothing to say (an empty
    /// data transfer message, granting what it can): the peer set RESPONSE_REQUESTED and the
    /// credit rules allow a send. When it is false only because no send is allowed, it becomes
    /// true once a receive is reposted (the peer's message consumed one).
    public var shouldSendCreditGrant: Bool {
        owesResponse && canSend && (creditsToGrant > 0 || peerCredits >= peerTarget)
    }

    /// Records `count` newly posted receives.
    public mutating func receivesPosted(_ count: Int) {
        if count > 0 { postedReceives = postedReceives &+ count }
    }

    /// Consumes a send credit for a message that grants `grant` credits. Throws (and changes
    /// nothing) if the rules forbid that send right now.
    public mutating func consumeSendCredit(granting grant: UInt16) throws(TransportViolation) {
        guard sendCredits >= 1 else { throw .noSendCredit }
        guard Int(grant) <= ungrantedReceives, Int(peerCredits) + Int(grant) <= Int(UInt16.max) else {
            throw .grantExceedsPostedReceives(grant: grant, available: ungrantedReceives)
        }
        if sendCredits == 1 && grant == 0 { throw .lastCreditReserved }
        if mustGrantOnNextSend && grant == 0 { throw .firstMessageMustGrant }
        sendCredits -= 1
        peerCredits += grant
        // A response is owed until a message grants something, or the peer has all it asked for:
        // an answer without credits would leave a stranded peer stranded.
        if grant > 0 || peerCredits >= peerTarget { owesResponse = false }
        mustGrantOnNextSend = false
    }

    /// Stamps the next outgoing message: grants what ``creditsToGrant`` says, asks for
    /// `maxSendCredits`, and sets RESPONSE_REQUESTED when asked to (keepalive) or when the send
    /// leaves this side unable to send again by itself (rule 4).
    public mutating func prepareSend(requestResponse: Bool = false) throws(TransportViolation) -> Outgoing {
        let grant = creditsToGrant
        try consumeSendCredit(granting: grant)
        var flags: DataTransferFlags = []
        if requestResponse || isStranded { flags.insert(.responseRequested) }
        return Outgoing(creditsRequested: maxSendCredits, creditsGranted: grant, flags: flags)
    }

    /// Earlier spelling; whether the message carries data no longer changes the stamp.
    @available(*, deprecated, message: "use prepareSend(requestResponse:)")
    public mutating func prepareSend(hasPayload: Bool, requestResponse: Bool = false) throws(TransportViolation) -> Outgoing {
        try prepareSend(requestResponse: requestResponse)
    }

    /// No credit, or one credit and nothing to grant: this side cannot send until the peer
    /// grants credits (or, with one credit, until it reposts a receive).
    public var isStranded: Bool { sendCredits == 0 || (sendCredits == 1 && ungrantedReceives == 0) }

    /// Accounts for a received data transfer message. Throws (and changes nothing) on a
    /// violation; the caller then disconnects. The receive it arrived in is consumed: post a
    /// replacement and call ``receivesPosted(_:)``.
    public mutating func received(_ header: DataTransferHeader) throws(TransportViolation) {
        guard peerCredits >= 1, postedReceives >= 1 else { throw .sentWithoutCredit }
        guard header.creditsRequested >= 1, header.creditsRequested <= peerMaxTarget else {
            throw .creditsRequestedOutOfRange(header.creditsRequested)
        }
        let held = Int(sendCredits) + Int(header.creditsGranted)
        guard held <= Int(maxSendCredits) else { throw .creditOverflow(held: held, limit: maxSendCredits) }
        peerCredits -= 1
        postedReceives -= 1
        sendCredits = UInt16(held)
        peerTarget = header.creditsRequested
        if header.flags.contains(.responseRequested) { owesResponse = true }
    }
}
