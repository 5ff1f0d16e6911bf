/// Properties of a connected export.
public struct TreeFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Writes, RW layouts and namespace changes are refused with READ_ONLY.
    public static let readOnly = TreeFlags(rawValue: 0x1)
    /// The export's directory is on a DAX file system (layouts map pmem directly).
    public static let dax = TreeFlags(rawValue: 0x2)
    public static let known: TreeFlags = [.readOnly, .dax]
}

/// TREE_CONNECT request: attach to an export by name.
public struct TreeConnectRequest: WireBody {
    public var exportName: String
    public init(exportName: String) { self.exportName = exportName }

    func encode(into w: inout ByteWriter) throws(WireError) {
        let n = try utf8Length(exportName, max: Limits.maxExportNameLength, min: 1, "exportName")
        w.u16(n)
        w.zeros(6)
        w.append(exportName.utf8)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> TreeConnectRequest {
        let n = Int(try r.u16("nameLength"))
        if n > Limits.maxExportNameLength { throw .oversized(field: "exportName") }
        if n == 0 { throw .outOfRange(field: "exportName") }
        try r.reserved(6, "reserved")
        return TreeConnectRequest(exportName: try r.utf8(n, "exportName"))
    }
}

/// TREE_CONNECT response: the tree id that path-based requests name.
public struct TreeConnectResponse: WireBody {
    public static let size = 8
    /// Non-zero.
    public var treeId: UInt32
    public var flags: TreeFlags
    public init(treeId: UInt32, flags: TreeFlags) {
        self.treeId = treeId
        self.flags = flags
    }

    func validate() throws(WireError) {
        try checkNonzero(treeId, "treeId")
        try checkFlags(flags.rawValue, known: TreeFlags.known.rawValue, "treeFlags")
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u32(treeId)
        w.u32(flags.rawValue)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> TreeConnectResponse {
        let m = TreeConnectResponse(treeId: try r.u32("treeId"), flags: TreeFlags(rawValue: try r.u32("treeFlags")))
        try m.validate()
        return m
    }
}

/// TREE_DISCONNECT request. Closes the tree's open files and returns their layouts.
public struct TreeDisconnectRequest: WireBody {
    public static let size = 8
    public var treeId: UInt32
    public init(treeId: UInt32) { self.treeId = treeId }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkNonzero(treeId, "treeId")
        w.u32(treeId)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> TreeDisconnectRequest {
        let id = try r.u32("treeId")
        try checkNonzero(id, "treeId")
        try r.reserved(4, "reserved")
        return TreeDisconnectRequest(treeId: id)
    }
}
