/// LAYOUTCOMMIT request (PROTOCOL.md §5.3): the ranges the client wrote one-sided through this
/// layout, and optionally the new end of file. The reply is the durability point.
public struct LayoutCommitRequest: WireBody {
    public var stateid: LayoutStateid
    /// Offset one past the last byte written; the file's size becomes max(size, newSize).
    public var newSize: UInt64?
    /// Written ranges, each inside the layout. At most 64.
    public var ranges: [ByteRange]
    /// TOUCH: set mtime and ctime to now even without ranges or a grown size: the client wrote
    /// through the layout and made the bytes durable by RDMA FLUSH (PROTOCOL.md §5.8).
    public var touch: Bool

    public init(stateid: LayoutStateid, newSize: UInt64? = nil, ranges: [ByteRange], touch: Bool = false) {
        self.stateid = stateid
        self.newSize = newSize
        self.ranges = ranges
        self.touch = touch
    }

    static let newSizeFlag: UInt32 = 0x1
    static let touchFlag: UInt32 = 0x2

    func validate() throws(WireError) {
        if ranges.count > Limits.maxCommitRanges { throw .oversized(field: "rangeCount") }
        if ranges.isEmpty && newSize == nil && !touch { throw .outOfRange(field: "rangeCount") }
        for range in ranges { try checkRange(offset: range.offset, length: range.length, "range.length") }
        if let s = newSize, s > UInt64(Int64.max) { throw .outOfRange(field: "newSize") }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        try stateid.encode(into: &w)
        w.u64(newSize ?? 0)
        w.u32((newSize == nil ? 0 : Self.newSizeFlag) | (touch ? Self.touchFlag : 0))
        w.u16(UInt16(ranges.count))
        w.u16(0)
        for range in ranges {
            w.u64(range.offset)
            w.u64(range.length)
        }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> LayoutCommitRequest {
        let sid = try LayoutStateid.decode(from: &r)
        let size = try r.u64("newSize")
        let flags = try r.u32("commitFlags")
        try checkFlags(flags, known: newSizeFlag | touchFlag, "commitFlags")
        if flags & newSizeFlag == 0 && size != 0 { throw .reservedNotZero(field: "newSize") }
        let count = Int(try r.u16("rangeCount"))
        if count > Limits.maxCommitRanges { throw .oversized(field: "rangeCount") }
        try r.reserved(2, "reserved")
        var ranges: [ByteRange] = []
        ranges.reserveCapacity(count)
        for _ in 0..<count {
            ranges.append(ByteRange(offset: try r.u64("range.offset"), length: try r.u64("range.length")))
        }
        let m = LayoutCommitRequest(stateid: sid, newSize: flags & newSizeFlag != 0 ? size : nil, ranges: ranges,
                                    touch: flags & touchFlag != 0)
        try m.validate()
        return m
    }
}

/// LAYOUTCOMMIT response: the layout's new stateid (seqid + 1) and the file's durable size.
public struct LayoutCommitResponse: WireBody {
    public static let size = 24
    public var stateid: LayoutStateid
    public var size: UInt64
    public init(stateid: LayoutStateid, size: UInt64) {
        self.stateid = stateid
        self.size = size
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try stateid.encode(into: &w)
        w.u64(size)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> LayoutCommitResponse {
        LayoutCommitResponse(stateid: try LayoutStateid.decode(from: &r), size: try r.u64("size"))
    }
}

/// LAYOUTRETURN request (PROTOCOL.md §5.4): give back a whole layout, or the extents that lie
/// entirely inside a range. Uncommitted writes through returned extents are not made durable.
public struct LayoutReturnRequest: WireBody {
    public static let size = 40
    public var stateid: LayoutStateid
    /// nil returns the whole layout.
    public var range: ByteRange?
    /// The CB_LAYOUTRECALL this answers, or 0 for a voluntary return.
    public var recallId: UInt32

    public init(stateid: LayoutStateid, range: ByteRange? = nil, recallId: UInt32 = 0) {
        self.stateid = stateid
        self.range = range
        self.recallId = recallId
    }

    static let allFlag: UInt32 = 0x1

    func encode(into w: inout ByteWriter) throws(WireError) {
        if let range { try checkRange(offset: range.offset, length: range.length, "length") }
        try stateid.encode(into: &w)
        w.u64(range?.offset ?? 0)
        w.u64(range?.length ?? 0)
        w.u32(range == nil ? Self.allFlag : 0)
        w.u32(recallId)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> LayoutReturnRequest {
        let sid = try LayoutStateid.decode(from: &r)
        let off = try r.u64("offset")
        let len = try r.u64("length")
        let flags = try r.u32("returnFlags")
        try checkFlags(flags, known: allFlag, "returnFlags")
        let recall = try r.u32("recallId")
        if flags & allFlag != 0 {
            if off != 0 { throw .reservedNotZero(field: "offset") }
            if len != 0 { throw .reservedNotZero(field: "length") }
            return LayoutReturnRequest(stateid: sid, range: nil, recallId: recall)
        }
        try checkRange(offset: off, length: len, "length")
        return LayoutReturnRequest(stateid: sid, range: ByteRange(offset: off, length: len), recallId: recall)
    }
}
