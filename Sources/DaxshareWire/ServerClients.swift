/// One layout a client's session holds, as SERVER_CLIENTS lists it (PROTOCOL.md §4.9.1).
public struct ClientLayoutEntry: Sendable, Hashable {
    public var offset: UInt64
    public var length: UInt64
    /// A READ_WRITE layout (layoutFlags 0x1); otherwise READ.
    public var readWrite: Bool
    /// "EXPORT:PATH", 1…1024 bytes of UTF-8; see ``shortenedFile(_:)``.
    public var file: String
    public init(offset: UInt64, length: UInt64, readWrite: Bool, file: String) {
        self.offset = offset
        self.length = length
        self.readWrite = readWrite
        self.file = file
    }

    /// The layoutFlags bit for READ_WRITE; the other bits are 0.
    static let readWriteFlag: UInt8 = 0x1

    /// `s` if it fits in ``Limits/maxClientFileLength`` UTF-8 bytes; otherwise its end, cut on a
    /// character boundary and prefixed with "…", in at most that many bytes in all.
    public static func shortenedFile(_ s: String) -> String {
        let limit = Limits.maxClientFileLength
        if s.utf8.count <= limit { return s }
        let ellipsis = "…"
        let budget = limit - ellipsis.utf8.count
        var start = s.endIndex
        var kept = 0
        while start > s.startIndex {
            let previous = s.index(before: start)
            let n = s.utf8.distance(from: previous, to: start)
            if kept + n > budget { break }
            kept += n
            start = previous
        }
        return ellipsis + s[start...]
    }

    func validate() throws(WireError) {
        _ = try utf8Length(file, max: Limits.maxClientFileLength, min: 1, "file")
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try validate()
        w.u64(offset)
        w.u64(length)
        w.u8(readWrite ? Self.readWriteFlag : 0)
        w.zeros(1)
        w.u16(UInt16(file.utf8.count))
        w.append(file.utf8)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ClientLayoutEntry {
        let offset = try r.u64("offset")
        let length = try r.u64("length")
        let flags = try r.u8("layoutFlags")
        try checkFlags(flags, known: readWriteFlag, "layoutFlags")
        try r.reserved(1, "reserved")
        let n = Int(try r.u16("fileLength"))
        if n > Limits.maxClientFileLength { throw .oversized(field: "file") }
        if n == 0 { throw .outOfRange(field: "file") }
        let file = try r.utf8(n, "file")
        return ClientLayoutEntry(offset: offset, length: length, readWrite: flags & readWriteFlag != 0, file: file)
    }
}

/// One connected client's session, as SERVER_CLIENTS lists it (PROTOCOL.md §4.9.1).
public struct ClientEntry: Sendable, Hashable {
    public var sessionId: UInt64
    /// Seconds since the session was established.
    public var ageSeconds: UInt32
    public var openFiles: UInt32
    public var bytesReadTwoSided: UInt64
    public var bytesWrittenTwoSided: UInt64
    public var bytesLayoutGranted: UInt64
    public var bytesCommittedOneSided: UInt64
    /// Layouts the session holds; at least `layouts.count` (at most 16 are listed).
    public var layoutsHeld: UInt32
    /// At most ``Limits/maxLayoutsListed``.
    public var layouts: [ClientLayoutEntry]
    /// The peer's address as the server sees it, 1…255 bytes of UTF-8.
    public var address: String
    /// The authenticated identity, 0…255 bytes of UTF-8.
    public var identity: String

    public init(sessionId: UInt64, ageSeconds: UInt32, openFiles: UInt32,
                bytesReadTwoSided: UInt64, bytesWrittenTwoSided: UInt64,
                bytesLayoutGranted: UInt64, bytesCommittedOneSided: UInt64,
                layoutsHeld: UInt32, layouts: [ClientLayoutEntry], address: String, identity: String) {
        self.sessionId = sessionId
        self.ageSeconds = ageSeconds
        self.openFiles = openFiles
        self.bytesReadTwoSided = bytesReadTwoSided
        self.bytesWrittenTwoSided = bytesWrittenTwoSided
        self.bytesLayoutGranted = bytesLayoutGranted
        self.bytesCommittedOneSided = bytesCommittedOneSided
        self.layoutsHeld = layoutsHeld
        self.layouts = layouts
        self.address = address
        self.identity = identity
    }

