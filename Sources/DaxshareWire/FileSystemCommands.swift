/// MKDIR, SET_ATTRIBUTES, STATFS and ALLOCATE (PROTOCOL.md §4.21–4.24): what a file system
/// mounted over daxshare needs beyond the namespace commands of §4.12–4.17. New in 1.0 after
/// its first commands, like SERVER_CLIENTS: a server that predates them answers NOT_SUPPORTED
/// and keeps the connection (§3.4, step 2).

/// MKDIR request: create a directory. Reply: its attributes.
public struct MkdirRequest: WireBody {
    public var treeId: UInt32
    /// Permission bits (≤ 0o7777), subject to the server's umask as OPEN's mode is.
    public var mode: UInt32
    /// Relative to the export root (PROTOCOL.md §4.1).
    public var path: String

    public init(treeId: UInt32, mode: UInt32 = 0o755, path: String) {
        self.treeId = treeId
        self.mode = mode
        self.path = path
    }

    func validate() throws(WireError) {
        try checkNonzero(treeId, "treeId")
        if mode & ~0o7777 != 0 { throw .outOfRange(field: "mode") }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        let n = try utf8Length(path, max: Limits.maxPathLength, "path")
        w.u32(treeId)
        w.u32(mode)
        w.u16(n)
        w.zeros(6)
        w.append(path.utf8)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> MkdirRequest {
        let tree = try r.u32("treeId")
        let mode = try r.u32("mode")
        let n = Int(try r.u16("pathLength"))
        if n > Limits.maxPathLength { throw .oversized(field: "path") }
        try r.reserved(6, "reserved")
        let m = MkdirRequest(treeId: tree, mode: mode, path: try r.utf8(n, "path"))
        try m.validate()
        return m
    }
}

/// A time SET_ATTRIBUTES sets: the server's clock when it applies the change, or a given time.
public enum TimeChange: Sendable, Hashable {
    case now
    /// Nanoseconds since the Unix epoch (negative: before it).
    case at(nanosecondsSinceEpoch: Int64)
}

/// What SET_ATTRIBUTES changes; nil leaves an attribute as it is. An empty change changes
/// nothing and returns the attributes.
public struct AttributeChange: Sendable, Hashable {
    /// Permission bits, ≤ 0o7777 (the server's umask does not apply).
    public var mode: UInt32?
    public var accessTime: TimeChange?
    public var modificationTime: TimeChange?

    public init(mode: UInt32? = nil, accessTime: TimeChange? = nil, modificationTime: TimeChange? = nil) {
        self.mode = mode
        self.accessTime = accessTime
        self.modificationTime = modificationTime
    }

    public var isEmpty: Bool { mode == nil && accessTime == nil && modificationTime == nil }
}

/// Which attributes a SET_ATTRIBUTES sets (the `which` field).
public struct SetAttributesFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Set the permission bits to `mode`.
    public static let mode = SetAttributesFlags(rawValue: 0x01)
    /// Set the access time to `atimeNs`.
    public static let accessTime = SetAttributesFlags(rawValue: 0x02)
    /// Set the modification time to `mtimeNs`.
    public static let modificationTime = SetAttributesFlags(rawValue: 0x04)
    /// Set the access time to the server's clock (not with ATIME).
    public static let accessTimeNow = SetAttributesFlags(rawValue: 0x08)
    /// Set the modification time to the server's clock (not with MTIME).
    public static let modificationTimeNow = SetAttributesFlags(rawValue: 0x10)
    public static let known: SetAttributesFlags = [.mode, .accessTime, .modificationTime, .accessTimeNow, .modificationTimeNow]
}

/// SET_ATTRIBUTES request: change the permission bits and times of an open file, or of a path
/// (the named object itself: a final symlink is not followed; "" is the export root). Reply:
/// the attributes after the change.
public struct SetAttributesRequest: WireBody {
    public static let fixedSize = 40

