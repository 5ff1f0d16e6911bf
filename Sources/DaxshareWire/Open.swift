/// OPEN flags. Unknown bits are rejected by the codec; meaningless combinations (no access,
/// EXCLUSIVE without CREATE, TRUNCATE without WRITE) are refused by the server with
/// INVALID_ARGUMENT.
public struct OpenFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = OpenFlags(rawValue: 0x01)
    public static let write = OpenFlags(rawValue: 0x02)
    /// Create the file if it does not exist (with `mode`).
    public static let create = OpenFlags(rawValue: 0x04)
    /// With CREATE: fail with EXISTS if the file exists.
    public static let exclusive = OpenFlags(rawValue: 0x08)
    /// Truncate to 0 on open (recalls other sessions' layouts first).
    public static let truncate = OpenFlags(rawValue: 0x10)
    /// Every WRITE on this file id is durable before its reply, as if it had WRITE_THROUGH.
    public static let writeThrough = OpenFlags(rawValue: 0x20)
    public static let known: OpenFlags = [.read, .write, .create, .exclusive, .truncate, .writeThrough]
}

/// OPEN request: open (or create) a regular file by path within a tree.
public struct OpenRequest: WireBody {
    public var treeId: UInt32
    public var flags: OpenFlags
    /// Permission bits for a created file (0o7777 mask), subject to the server's umask.
    public var mode: UInt32
    /// Relative to the export root (PROTOCOL.md §4.1).
    public var path: String

    public init(treeId: UInt32, flags: OpenFlags, mode: UInt32 = 0o644, path: String) {
        self.treeId = treeId
        self.flags = flags
        self.mode = mode
        self.path = path
    }

    func validate() throws(WireError) {
        try checkNonzero(treeId, "treeId")
        try checkFlags(flags.rawValue, known: OpenFlags.known.rawValue, "openFlags")
        if mode & ~0o7777 != 0 { throw .outOfRange(field: "mode") }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        let n = try utf8Length(path, max: Limits.maxPathLength, "path")
        w.u32(treeId)
        w.u32(flags.rawValue)
        w.u32(mode)
        w.u16(n)
        w.u16(0)
        w.append(path.utf8)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> OpenRequest {
        let tree = try r.u32("treeId")
        let flags = OpenFlags(rawValue: try r.u32("openFlags"))
        let mode = try r.u32("mode")
        let n = Int(try r.u16("pathLength"))
        if n > Limits.maxPathLength { throw .oversized(field: "path") }
        try r.reserved(2, "reserved")
        let m = OpenRequest(treeId: tree, flags: flags, mode: mode, path: try r.utf8(n, "path"))
        try m.validate()
        return m
    }
}

/// OPEN response: the file id and the file's attributes after the open (and any truncate).
public struct OpenResponse: WireBody {
    public static let size = 64
    /// Non-zero, unique within the session.
    public var fileId: UInt64
    public var attributes: FileAttributes

    public init(fileId: UInt64, attributes: FileAttributes) {
        self.fileId = fileId
        self.attributes = attributes
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkNonzero(fileId, "fileId")
        w.u64(fileId)
        try attributes.encode(into: &w)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> OpenResponse {
        let id = try r.u64("fileId")
        try checkNonzero(id, "fileId")
        return OpenResponse(fileId: id, attributes: try FileAttributes.decode(from: &r))
    }
}

/// A request body that is just a file id: CLOSE.
public struct CloseRequest: WireBody {
    public static let size = 8
    public var fileId: UInt64
    public init(fileId: UInt64) { self.fileId = fileId }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkNonzero(fileId, "fileId")
        w.u64(fileId)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> CloseRequest {
        let id = try r.u64("fileId")
        try checkNonzero(id, "fileId")
        return CloseRequest(fileId: id)
    }
}
