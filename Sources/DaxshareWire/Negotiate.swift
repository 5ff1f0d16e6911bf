/// Features a client or server supports (NEGOTIATE). Unknown bits are ignored, never rejected:
/// the server answers with the intersection of what both sides set, so new bits can be added
/// without a new dialect.
public struct Capabilities: OptionSet, Sendable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// LAYOUTGET/LAYOUTCOMMIT/LAYOUTRETURN and one-sided RDMA to the server's file mappings.
    public static let layouts = Capabilities(rawValue: 0x01)
    /// Layout memory regions are on-demand-paging MRs: the client must connect with a
    /// non-zero rnr_retry_count, because a first touch is answered by an RNR NAK.
    public static let odp = Capabilities(rawValue: 0x02)
    /// The client handles CB_LAYOUTRECALL. A server grants layouts only if this is agreed.
    public static let callbacks = Capabilities(rawValue: 0x04)
    /// PUNCH_HOLE is implemented by the exports' file systems.
    public static let punchHole = Capabilities(rawValue: 0x08)
    /// Exports are DAX-backed: LAYOUTCOMMIT and write-through use CPU cache flushes, not msync.
    public static let dax = Capabilities(rawValue: 0x10)
    /// SERVER_STATS is available.
    public static let serverStats = Capabilities(rawValue: 0x20)
    /// RDMA FLUSH (IBTA 1.5) to persistence as the one-sided commit (PROTOCOL.md §5.8): RW layout
    /// extents marked PERSISTENT_FLUSH take the client's FLUSH. A client sets it only when its
    /// queue pair can post FLUSH; a server only when its device places FLUSH to persistence on
    /// on-demand-paging memory.
    public static let rdmaFlush = Capabilities(rawValue: 0x40)
    public static let allV1: Capabilities = [.layouts, .odp, .callbacks, .punchHole, .dax, .serverStats]
}

/// NEGOTIATE request: dialect range, client capabilities and a client identifier that stays
/// the same across reconnects of one client instance (for the server's logs and limits).
public struct NegotiateRequest: WireBody {
    public static let size = 32
    public var minDialect: UInt16
    public var maxDialect: UInt16
    public var capabilities: Capabilities
    /// 16 bytes.
    public var clientId: [UInt8]

    public init(minDialect: UInt16 = Limits.version1, maxDialect: UInt16 = Limits.version1,
                capabilities: Capabilities, clientId: [UInt8]) {
        self.minDialect = minDialect
        self.maxDialect = maxDialect
        self.capabilities = capabilities
        self.clientId = clientId
    }

    func validate() throws(WireError) {
        if minDialect > maxDialect { throw .outOfRange(field: "minDialect") }
        try checkFixed(clientId, Limits.guidLength, "clientId")
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u16(minDialect)
        w.u16(maxDialect)
        w.u32(0)
        w.u64(capabilities.rawValue)
        w.append(clientId)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> NegotiateRequest {
        let minD = try r.u16("minDialect")
        let maxD = try r.u16("maxDialect")
        try r.reserved(4, "reserved")
        let caps = Capabilities(rawValue: try r.u64("capabilities"))
        let id = try r.bytes(Limits.guidLength, "clientId")
        let m = NegotiateRequest(minDialect: minD, maxDialect: maxD, capabilities: caps, clientId: id)
        try m.validate()
        return m
    }
}

/// NEGOTIATE response: the dialect, the agreed capabilities and the server's limits, so a
/// client can size its requests instead of discovering limits by failure.
public struct NegotiateResponse: WireBody {
    public static let size = 48
    public var dialect: UInt16
    /// Requests the server will hold at once for this connection; more get TOO_MANY.
    public var maxOutstandingRequests: UInt16
    /// Milliseconds a layout holder gets to return a recalled layout (also per layout in LAYOUTGET).
    public var defaultRecallDeadlineMs: UInt32
    /// Intersection of the client's and the server's capabilities.
    public var capabilities: Capabilities
    /// 16 bytes identifying the server instance (changes on restart).
    public var serverId: [UInt8]
    public var maxBufferDescriptors: UInt16
    public var maxExtentsPerLayout: UInt16
    public var maxPathLength: UInt16
    public var maxListEntries: UInt16
    /// Open files per session.
    public var maxOpenFiles: UInt32
    /// Layouts per session.
    public var maxLayouts: UInt32

    public init(dialect: UInt16 = Limits.version1, maxOutstandingRequests: UInt16, defaultRecallDeadlineMs: UInt32,
                capabilities: Capabilities, serverId: [UInt8], maxBufferDescriptors: UInt16,
                maxExtentsPerLayout: UInt16, maxPathLength: UInt16, maxListEntries: UInt16,
                maxOpenFiles: UInt32, maxLayouts: UInt32) {
        self.dialect = dialect
        self.maxOutstandingRequests = maxOutstandingRequests
        self.defaultRecallDeadlineMs = defaultRecallDeadlineMs
        self.capabilities = capabilities
        self.serverId = serverId
        self.maxBufferDescriptors = maxBufferDescriptors
        self.maxExtentsPerLayout = maxExtentsPerLayout
        self.maxPathLength = maxPathLength
        self.maxListEntries = maxListEntries
        self.maxOpenFiles = maxOpenFiles
        self.maxLayouts = maxLayouts
    }

    func validate() throws(WireError) {
        try checkFixed(serverId, Limits.guidLength, "serverId")
        try checkNonzero(maxOutstandingRequests, "maxOutstandingRequests")
        try checkNonzero(defaultRecallDeadlineMs, "defaultRecallDeadlineMs")
        if !(1...Limits.maxBufferDescriptors).contains(Int(maxBufferDescriptors)) {
            throw .outOfRange(field: "maxBufferDescriptors")
        }
        if !(1...Limits.maxExtentsPerLayout).contains(Int(maxExtentsPerLayout)) {
            throw .outOfRange(field: "maxExtentsPerLayout")
        }
        if !(1...Limits.maxPathLength).contains(Int(maxPathLength)) { throw .outOfRange(field: "maxPathLength") }
        if !(1...Limits.maxListEntries).contains(Int(maxListEntries)) { throw .outOfRange(field: "maxListEntries") }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u16(dialect)
        w.u16(maxOutstandingRequests)
        w.u32(defaultRecallDeadlineMs)
        w.u64(capabilities.rawValue)
        w.append(serverId)
        w.u16(maxBufferDescriptors)
        w.u16(maxExtentsPerLayout)
        w.u16(maxPathLength)
        w.u16(maxListEntries)
        w.u32(maxOpenFiles)
        w.u32(maxLayouts)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> NegotiateResponse {
        let d = try r.u16("dialect")
        let mor = try r.u16("maxOutstandingRequests")
        let rd = try r.u32("defaultRecallDeadlineMs")
        let caps = Capabilities(rawValue: try r.u64("capabilities"))
        let sid = try r.bytes(Limits.guidLength, "serverId")
        let mbd = try r.u16("maxBufferDescriptors")
        let mel = try r.u16("maxExtentsPerLayout")
        let mpl = try r.u16("maxPathLength")
        let mle = try r.u16("maxListEntries")
        let mof = try r.u32("maxOpenFiles")
        let ml = try r.u32("maxLayouts")
        let m = NegotiateResponse(dialect: d, maxOutstandingRequests: mor, defaultRecallDeadlineMs: rd,
                                  capabilities: caps, serverId: sid, maxBufferDescriptors: mbd,
                                  maxExtentsPerLayout: mel, maxPathLength: mpl, maxListEntries: mle,
                                  maxOpenFiles: mof, maxLayouts: ml)
        try m.validate()
        return m
    }
}
