/// LIST request: one page of a directory's entries.
public struct ListRequest: WireBody {
    public var treeId: UInt32
    /// At most this many entries (1...1024, and the server's maxListEntries).
    public var maxEntries: UInt16
    /// 0 for the first page, then the previous page's `nextCookie`.
    public var cookie: UInt64
    /// Directory path; empty for the export root.
    public var path: String

    public init(treeId: UInt32, maxEntries: UInt16, cookie: UInt64 = 0, path: String) {
        self.treeId = treeId
        self.maxEntries = maxEntries
        self.cookie = cookie
        self.path = path
    }

    func validate() throws(WireError) {
        try checkNonzero(treeId, "treeId")
        if !(1...Limits.maxListEntries).contains(Int(maxEntries)) { throw .outOfRange(field: "maxEntries") }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        let n = try utf8Length(path, max: Limits.maxPathLength, "path")
        w.u32(treeId)
        w.u16(maxEntries)
        w.u16(n)
        w.u64(cookie)
        w.append(path.utf8)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ListRequest {
        let tree = try r.u32("treeId")
        let max = try r.u16("maxEntries")
        let n = Int(try r.u16("pathLength"))
        if n > Limits.maxPathLength { throw .oversized(field: "path") }
        let cookie = try r.u64("cookie")
        let m = ListRequest(treeId: tree, maxEntries: max, cookie: cookie, path: try r.utf8(n, "path"))
        try m.validate()
        return m
    }
}

/// One directory entry: its attributes (lstat) and its name.
public struct ListEntry: Sendable, Hashable {
    public var attributes: FileAttributes
    /// A single name: 1...255 UTF-8 bytes, no "/" or NUL, never "." or "..".
    public var name: String
    public init(attributes: FileAttributes, name: String) {
        self.attributes = attributes
        self.name = name
    }

    static func validateName(_ name: String) throws(WireError) {
        let n = name.utf8.count
        if n > Limits.maxNameLength { throw .oversized(field: "name") }
        if n == 0 || name == "." || name == ".." || name.utf8.contains(0x2F) || name.utf8.contains(0) {
            throw .outOfRange(field: "name")
        }
    }
}

public struct ListFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// This is the last page; `nextCookie` is 0.
    public static let end = ListFlags(rawValue: 0x1)
    public static let known: ListFlags = [.end]
}

/// LIST response: entries in the server's order, and where to continue.
public struct ListResponse: WireBody {
    public var entries: [ListEntry]
    /// Opaque; pass back in the next request. 0 exactly when `isEnd`.
    public var nextCookie: UInt64
    public var isEnd: Bool

    public init(entries: [ListEntry], nextCookie: UInt64, isEnd: Bool) {
        self.entries = entries
        self.nextCookie = nextCookie
        self.isEnd = isEnd
    }

    func validate() throws(WireError) {
        if entries.count > Limits.maxListEntries { throw .oversized(field: "count") }
        if isEnd && nextCookie != 0 { throw .reservedNotZero(field: "nextCookie") }
        if !isEnd && nextCookie == 0 { throw .outOfRange(field: "nextCookie") }
        if !isEnd && entries.isEmpty { throw .outOfRange(field: "count") }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u16(UInt16(entries.count))
        w.u16(isEnd ? ListFlags.end.rawValue : 0)
        w.u32(0)
        w.u64(nextCookie)
        for e in entries {
            try ListEntry.validateName(e.name)
            try e.attributes.encode(into: &w)
            w.u16(UInt16(e.name.utf8.count))
            w.append(e.name.utf8)
        }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ListResponse {
        let count = Int(try r.u16("count"))
        if count > Limits.maxListEntries { throw .oversized(field: "count") }
        let flags = try r.u16("listFlags")
        try checkFlags(flags, known: ListFlags.known.rawValue, "listFlags")
        try r.reserved(4, "reserved")
        let cookie = try r.u64("nextCookie")
        var entries: [ListEntry] = []
        // Each entry is at least 59 bytes; never reserve more than the input could hold.
        entries.reserveCapacity(min(count, r.remaining / 59))
        for _ in 0..<count {
            let attrs = try FileAttributes.decode(from: &r)
            let n = Int(try r.u16("nameLength"))
            if n > Limits.maxNameLength { throw .oversized(field: "name") }
            let name = try r.utf8(n, "name")
            try ListEntry.validateName(name)
            entries.append(ListEntry(attributes: attrs, name: name))
        }
        let m = ListResponse(entries: entries, nextCookie: cookie, isEnd: flags & ListFlags.end.rawValue != 0)
        try m.validate()
        return m
    }
}
