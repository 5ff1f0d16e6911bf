/// The kind of a file system object.
public enum FileType: UInt16, Sendable, Hashable {
    case regular = 1
    case directory = 2
    case symlink = 3
    /// Devices, FIFOs, sockets: listed and stat-able, never opened.
    case other = 4
}

/// Per-file flags in ``FileAttributes``.
public struct AttributeFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The file is on a DAX mapping (MAP_SYNC succeeds): layouts reach pmem directly.
    public static let dax = AttributeFlags(rawValue: 0x1)
    public static let known: AttributeFlags = [.dax]
}

/// The 56-byte attribute block returned by OPEN, STAT, SET_SIZE, MKDIR, SET_ATTRIBUTES, ALLOCATE
/// and in LIST entries
/// (PROTOCOL.md §4.2). `lstat` semantics: a symlink is described, not followed.
public struct FileAttributes: WireBody {
    public static let size = 56
    /// The visible size: what READ and STAT honour (see the durability contract for layouts).
    public var size: UInt64
    /// Bytes of storage allocated (st_blocks × 512); less than `size` for sparse files.
    public var allocatedSize: UInt64
    /// Nanoseconds since the Unix epoch.
    public var mtimeNs: Int64
    public var ctimeNs: Int64
    /// The inode number (stable while the file exists).
    public var fileIndex: UInt64
    /// Permission bits only (mask 0o7777); the type is in `type`.
    public var mode: UInt32
    public var nlink: UInt32
    public var type: FileType
    public var flags: AttributeFlags

    public init(size: UInt64, allocatedSize: UInt64, mtimeNs: Int64, ctimeNs: Int64, fileIndex: UInt64,
                mode: UInt32, nlink: UInt32, type: FileType, flags: AttributeFlags = []) {
        self.size = size
        self.allocatedSize = allocatedSize
        self.mtimeNs = mtimeNs
        self.ctimeNs = ctimeNs
        self.fileIndex = fileIndex
        self.mode = mode
        self.nlink = nlink
        self.type = type
        self.flags = flags
    }

    func validate() throws(WireError) {
        if mode & ~0o7777 != 0 { throw .outOfRange(field: "mode") }
        try checkFlags(flags.rawValue, known: AttributeFlags.known.rawValue, "attributeFlags")
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u64(size)
        w.u64(allocatedSize)
        w.i64(mtimeNs)
        w.i64(ctimeNs)
        w.u64(fileIndex)
        w.u32(mode)
        w.u32(nlink)
        w.u16(type.rawValue)
        w.u16(flags.rawValue)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> FileAttributes {
        let size = try r.u64("size")
        let alloc = try r.u64("allocatedSize")
        let mt = try r.i64("mtimeNs")
        let ct = try r.i64("ctimeNs")
        let idx = try r.u64("fileIndex")
        let mode = try r.u32("mode")
        let nlink = try r.u32("nlink")
        guard let type = FileType(rawValue: try r.u16("type")) else { throw .outOfRange(field: "type") }
        let flags = AttributeFlags(rawValue: try r.u16("attributeFlags"))
        try r.reserved(4, "reserved")
        let a = FileAttributes(size: size, allocatedSize: alloc, mtimeNs: mt, ctimeNs: ct, fileIndex: idx,
                               mode: mode, nlink: nlink, type: type, flags: flags)
        try a.validate()
        return a
    }
}