    /// Size of the fixed part, before address, identity and layouts.
    static let fixedSize = 56
    /// Size of a layout entry's fixed part, before its file.
    static let layoutFixedSize = 20

    func encode(into w: inout ByteWriter) throws(WireError) {
        if layouts.count > Limits.maxLayoutsListed { throw .oversized(field: "layoutCount") }
        if UInt64(layoutsHeld) < UInt64(layouts.count) { throw .outOfRange(field: "layoutsHeld") }
        let a = try utf8Length(address, max: Limits.maxIdentityLength, min: 1, "address")
        let i = try utf8Length(identity, max: Limits.maxIdentityLength, "identity")
        w.u64(sessionId)
        w.u32(ageSeconds)
        w.u32(openFiles)
        w.u64(bytesReadTwoSided)
        w.u64(bytesWrittenTwoSided)
        w.u64(bytesLayoutGranted)
        w.u64(bytesCommittedOneSided)
        w.u32(layoutsHeld)
        w.u16(UInt16(layouts.count))
        w.u8(UInt8(a))
        w.u8(UInt8(i))
        w.append(address.utf8)
        w.append(identity.utf8)
        for l in layouts { try l.encode(into: &w) }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ClientEntry {
        let sessionId = try r.u64("sessionId")
        let ageSeconds = try r.u32("ageSeconds")
        let openFiles = try r.u32("openFiles")
        let bytesRead = try r.u64("bytesReadTwoSided")
        let bytesWritten = try r.u64("bytesWrittenTwoSided")
        let bytesGranted = try r.u64("bytesLayoutGranted")
        let bytesCommitted = try r.u64("bytesCommittedOneSided")
        let layoutsHeld = try r.u32("layoutsHeld")
        let layoutCount = Int(try r.u16("layoutCount"))
        if layoutCount > Limits.maxLayoutsListed { throw .oversized(field: "layoutCount") }
        if Int(layoutsHeld) < layoutCount { throw .outOfRange(field: "layoutsHeld") }
        let a = Int(try r.u8("addressLength"))
        if a == 0 { throw .outOfRange(field: "address") }
        let i = Int(try r.u8("identityLength"))
        let address = try r.utf8(a, "address")
        let identity = try r.utf8(i, "identity")
        var layouts: [ClientLayoutEntry] = []
        layouts.reserveCapacity(min(layoutCount, r.remaining / (layoutFixedSize + 1)))
        for _ in 0..<layoutCount { layouts.append(try ClientLayoutEntry.decode(from: &r)) }
        return ClientEntry(sessionId: sessionId, ageSeconds: ageSeconds, openFiles: openFiles,
                           bytesReadTwoSided: bytesRead, bytesWrittenTwoSided: bytesWritten,
                           bytesLayoutGranted: bytesGranted, bytesCommittedOneSided: bytesCommitted,
                           layoutsHeld: layoutsHeld, layouts: layouts, address: address, identity: identity)
    }
}

/// SERVER_CLIENTS response: the sessions the asking session may see (every one for an
/// administrator, else only its own), at most 256 of `total` (PROTOCOL.md §4.9.1).
public struct ServerClientsResponse: WireBody {
    public var clients: [ClientEntry]
    /// Clients the server has (that the asker may see); at least `clients.count`.
    public var total: UInt32
    public init(clients: [ClientEntry], total: UInt32) {
        self.clients = clients
        self.total = total
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        if clients.count > Limits.maxClientsListed { throw .oversized(field: "count") }
        if UInt64(clients.count) > UInt64(total) { throw .outOfRange(field: "total") }
        w.u16(UInt16(clients.count))
        w.zeros(2)
        w.u32(total)
        for c in clients { try c.encode(into: &w) }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ServerClientsResponse {
        let count = Int(try r.u16("count"))
        if count > Limits.maxClientsListed { throw .oversized(field: "count") }
        try r.reserved(2, "reserved")
        let total = try r.u32("total")
        if count > Int(total) { throw .outOfRange(field: "total") }
        var clients: [ClientEntry] = []
        clients.reserveCapacity(min(count, r.remaining / (ClientEntry.fixedSize + 1)))
        for _ in 0..<count { clients.append(try ClientEntry.decode(from: &r)) }
        return ServerClientsResponse(clients: clients, total: total)
    }
}
