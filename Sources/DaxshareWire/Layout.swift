/// Names one layout (PROTOCOL.md §5.1). `id` is chosen by the server at LAYOUTGET and never
/// reused within a server instance; `seqid` starts at 1 and goes up by one each time the
/// server changes the layout's state (a LAYOUTCOMMIT, a recall), so both sides can order
/// messages about the same layout.
public struct LayoutStateid: Sendable, Hashable, CustomStringConvertible {
    public static let size = 16
    public var id: UInt64
    public var seqid: UInt32
    public init(id: UInt64, seqid: UInt32) {
        self.id = id
        self.seqid = seqid
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkNonzero(id, "stateid.id")
        try checkNonzero(seqid, "stateid.seqid")
        w.u64(id)
        w.u32(seqid)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> LayoutStateid {
        let id = try r.u64("stateid.id")
        let seq = try r.u32("stateid.seqid")
        try r.reserved(4, "stateid.reserved")
        try checkNonzero(id, "stateid.id")
        try checkNonzero(seq, "stateid.seqid")
        return LayoutStateid(id: id, seqid: seq)
    }

    public var description: String { "\(id):\(seqid)" }
}

/// What a layout allows the client to do with one-sided RDMA.
public enum LayoutIOMode: UInt32, Sendable, Hashable {
    /// RDMA READ only; the memory regions are registered without remote write access.
    case read = 1
    /// RDMA READ and WRITE.
    case readWrite = 2
}

public struct ExtentFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The region has no remote write access (always set in READ layouts).
    public static let readOnly = ExtentFlags(rawValue: 0x1)
    /// Part of the extent lies past the file's visible size: those bytes are allocated and
    /// zero, and become part of the file only through LAYOUTCOMMIT's new size.
    public static let pastEndOfFile = ExtentFlags(rawValue: 0x2)
    /// The region takes RDMA FLUSH with placement type PERSISTENT (IBV_ACCESS_FLUSH_PERSISTENT):
    /// the client may make its own writes there durable without the server (PROTOCOL.md §5.8).
    /// Only in RW layouts, and only where RDMA_FLUSH was agreed.
    public static let persistentFlush = ExtentFlags(rawValue: 0x4)
    public static let known: ExtentFlags = [.readOnly, .pastEndOfFile, .persistentFlush]
}

/// One contiguous piece of a layout: file bytes `[fileOffset, fileOffset+length)` are at
/// `remoteAddress` in a server memory region reachable with `rkey` on this connection only.
public struct LayoutExtent: Sendable, Hashable {
    public static let size = 32
    public var fileOffset: UInt64
    public var length: UInt64
    public var remoteAddress: UInt64
    public var rkey: UInt32
    public var flags: ExtentFlags

    public init(fileOffset: UInt64, length: UInt64, remoteAddress: UInt64, rkey: UInt32, flags: ExtentFlags = []) {
        self.fileOffset = fileOffset
        self.length = length
        self.remoteAddress = remoteAddress
        self.rkey = rkey
        self.flags = flags
    }

    public var range: ByteRange { ByteRange(offset: fileOffset, length: length) }

    func validate() throws(WireError) {
        try checkRange(offset: fileOffset, length: length, "extent.length")
        try checkRange(offset: remoteAddress, length: length, "extent.remoteAddress", allowEmpty: false)
        try checkFlags(flags.rawValue, known: ExtentFlags.known.rawValue, "extent.flags")
    }
}

/// LAYOUTGET request (PROTOCOL.md §5.2).
public struct LayoutGetRequest: WireBody {
    public static let size = 40
    public var fileId: UInt64
    public var offset: UInt64
    /// Bytes wanted, ≥ 1. An RW layout may extend past the end of the file.
    public var length: UInt64
    /// The server fails with TRY_LATER/TOO_MANY rather than grant less than this from `offset`.
    public var minLength: UInt64
    public var iomode: LayoutIOMode

    public init(fileId: UInt64, offset: UInt64, length: UInt64, minLength: UInt64, iomode: LayoutIOMode) {
        self.fileId = fileId
        self.offset = offset
        self.length = length
        self.minLength = minLength
        self.iomode = iomode
    }

