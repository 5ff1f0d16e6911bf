/// One side's transport settings: what it can receive and how many credits it wants.
///
/// The defaults follow PROTOCOL.md §2.11. A server and a client use the same type; the
/// `maxReadWriteSize` is only sent by the server.
public struct TransportConfig: Sendable, Hashable {
    /// Send credits this side asks the peer for (its send queue depth for data messages).
    public var creditsRequested: UInt16
    /// Largest message this side would like to send.
    public var preferredSendSize: UInt32
    /// Size of each receive buffer this side posts.
    public var maxReceiveSize: UInt32
    /// Largest upper-layer message this side reassembles.
    public var maxFragmentedSize: UInt32
    /// Server only: largest total RDMA transfer of one two-sided READ or WRITE.
    public var maxReadWriteSize: UInt32
    /// Silence after which this side sends a keepalive (§2.9; local, not negotiated). A client
    /// that must notice a lost link or server sooner sets it shorter.
    public var keepaliveInterval: Duration = .seconds(TransportConfig.keepaliveIntervalSeconds)
    /// How long this side waits for any message after a keepalive before disconnecting.
    public var keepaliveTimeout: Duration = .seconds(TransportConfig.keepaliveTimeoutSeconds)

    public init(creditsRequested: UInt16 = 64, preferredSendSize: UInt32 = 8192, maxReceiveSize: UInt32 = 8192,
                maxFragmentedSize: UInt32 = 1 << 20, maxReadWriteSize: UInt32 = 8 << 20) {
        self.creditsRequested = creditsRequested
        self.preferredSendSize = preferredSendSize
        self.maxReceiveSize = maxReceiveSize
        self.maxFragmentedSize = maxFragmentedSize
        self.maxReadWriteSize = maxReadWriteSize
    }

    /// Seconds of silence after which a side sends a keepalive (RESPONSE_REQUESTED, empty).
    public static let keepaliveIntervalSeconds = 120
    /// Seconds a side waits for any message after a keepalive before disconnecting.
    public static let keepaliveTimeoutSeconds = 10
    /// Seconds the server waits for the negotiate request after accepting, and the client for
    /// the response after sending the request.
    public static let negotiateTimeoutSeconds = 5
}

/// What both sides agreed on, from one side's point of view.
public struct NegotiatedTransport: Sendable, Hashable {
    public var version: UInt16
    /// Largest transport message (header + payload) this side may send.
    public var maxSendSize: UInt32
    /// Size of this side's receive buffers.
    public var maxReceiveSize: UInt32
    /// Largest upper-layer message this side may send (the peer's maxFragmentedSize).
    public var maxOutgoingMessageSize: UInt32
    /// Largest upper-layer message this side accepts (its own maxFragmentedSize).
    public var maxIncomingMessageSize: UInt32
    /// Largest total RDMA transfer of one two-sided READ or WRITE.
    public var maxReadWriteSize: UInt32
    /// The credit state right after negotiation.
    public var credits: CreditWindow
}

/// The pure logic of the negotiate exchange (PROTOCOL.md §2.4–2.5): what to ask for, how the
/// server answers, and how the client checks the answer.
public enum TransportNegotiation {
    /// The request a client sends first.
    public static func request(_ config: TransportConfig) -> TransportNegotiateRequest {
        TransportNegotiateRequest(creditsRequested: config.creditsRequested, preferredSendSize: config.preferredSendSize,
                                  maxReceiveSize: config.maxReceiveSize, maxFragmentedSize: config.maxFragmentedSize)
    }