    /// The file it changes, addressed as STAT addresses one (PROTOCOL.md §4.12).
    public enum Target: Sendable, Hashable {
        case fileId(UInt64)
        case path(treeId: UInt32, path: String)
    }

    public var target: Target
    public var change: AttributeChange

    public init(_ target: Target, _ change: AttributeChange) {
        self.target = target
        self.change = change
    }

    /// The wire's `which` and value fields for `change`.
    var fields: (which: SetAttributesFlags, mode: UInt32, atimeNs: Int64, mtimeNs: Int64) {
        var which: SetAttributesFlags = []
        if change.mode != nil { which.insert(.mode) }
        var atime: Int64 = 0, mtime: Int64 = 0
        switch change.accessTime {
        case .now: which.insert(.accessTimeNow)
        case let .at(ns): which.insert(.accessTime); atime = ns
        case nil: break
        }
        switch change.modificationTime {
        case .now: which.insert(.modificationTimeNow)
        case let .at(ns): which.insert(.modificationTime); mtime = ns
        case nil: break
        }
        return (which, change.mode ?? 0, atime, mtime)
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        if let mode = change.mode, mode & ~0o7777 != 0 { throw .outOfRange(field: "mode") }
        let f = fields
        switch target {
        case let .fileId(id):
            try checkNonzero(id, "fileId")
            w.u16(1)
            w.u16(0)
            w.u32(0)
            w.u64(id)
        case let .path(tree, path):
            try checkNonzero(tree, "treeId")
            let n = try utf8Length(path, max: Limits.maxPathLength, "path")
            w.u16(2)
            w.u16(n)
            w.u32(tree)
            w.u64(0)
        }
        w.u32(f.which.rawValue)
        w.u32(f.mode)
        w.i64(f.atimeNs)
        w.i64(f.mtimeNs)
        if case let .path(_, path) = target { w.append(path.utf8) }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> SetAttributesRequest {
        let kind = try r.u16("kind")
        let n = Int(try r.u16("pathLength"))
        let tree = try r.u32("treeId")
        let id = try r.u64("fileId")
        let which = SetAttributesFlags(rawValue: try r.u32("which"))
        let mode = try r.u32("mode")
        let atime = try r.i64("atimeNs")
        let mtime = try r.i64("mtimeNs")
        try checkFlags(which.rawValue, known: SetAttributesFlags.known.rawValue, "which")
        if which.isSuperset(of: [.accessTime, .accessTimeNow]) || which.isSuperset(of: [.modificationTime, .modificationTimeNow]) {
            throw .outOfRange(field: "which")
        }
        if which.contains(.mode) {
            if mode & ~0o7777 != 0 { throw .outOfRange(field: "mode") }
        } else if mode != 0 {
            throw .reservedNotZero(field: "mode")
        }
        if !which.contains(.accessTime) && atime != 0 { throw .reservedNotZero(field: "atimeNs") }
        if !which.contains(.modificationTime) && mtime != 0 { throw .reservedNotZero(field: "mtimeNs") }
        let change = AttributeChange(
            mode: which.contains(.mode) ? mode : nil,
            accessTime: which.contains(.accessTimeNow) ? .now : which.contains(.accessTime) ? .at(nanosecondsSinceEpoch: atime) : nil,
            modificationTime: which.contains(.modificationTimeNow)
                ? .now : which.contains(.modificationTime) ? .at(nanosecondsSinceEpoch: mtime) : nil)
        switch kind {
        case 1:
            if n != 0 { throw .reservedNotZero(field: "pathLength") }
            if tree != 0 { throw .reservedNotZero(field: "treeId") }
            try checkNonzero(id, "fileId")
            return SetAttributesRequest(.fileId(id), change)
        case 2:
            if id != 0 { throw .reservedNotZero(field: "fileId") }
            try checkNonzero(tree, "treeId")
            if n > Limits.maxPathLength { throw .oversized(field: "path") }
            return SetAttributesRequest(.path(treeId: tree, path: try r.utf8(n, "path")), change)
        default:
            throw .outOfRange(field: "kind")
        }
    }
}

/// STATFS request: the space and inodes of the file system an export is on.
public struct StatfsRequest: WireBody {
    public static let size = 8
    public var treeId: UInt32
    public init(treeId: UInt32) { self.treeId = treeId }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkNonzero(treeId, "treeId")
        w.u32(treeId)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> StatfsRequest {
        let id = try r.u32("treeId")
        try r.reserved(4, "reserved")
        try checkNonzero(id, "treeId")
        return StatfsRequest(treeId: id)
    }
}

/// STATFS response (48 bytes): `fstatvfs` of the export's directory. The block counts are in
/// units of `blockSize`.
public struct FileSystemStatistics: WireBody {
    public static let size = 48
    /// Bytes per block of the counts below (statvfs `f_frsize`); ≥ 1.
    public var blockSize: UInt32
    /// Longest name the file system takes, in bytes (`f_namemax`).
    public var maxNameLength: UInt32
    public var totalBlocks: UInt64
    public var freeBlocks: UInt64
    /// Free blocks an unprivileged user may use (`f_bavail`).
    public var availableBlocks: UInt64
    public var totalFiles: UInt64
    public var freeFiles: UInt64

