/// Why the server is recalling a layout (logged by both sides; the client's duty is the same
/// whatever the reason).
public enum RecallReason: UInt16, Sendable, Hashable {
    /// Another process on the server opened or truncated the file (OS lease break).
    case leaseBreak = 1
    case truncate = 2
    case punchHole = 3
    case unlink = 4
    case rename = 5
    /// Another session asked for an RW layout overlapping this one (or any layout overlapping
    /// this RW one).
    case conflictingLayout = 6
    case serverShutdown = 7
    /// An operator or a server limit.
    case administrative = 8
}

/// CB_LAYOUTRECALL (server → client, PROTOCOL.md §5.5): stop using the layout in this range,
/// finish in-flight one-sided operations, LAYOUTCOMMIT what is dirty, then LAYOUTRETURN with
/// `recallId` before the deadline. After the deadline the layout is revoked (fenced).
public struct LayoutRecall: WireBody {
    public static let size = 56
    /// The layout, with its seqid incremented by the recall.
    public var stateid: LayoutStateid
    public var fileId: UInt64
    public var range: ByteRange
    /// Non-zero; names this recall in the acknowledgement and in LAYOUTRETURN.
    public var recallId: UInt32
    /// Milliseconds from when the server sent this message until it fences the layout.
    public var deadlineMs: UInt32
    public var reason: RecallReason

    public init(stateid: LayoutStateid, fileId: UInt64, range: ByteRange, recallId: UInt32, deadlineMs: UInt32,
                reason: RecallReason) {
        self.stateid = stateid
        self.fileId = fileId
        self.range = range
        self.recallId = recallId
        self.deadlineMs = deadlineMs
        self.reason = reason
    }

    func validate() throws(WireError) {
        try checkNonzero(fileId, "fileId")
        try checkRange(offset: range.offset, length: range.length, "length")
        try checkNonzero(recallId, "recallId")
        try checkNonzero(deadlineMs, "deadlineMs")
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        try stateid.encode(into: &w)
        w.u64(fileId)
        w.u64(range.offset)
        w.u64(range.length)
        w.u32(recallId)
        w.u32(deadlineMs)
        w.u16(reason.rawValue)
        w.u16(0)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> LayoutRecall {
        let sid = try LayoutStateid.decode(from: &r)
        let file = try r.u64("fileId")
        let off = try r.u64("offset")
        let len = try r.u64("length")
        let rid = try r.u32("recallId")
        let dl = try r.u32("deadlineMs")
        guard let reason = RecallReason(rawValue: try r.u16("reason")) else { throw .outOfRange(field: "reason") }
        try r.reserved(2, "reserved")
        try r.reserved(4, "reserved2")
        let m = LayoutRecall(stateid: sid, fileId: file, range: ByteRange(offset: off, length: len), recallId: rid,
                             deadlineMs: dl, reason: reason)
        try m.validate()
        return m
    }
}

/// The client's acknowledgement of a CB_LAYOUTRECALL: it has seen the recall (status OK) or
/// does not hold that layout any more (status BAD_STATEID, which the server takes as returned).
/// The acknowledgement is not the return: LAYOUTRETURN is.
public struct LayoutRecallAck: WireBody {
    public static let size = 8
    public var recallId: UInt32
    public init(recallId: UInt32) { self.recallId = recallId }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkNonzero(recallId, "recallId")
        w.u32(recallId)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> LayoutRecallAck {
        let id = try r.u32("recallId")
        try checkNonzero(id, "recallId")
        try r.reserved(4, "reserved")
        return LayoutRecallAck(recallId: id)
    }
}
