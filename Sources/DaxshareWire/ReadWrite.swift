/// A piece of the client's registered memory that the server may RDMA WRITE into (READ) or
/// RDMA READ from (WRITE): the counterpart of SMB2_CHANNEL_RDMA_V1's buffer descriptor.
public struct BufferDescriptor: Sendable, Hashable {
    public static let size = 16
    /// Virtual address in the client's memory region.
    public var address: UInt64
    /// The memory region's rkey, valid on this connection's protection domain.
    public var rkey: UInt32
    /// Bytes, at least 1.
    public var length: UInt32

    public init(address: UInt64, rkey: UInt32, length: UInt32) {
        self.address = address
        self.rkey = rkey
        self.length = length
    }
}

public struct WriteFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The data (and any size change) is durable before the reply.
    public static let writeThrough = WriteFlags(rawValue: 0x1)
    public static let known: WriteFlags = [.writeThrough]
}

/// The shared layout of READ and WRITE requests (24 bytes + 16 per descriptor).
struct TwoSidedIO: Sendable, Hashable {
    var fileId: UInt64
    var offset: UInt64
    var length: UInt32
    var flags: UInt16
    var descriptors: [BufferDescriptor]

    func validate(knownFlags: UInt16) throws(WireError) {
        try checkNonzero(fileId, "fileId")
        try checkFlags(flags, known: knownFlags, "ioFlags")
        if descriptors.count > Limits.maxBufferDescriptors { throw .oversized(field: "descriptorCount") }
        if descriptors.isEmpty { throw .outOfRange(field: "descriptorCount") }
        var sum: UInt64 = 0
        for d in descriptors {
            if d.length == 0 { throw .outOfRange(field: "descriptor.length") }
            sum += UInt64(d.length)
        }
        if sum != UInt64(length) { throw .inconsistentLength(field: "length") }
        try checkRange(offset: offset, length: UInt64(length), "offset")
    }

    func encode(into w: inout ByteWriter, knownFlags: UInt16) throws(WireError) {
        try validate(knownFlags: knownFlags)
        w.u64(fileId)
        w.u64(offset)
        w.u32(length)
        w.u16(flags)
        w.u16(UInt16(descriptors.count))
        for d in descriptors {
            w.u64(d.address)
            w.u32(d.rkey)
            w.u32(d.length)
        }
    }

    static func decode(from r: inout ByteReader, knownFlags: UInt16) throws(WireError) -> TwoSidedIO {
        let id = try r.u64("fileId")
        let off = try r.u64("offset")
        let len = try r.u32("length")
        let flags = try r.u16("ioFlags")
        let count = Int(try r.u16("descriptorCount"))
        if count > Limits.maxBufferDescriptors { throw .oversized(field: "descriptorCount") }
        var ds: [BufferDescriptor] = []
        ds.reserveCapacity(count)
        for _ in 0..<count {
            ds.append(BufferDescriptor(address: try r.u64("descriptor.address"), rkey: try r.u32("descriptor.rkey"),
                                       length: try r.u32("descriptor.length")))
        }
        let io = TwoSidedIO(fileId: id, offset: off, length: len, flags: flags, descriptors: ds)
        try io.validate(knownFlags: knownFlags)
        return io
    }
}

/// Two-sided READ request: the server reads `length` bytes at `offset` (fewer at end of file)
/// and RDMA WRITEs them into the descriptors in order, filling each before the next, then
/// replies. The reply follows the RDMA WRITEs on the same queue pair, so when it arrives the
/// data is in place.
public struct ReadRequest: WireBody {
    public var fileId: UInt64
    public var offset: UInt64
    /// Equal to the sum of the descriptors' lengths; ≤ the negotiated maxReadWriteSize.
    public var length: UInt32
    public var descriptors: [BufferDescriptor]

