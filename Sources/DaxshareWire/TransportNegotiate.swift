/// Transport message type codes: the first `u16` of every message on the queue pair
/// (PROTOCOL.md §2.3). A receiver can tell a negotiate message from a data transfer message
/// without context, and a stray negotiate after the handshake is detectable.
public enum TransportMessageType: UInt16, Sendable, Hashable {
    case negotiateRequest = 0x0001
    case negotiateResponse = 0x0002
    case dataTransfer = 0x0003
}

/// The status in a ``TransportNegotiateResponse``.
public enum TransportStatus: UInt32, Sendable, Hashable {
    case success = 0
    /// No version in the client's [minVersion, maxVersion] is supported.
    case versionNotSupported = 1
    /// A size or credit value is below the protocol minimum.
    case invalidParameter = 2
    /// The server cannot take another connection now.
    case insufficientResources = 3
}

/// The first message a client sends on a new connection (PROTOCOL.md §2.4).
///
/// It states what the client can *receive* (so the server can size its sends) and how many
/// send credits it would like; the server answers with a ``TransportNegotiateResponse``.
public struct TransportNegotiateRequest: Sendable, Hashable {
    /// Encoded size in version 1.0. Longer requests are accepted and the tail ignored, so a
    /// future client can still reach the version fields of a 1.0 server.
    public static let size = 24

    public var minVersion: UInt16
    public var maxVersion: UInt16
    /// Send credits the client wants to hold (its send queue depth); at least 1.
    public var creditsRequested: UInt16
    /// Largest message the client would like to send.
    public var preferredSendSize: UInt32
    /// Size of each receive buffer the client posts: the server never sends more in one message.
    public var maxReceiveSize: UInt32
    /// Largest upper-layer message the client will reassemble from fragments.
    public var maxFragmentedSize: UInt32

    public init(minVersion: UInt16 = Limits.version1, maxVersion: UInt16 = Limits.version1,
                creditsRequested: UInt16, preferredSendSize: UInt32, maxReceiveSize: UInt32,
                maxFragmentedSize: UInt32) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.creditsRequested = creditsRequested
        self.preferredSendSize = preferredSendSize
        self.maxReceiveSize = maxReceiveSize
        self.maxFragmentedSize = maxFragmentedSize
    }

    func validate() throws(WireError) {
        if minVersion > maxVersion { throw .outOfRange(field: "minVersion") }
    }

    public func encode() throws(WireError) -> [UInt8] {
        try validate()
        var w = ByteWriter(capacity: Self.size)
        w.u16(TransportMessageType.negotiateRequest.rawValue)
        w.u16(0)
        w.u16(minVersion)
        w.u16(maxVersion)
        w.u16(creditsRequested)
        w.u16(0)
        w.u32(preferredSendSize)
        w.u32(maxReceiveSize)
        w.u32(maxFragmentedSize)
        return w.bytes
    }

    /// Decodes the fields after the type (the reader is positioned at offset 2).
    static func decodeBody(_ r: inout ByteReader) throws(WireError) -> TransportNegotiateRequest {
        try r.reserved(2, "reserved")
        let minV = try r.u16("minVersion")
        let maxV = try r.u16("maxVersion")
        let credits = try r.u16("creditsRequested")
        try r.reserved(2, "reserved2")
        let pss = try r.u32("preferredSendSize")
        let mrs = try r.u32("maxReceiveSize")
        let mfs = try r.u32("maxFragmentedSize")
        // Bytes after offset 24 are ignored by design (forward compatibility).
        let m = TransportNegotiateRequest(minVersion: minV, maxVersion: maxV, creditsRequested: credits,
                                          preferredSendSize: pss, maxReceiveSize: mrs, maxFragmentedSize: mfs)
        try m.validate()
        return m
    }
}

/// The server's answer to a ``TransportNegotiateRequest`` (PROTOCOL.md §2.5).
public struct TransportNegotiateResponse: Sendable, Hashable {
    public static let size = 40

    /// The server's supported range, always filled in (also on failure).
    public var minVersion: UInt16
    public var maxVersion: UInt16
    /// 0x0100 on success; 0 on failure.
    public var negotiatedVersion: UInt16
    /// Send credits the server wants to hold.
    public var creditsRequested: UInt16
    /// Credits granted to the client: the client's initial send credits (≥ 1 on success).
    public var creditsGranted: UInt16
    public var status: TransportStatus
    /// Largest total length of the buffer descriptors in one READ or WRITE.
    public var maxReadWriteSize: UInt32
    /// Largest message the server will send (≤ the client's maxReceiveSize).
    public var preferredSendSize: UInt32
    /// Size of the server's receive buffers: the client never sends more in one message.
    public var maxReceiveSize: UInt32
    /// Largest upper-layer message the server will reassemble.
    public var maxFragmentedSize: UInt32

    public init(minVersion: UInt16 = Limits.version1, maxVersion: UInt16 = Limits.version1,
                negotiatedVersion: UInt16, creditsRequested: UInt16, creditsGranted: UInt16,
                status: TransportStatus, maxReadWriteSize: UInt32, preferredSendSize: UInt32,
                maxReceiveSize: UInt32, maxFragmentedSize: UInt32) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.negotiatedVersion = negotiatedVersion
        self.creditsRequested = creditsRequested
        self.creditsGranted = creditsGranted
        self.status = status
        self.maxReadWriteSize = maxReadWriteSize
        self.preferredSendSize = preferredSendSize
        self.maxReceiveSize = maxReceiveSize
        self.maxFragmentedSize = maxFragmentedSize
    }

    func validate() throws(WireError) {
        if minVersion > maxVersion { throw .outOfRange(field: "minVersion") }
    }

    public func encode() throws(WireError) -> [UInt8] {
        try validate()
        var w = ByteWriter(capacity: Self.size)
        w.u16(TransportMessageType.negotiateResponse.rawValue)
        w.u16(0)
        w.u16(minVersion)
        w.u16(maxVersion)
        w.u16(negotiatedVersion)
        w.u16(0)
        w.u16(creditsRequested)
        w.u16(creditsGranted)
        w.u32(status.rawValue)
        w.u32(maxReadWriteSize)
        w.u32(preferredSendSize)
        w.u32(maxReceiveSize)
        w.u32(maxFragmentedSize)
        w.u32(0)
        return w.bytes
    }

    static func decodeBody(_ r: inout ByteReader) throws(WireError) -> TransportNegotiateResponse {
        try r.reserved(2, "reserved")
        let minV = try r.u16("minVersion")
        let maxV = try r.u16("maxVersion")
        let nv = try r.u16("negotiatedVersion")
        try r.reserved(2, "reserved2")
        let cr = try r.u16("creditsRequested")
        let cg = try r.u16("creditsGranted")
        guard let status = TransportStatus(rawValue: try r.u32("status")) else { throw .outOfRange(field: "status") }
        let mrw = try r.u32("maxReadWriteSize")
        let pss = try r.u32("preferredSendSize")
        let mrs = try r.u32("maxReceiveSize")
        let mfs = try r.u32("maxFragmentedSize")
        try r.reserved(4, "reserved3")
        try r.expectEnd("negotiateResponse")
        let m = TransportNegotiateResponse(minVersion: minV, maxVersion: maxV, negotiatedVersion: nv,
                                           creditsRequested: cr, creditsGranted: cg, status: status,
                                           maxReadWriteSize: mrw, preferredSendSize: pss,
                                           maxReceiveSize: mrs, maxFragmentedSize: mfs)
        try m.validate()
        return m
    }
}