    public init(blockSize: UInt32, maxNameLength: UInt32, totalBlocks: UInt64, freeBlocks: UInt64, availableBlocks: UInt64,
                totalFiles: UInt64, freeFiles: UInt64) {
        self.blockSize = blockSize
        self.maxNameLength = maxNameLength
        self.totalBlocks = totalBlocks
        self.freeBlocks = freeBlocks
        self.availableBlocks = availableBlocks
        self.totalFiles = totalFiles
        self.freeFiles = freeFiles
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkNonzero(blockSize, "blockSize")
        w.u32(blockSize)
        w.u32(maxNameLength)
        w.u64(totalBlocks)
        w.u64(freeBlocks)
        w.u64(availableBlocks)
        w.u64(totalFiles)
        w.u64(freeFiles)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> FileSystemStatistics {
        let s = FileSystemStatistics(
            blockSize: try r.u32("blockSize"), maxNameLength: try r.u32("maxNameLength"), totalBlocks: try r.u64("totalBlocks"),
            freeBlocks: try r.u64("freeBlocks"), availableBlocks: try r.u64("availableBlocks"),
            totalFiles: try r.u64("totalFiles"), freeFiles: try r.u64("freeFiles"))
        try checkNonzero(s.blockSize, "blockSize")
        return s
    }
}

public struct AllocateFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Allocate without changing the size (fallocate's FALLOC_FL_KEEP_SIZE).
    public static let keepSize = AllocateFlags(rawValue: 0x1)
    public static let known: AllocateFlags = [.keepSize]
}

/// ALLOCATE request: allocate zeroed blocks for `[offset, offset+length)` of an open file
/// (fallocate); without KEEP_SIZE a range past the end grows the file. Reply: the attributes.
public struct AllocateRequest: WireBody {
    public static let size = 32
    public var fileId: UInt64
    public var range: ByteRange
    public var flags: AllocateFlags

    public init(fileId: UInt64, range: ByteRange, flags: AllocateFlags = []) {
        self.fileId = fileId
        self.range = range
        self.flags = flags
    }

    func validate() throws(WireError) {
        try checkNonzero(fileId, "fileId")
        try checkRange(offset: range.offset, length: range.length, "length")
        try checkFlags(flags.rawValue, known: AllocateFlags.known.rawValue, "allocateFlags")
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u64(fileId)
        w.u64(range.offset)
        w.u64(range.length)
        w.u32(flags.rawValue)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> AllocateRequest {
        let id = try r.u64("fileId")
        let offset = try r.u64("offset")
        let length = try r.u64("length")
        let flags = AllocateFlags(rawValue: try r.u32("allocateFlags"))
        try r.reserved(4, "reserved")
        let m = AllocateRequest(fileId: id, range: ByteRange(offset: offset, length: length), flags: flags)
        try m.validate()
        return m
    }
}