    public init(fileId: UInt64, offset: UInt64, descriptors: [BufferDescriptor]) {
        self.fileId = fileId
        self.offset = offset
        self.descriptors = descriptors
        self.length = UInt32(clamping: descriptors.reduce(UInt64(0)) { $0 &+ UInt64($1.length) })
    }

    public init(fileId: UInt64, offset: UInt64, length: UInt32, descriptors: [BufferDescriptor]) {
        self.fileId = fileId
        self.offset = offset
        self.length = length
        self.descriptors = descriptors
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try TwoSidedIO(fileId: fileId, offset: offset, length: length, flags: 0, descriptors: descriptors)
            .encode(into: &w, knownFlags: 0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ReadRequest {
        let io = try TwoSidedIO.decode(from: &r, knownFlags: 0)
        return ReadRequest(fileId: io.fileId, offset: io.offset, length: io.length, descriptors: io.descriptors)
    }
}

/// Two-sided WRITE request: the server RDMA READs `length` bytes from the descriptors in order
/// and writes them at `offset`, extending the file if needed.
public struct WriteRequest: WireBody {
    public var fileId: UInt64
    public var offset: UInt64
    public var length: UInt32
    public var flags: WriteFlags
    public var descriptors: [BufferDescriptor]

    public init(fileId: UInt64, offset: UInt64, flags: WriteFlags = [], descriptors: [BufferDescriptor]) {
        self.fileId = fileId
        self.offset = offset
        self.flags = flags
        self.descriptors = descriptors
        self.length = UInt32(clamping: descriptors.reduce(UInt64(0)) { $0 &+ UInt64($1.length) })
    }

    public init(fileId: UInt64, offset: UInt64, length: UInt32, flags: WriteFlags, descriptors: [BufferDescriptor]) {
        self.fileId = fileId
        self.offset = offset
        self.length = length
        self.flags = flags
        self.descriptors = descriptors
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try TwoSidedIO(fileId: fileId, offset: offset, length: length, flags: flags.rawValue, descriptors: descriptors)
            .encode(into: &w, knownFlags: WriteFlags.known.rawValue)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> WriteRequest {
        let io = try TwoSidedIO.decode(from: &r, knownFlags: WriteFlags.known.rawValue)
        return WriteRequest(fileId: io.fileId, offset: io.offset, length: io.length,
                            flags: WriteFlags(rawValue: io.flags), descriptors: io.descriptors)
    }
}

public struct ReadResponseFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The read reached the end of the file.
    public static let endOfFile = ReadResponseFlags(rawValue: 0x1)
    public static let known: ReadResponseFlags = [.endOfFile]
}

/// READ response: how many bytes were placed in the client's buffers.
public struct ReadResponse: WireBody {
    public static let size = 8
    public var bytesRead: UInt32
    public var flags: ReadResponseFlags
    public init(bytesRead: UInt32, flags: ReadResponseFlags = []) {
        self.bytesRead = bytesRead
        self.flags = flags
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        try checkFlags(flags.rawValue, known: ReadResponseFlags.known.rawValue, "readFlags")
        w.u32(bytesRead)
        w.u32(flags.rawValue)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ReadResponse {
        let n = try r.u32("bytesRead")
        let f = try r.u32("readFlags")
        try checkFlags(f, known: ReadResponseFlags.known.rawValue, "readFlags")
        return ReadResponse(bytesRead: n, flags: ReadResponseFlags(rawValue: f))
    }
}

/// WRITE response: bytes written (always the request's length on success).
public struct WriteResponse: WireBody {
    public static let size = 8
    public var bytesWritten: UInt32
    public init(bytesWritten: UInt32) { self.bytesWritten = bytesWritten }

    func encode(into w: inout ByteWriter) throws(WireError) {
        w.u32(bytesWritten)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> WriteResponse {
        let n = try r.u32("bytesWritten")
        try r.reserved(4, "reserved")
        return WriteResponse(bytesWritten: n)
    }
}