    func validate() throws(WireError) {
        try checkNonzero(fileId, "fileId")
        try checkRange(offset: offset, length: length, "length")
        if minLength > length { throw .outOfRange(field: "minLength") }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u64(fileId)
        w.u64(offset)
        w.u64(length)
        w.u64(minLength)
        w.u32(iomode.rawValue)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> LayoutGetRequest {
        let id = try r.u64("fileId")
        let off = try r.u64("offset")
        let len = try r.u64("length")
        let minLen = try r.u64("minLength")
        guard let mode = LayoutIOMode(rawValue: try r.u32("iomode")) else { throw .outOfRange(field: "iomode") }
        try r.reserved(4, "reserved")
        let m = LayoutGetRequest(fileId: id, offset: off, length: len, minLength: minLen, iomode: mode)
        try m.validate()
        return m
    }
}

/// LAYOUTGET response: the layout's stateid and its extents, sorted by file offset and not
/// overlapping, plus the deadline the server will apply if it recalls this layout.
public struct LayoutGetResponse: WireBody {
    public var stateid: LayoutStateid
    public var iomode: LayoutIOMode
    /// Milliseconds from the server sending CB_LAYOUTRECALL to fencing this layout.
    public var recallDeadlineMs: UInt32
    public var extents: [LayoutExtent]

    public init(stateid: LayoutStateid, iomode: LayoutIOMode, recallDeadlineMs: UInt32, extents: [LayoutExtent]) {
        self.stateid = stateid
        self.iomode = iomode
        self.recallDeadlineMs = recallDeadlineMs
        self.extents = extents
    }

    /// The file range the layout covers, from its first extent's start to its last one's end.
    public var range: ByteRange? {
        guard let first = extents.first, let last = extents.last, last.end >= first.fileOffset else { return nil }
        return ByteRange(offset: first.fileOffset, length: last.end - first.fileOffset)
    }

    func validate() throws(WireError) {
        try checkNonzero(recallDeadlineMs, "recallDeadlineMs")
        if extents.count > Limits.maxExtentsPerLayout { throw .oversized(field: "extentCount") }
        if extents.isEmpty { throw .outOfRange(field: "extentCount") }
        var previousEnd: UInt64 = 0
        for (i, e) in extents.enumerated() {
            try e.validate()
            if i > 0 && e.fileOffset < previousEnd { throw .outOfRange(field: "extent.fileOffset") }
            if iomode == .read && !e.flags.contains(.readOnly) { throw .outOfRange(field: "extent.flags") }
            if e.flags.contains(.readOnly) && e.flags.contains(.persistentFlush) { throw .outOfRange(field: "extent.flags") }
            previousEnd = e.fileOffset + e.length
        }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        try stateid.encode(into: &w)
        w.u32(iomode.rawValue)
        w.u32(recallDeadlineMs)
        w.u16(UInt16(extents.count))
        w.zeros(6)
        for e in extents {
            w.u64(e.fileOffset)
            w.u64(e.length)
            w.u64(e.remoteAddress)
            w.u32(e.rkey)
            w.u32(e.flags.rawValue)
        }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> LayoutGetResponse {
        let sid = try LayoutStateid.decode(from: &r)
        guard let mode = LayoutIOMode(rawValue: try r.u32("iomode")) else { throw .outOfRange(field: "iomode") }
        let deadline = try r.u32("recallDeadlineMs")
        let count = Int(try r.u16("extentCount"))
        if count > Limits.maxExtentsPerLayout { throw .oversized(field: "extentCount") }
        try r.reserved(6, "reserved")
        var extents: [LayoutExtent] = []
        extents.reserveCapacity(count)
        for _ in 0..<count {
            extents.append(LayoutExtent(fileOffset: try r.u64("extent.fileOffset"), length: try r.u64("extent.length"),
                                        remoteAddress: try r.u64("extent.remoteAddress"), rkey: try r.u32("extent.rkey"),
                                        flags: ExtentFlags(rawValue: try r.u32("extent.flags"))))
        }
        let m = LayoutGetResponse(stateid: sid, iomode: mode, recallDeadlineMs: deadline, extents: extents)
        try m.validate()
        return m
    }
}

extension LayoutExtent {
    var end: UInt64 { fileOffset &+ length }
}
