/// SET_SIZE request: truncate or extend an open file (needs write access). Shrinking recalls
/// other sessions' layouts that overlap the removed range first. Reply: the new attributes.
public struct SetSizeRequest: WireBody {
    public static let size = 16
    public var fileId: UInt64
    public var size: UInt64
    public init(fileId: UInt64, size: UInt64) {
        self.fileId = fileId
        self.size = size
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkNonzero(fileId, "fileId")
        if size > UInt64(Int64.max) { throw .outOfRange(field: "size") }
        w.u64(fileId)
        w.u64(size)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> SetSizeRequest {
        let m = SetSizeRequest(fileId: try r.u64("fileId"), size: try r.u64("size"))
        try checkNonzero(m.fileId, "fileId")
        if m.size > UInt64(Int64.max) { throw .outOfRange(field: "size") }
        return m
    }
}

/// The shared layout of PUNCH_HOLE and FLUSH: a file id and a byte range (24 bytes).
struct FileRangeRequest: WireBody {
    var fileId: UInt64
    var offset: UInt64
    var length: UInt64
    /// FLUSH allows length 0; PUNCH_HOLE does not.
    let allowEmpty: Bool

    init(fileId: UInt64, offset: UInt64, length: UInt64, allowEmpty: Bool) {
        self.fileId = fileId
        self.offset = offset
        self.length = length
        self.allowEmpty = allowEmpty
    }

    func validate() throws(WireError) {
        try checkNonzero(fileId, "fileId")
        try checkRange(offset: offset, length: length, "length", allowEmpty: allowEmpty)
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u64(fileId)
        w.u64(offset)
        w.u64(length)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> FileRangeRequest {
        // The caller fixes allowEmpty through the typed wrappers below.
        FileRangeRequest(fileId: try r.u64("fileId"), offset: try r.u64("offset"), length: try r.u64("length"),
                         allowEmpty: true)
    }
}

/// PUNCH_HOLE request: deallocate `[offset, offset+length)`; it reads as zeros afterwards and
/// the file size does not change. Overlapping layouts of other sessions are recalled first.
public struct PunchHoleRequest: WireBody {
    public var fileId: UInt64
    public var range: ByteRange
    public init(fileId: UInt64, range: ByteRange) {
        self.fileId = fileId
        self.range = range
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try FileRangeRequest(fileId: fileId, offset: range.offset, length: range.length, allowEmpty: false)
            .encode(into: &w)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> PunchHoleRequest {
        var raw = try FileRangeRequest.decode(from: &r)
        raw = FileRangeRequest(fileId: raw.fileId, offset: raw.offset, length: raw.length, allowEmpty: false)
        try raw.validate()
        return PunchHoleRequest(fileId: raw.fileId, range: ByteRange(offset: raw.offset, length: raw.length))
    }
}

/// FLUSH request: make the file's data in the range, and its metadata, durable. Length 0
/// means to the end of the file.
public struct FlushRequest: WireBody {
    public var fileId: UInt64
    public var offset: UInt64
    public var length: UInt64
    public init(fileId: UInt64, offset: UInt64 = 0, length: UInt64 = 0) {
        self.fileId = fileId
        self.offset = offset
        self.length = length
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try FileRangeRequest(fileId: fileId, offset: offset, length: length, allowEmpty: true).encode(into: &w)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> FlushRequest {
        let raw = try FileRangeRequest.decode(from: &r)
        try raw.validate()
        return FlushRequest(fileId: raw.fileId, offset: raw.offset, length: raw.length)
    }
}

public struct UnlinkFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Remove an empty directory (rmdir) instead of a file.
    public static let directory = UnlinkFlags(rawValue: 0x1)
    public static let known: UnlinkFlags = [.directory]
}

/// UNLINK request: remove a name. Layouts on the file held by other sessions are recalled
/// first; open file ids stay usable until closed (POSIX semantics).
public struct UnlinkRequest: WireBody {
    public var treeId: UInt32
    public var flags: UnlinkFlags
    public var path: String
    public init(treeId: UInt32, flags: UnlinkFlags = [], path: String) {
        self.treeId = treeId
        self.flags = flags
        self.path = path
    }

    func validate() throws(WireError) {
        try checkNonzero(treeId, "treeId")
        try checkFlags(flags.rawValue, known: UnlinkFlags.known.rawValue, "unlinkFlags")
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        let n = try utf8Length(path, max: Limits.maxPathLength, "path")
        w.u32(treeId)
        w.u16(flags.rawValue)
        w.u16(n)
        w.append(path.utf8)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> UnlinkRequest {
        let tree = try r.u32("treeId")
        let flags = UnlinkFlags(rawValue: try r.u16("unlinkFlags"))
        let n = Int(try r.u16("pathLength"))
        if n > Limits.maxPathLength { throw .oversized(field: "path") }
        let m = UnlinkRequest(treeId: tree, flags: flags, path: try r.utf8(n, "path"))
        try m.validate()
        return m
    }
}

public struct RenameFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Fail with EXISTS instead of replacing an existing target.
    public static let noReplace = RenameFlags(rawValue: 0x1)
    public static let known: RenameFlags = [.noReplace]
}

/// RENAME request: move a name within one tree. Layouts on the source, and on a replaced
/// target, held by other sessions are recalled first.
public struct RenameRequest: WireBody {
    public var treeId: UInt32
    public var flags: RenameFlags
    public var from: String
    public var to: String
    public init(treeId: UInt32, flags: RenameFlags = [], from: String, to: String) {
        self.treeId = treeId
        self.flags = flags
        self.from = from
        self.to = to
    }

    func validate() throws(WireError) {
        try checkNonzero(treeId, "treeId")
        try checkFlags(flags.rawValue, known: RenameFlags.known.rawValue, "renameFlags")
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        let nf = try utf8Length(from, max: Limits.maxPathLength, "from")
        let nt = try utf8Length(to, max: Limits.maxPathLength, "to")
        w.u32(treeId)
        w.u32(flags.rawValue)
        w.u16(nf)
        w.u16(nt)
        w.u32(0)
        w.append(from.utf8)
        w.append(to.utf8)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> RenameRequest {
        let tree = try r.u32("treeId")
        let flags = RenameFlags(rawValue: try r.u32("renameFlags"))
        let nf = Int(try r.u16("fromLength"))
        let nt = Int(try r.u16("toLength"))
        if nf > Limits.maxPathLength { throw .oversized(field: "from") }
        if nt > Limits.maxPathLength { throw .oversized(field: "to") }
        try r.reserved(4, "reserved")
        let from = try r.utf8(nf, "from")
        let to = try r.utf8(nt, "to")
        let m = RenameRequest(treeId: tree, flags: flags, from: from, to: to)
        try m.validate()
        return m
    }
}