    /// The server's answer. `postedReceives` is how many receives the server has posted for
    /// this connection (after the one the request consumed): it bounds the initial grant.
    /// When the returned `NegotiatedTransport` is nil, send the response and disconnect.
    public static func respond(to req: TransportNegotiateRequest, config: TransportConfig,
                               postedReceives: Int) -> (TransportNegotiateResponse, NegotiatedTransport?) {
        func failure(_ s: TransportStatus) -> (TransportNegotiateResponse, NegotiatedTransport?) {
            (TransportNegotiateResponse(negotiatedVersion: 0, creditsRequested: 0, creditsGranted: 0, status: s,
                                        maxReadWriteSize: 0, preferredSendSize: 0, maxReceiveSize: 0,
                                        maxFragmentedSize: 0), nil)
        }
        guard req.minVersion <= Limits.version1, req.maxVersion >= Limits.version1 else {
            return failure(.versionNotSupported)
        }
        guard req.creditsRequested >= 1, req.preferredSendSize >= Limits.minReceiveSize,
              req.maxReceiveSize >= Limits.minReceiveSize, req.maxFragmentedSize >= Limits.minFragmentedSize
        else { return failure(.invalidParameter) }
        guard postedReceives >= 1 else { return failure(.insufficientResources) }

        let granted = UInt16(min(Int(req.creditsRequested), postedReceives))
        let sendSize = min(config.preferredSendSize, req.maxReceiveSize)
        let response = TransportNegotiateResponse(
            negotiatedVersion: Limits.version1, creditsRequested: config.creditsRequested, creditsGranted: granted,
            status: .success, maxReadWriteSize: config.maxReadWriteSize, preferredSendSize: sendSize,
            maxReceiveSize: config.maxReceiveSize, maxFragmentedSize: config.maxFragmentedSize)
        let window = CreditWindow(sendCredits: 0, maxSendCredits: config.creditsRequested,
                                  postedReceives: postedReceives, peerCredits: granted,
                                  peerTarget: req.creditsRequested, peerMaxTarget: req.creditsRequested)
        let n = NegotiatedTransport(version: Limits.version1, maxSendSize: sendSize, maxReceiveSize: config.maxReceiveSize,
                                    maxOutgoingMessageSize: min(req.maxFragmentedSize, Limits.maxMessageSize),
                                    maxIncomingMessageSize: min(config.maxFragmentedSize, Limits.maxMessageSize),
                                    maxReadWriteSize: config.maxReadWriteSize, credits: window)
        return (response, n)
    }

    /// The client's check of the server's answer. `postedReceives` is how many receives the
    /// client has posted now (after the one the response consumed). Any failure is a reason to
    /// disconnect.
    public static func accept(_ resp: TransportNegotiateResponse, for req: TransportNegotiateRequest,
                              postedReceives: Int) throws(TransportViolation) -> NegotiatedTransport {
        guard resp.status == .success else { throw .negotiateFailed(resp.status) }
        guard resp.negotiatedVersion == Limits.version1, req.minVersion <= resp.negotiatedVersion,
              resp.negotiatedVersion <= req.maxVersion
        else { throw .invalidNegotiateParameter("negotiatedVersion") }
        guard resp.creditsGranted >= 1 else { throw .invalidNegotiateParameter("creditsGranted") }
        guard resp.creditsGranted <= req.creditsRequested else {
            throw .creditOverflow(held: Int(resp.creditsGranted), limit: req.creditsRequested)
        }
        guard resp.creditsRequested >= 1 else { throw .invalidNegotiateParameter("creditsRequested") }
        guard resp.preferredSendSize >= Limits.minReceiveSize, resp.preferredSendSize <= req.maxReceiveSize else {
            throw .invalidNegotiateParameter("preferredSendSize")
        }
        guard resp.maxReceiveSize >= Limits.minReceiveSize else { throw .invalidNegotiateParameter("maxReceiveSize") }
        guard resp.maxFragmentedSize >= Limits.minFragmentedSize else {
            throw .invalidNegotiateParameter("maxFragmentedSize")
        }
        guard resp.maxReadWriteSize >= 1 else { throw .invalidNegotiateParameter("maxReadWriteSize") }
        let window = CreditWindow.afterClientNegotiate(sendCredits: resp.creditsGranted,
                                                      maxSendCredits: req.creditsRequested,
                                                      postedReceives: postedReceives, peerTarget: resp.creditsRequested)
        return NegotiatedTransport(version: resp.negotiatedVersion,
                                   maxSendSize: min(req.preferredSendSize, resp.maxReceiveSize),
                                   maxReceiveSize: req.maxReceiveSize,
                                   maxOutgoingMessageSize: min(resp.maxFragmentedSize, Limits.maxMessageSize),
                                   maxIncomingMessageSize: min(req.maxFragmentedSize, Limits.maxMessageSize),
                                   maxReadWriteSize: resp.maxReadWriteSize, credits: window)
    }
}
