/// Flags of a data transfer message.
public struct DataTransferFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The receiver must send a data transfer message back promptly (an empty one if it has
    /// nothing else to say). Used by keepalives and by a sender running out of credits.
    public static let responseRequested = DataTransferFlags(rawValue: 0x0001)
    public static let known: DataTransferFlags = [.responseRequested]
}

/// The 24-byte header of a data transfer message (PROTOCOL.md §2.6), decoded without copying
/// the payload: the server's receive path slices `payloadRange` out of the registered buffer.
public struct DataTransferHeader: Sendable, Hashable {
    public var flags: DataTransferFlags
    /// Total send credits the sender wants to hold (a target, not an increment); ≥ 1.
    public var creditsRequested: UInt16
    /// New credits granted to the receiver by this message (an increment).
    public var creditsGranted: UInt16
    /// Bytes of the same upper-layer message still to come in later fragments.
    public var remainingDataLength: UInt32
    /// Offset of the payload from the start of the message: 0 when empty, else a multiple of
    /// 8 that is ≥ 24. Senders use 24; receivers accept any such offset (zero padding between).
    public var dataOffset: UInt32
    public var dataLength: UInt32

    public init(flags: DataTransferFlags = [], creditsRequested: UInt16, creditsGranted: UInt16,
                remainingDataLength: UInt32 = 0, dataOffset: UInt32, dataLength: UInt32) {
        self.flags = flags
        self.creditsRequested = creditsRequested
        self.creditsGranted = creditsGranted
        self.remainingDataLength = remainingDataLength
        self.dataOffset = dataOffset
        self.dataLength = dataLength
    }

    /// Where the payload lies in the message the header was decoded from.
    public var payloadRange: Range<Int> {
        let start = Int(dataOffset)
        return start..<(start + Int(dataLength))
    }

    /// Total size of the message this header describes.
    public var messageSize: Int { dataLength == 0 ? Limits.dataTransferHeaderSize : Int(dataOffset) + Int(dataLength) }

    func validate() throws(WireError) {
        if flags.rawValue & ~DataTransferFlags.known.rawValue != 0 {
            throw .unknownFlags(field: "flags", bits: UInt64(flags.rawValue & ~DataTransferFlags.known.rawValue))
        }
        if dataLength == 0 {
            if dataOffset != 0 { throw .inconsistentLength(field: "dataOffset") }
            if remainingDataLength != 0 { throw .outOfRange(field: "remainingDataLength") }
        } else {
            if dataOffset < UInt32(Limits.dataTransferHeaderSize) { throw .outOfRange(field: "dataOffset") }
            if dataOffset % 8 != 0 { throw .misaligned(field: "dataOffset") }
            if UInt64(dataLength) + UInt64(remainingDataLength) > UInt64(Limits.maxMessageSize) {
                throw .oversized(field: "remainingDataLength")
            }
        }
    }

    /// Decodes and validates a complete received data transfer message (header, padding and
    /// payload); the buffer must be exactly the message (the receive completion's byte count).
    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(WireError) -> DataTransferHeader {
        var r = ByteReader(buffer)
        let type = try r.u16("type")
        guard type == TransportMessageType.dataTransfer.rawValue else {
            if TransportMessageType(rawValue: type) != nil { throw .outOfRange(field: "type") }
            throw .unknownMessageType(type)
        }
        return try decodeBody(&r)
    }

    /// Decodes after the type field; checks the payload's placement against the buffer.
    static func decodeBody(_ r: inout ByteReader) throws(WireError) -> DataTransferHeader {
        let rawFlags = try r.u16("flags")
        let cr = try r.u16("creditsRequested")
        let cg = try r.u16("creditsGranted")
        let rem = try r.u32("remainingDataLength")
        let off = try r.u32("dataOffset")
        let len = try r.u32("dataLength")
        try r.reserved(4, "padding")
        let h = DataTransferHeader(flags: DataTransferFlags(rawValue: rawFlags), creditsRequested: cr,
                                   creditsGranted: cg, remainingDataLength: rem, dataOffset: off, dataLength: len)
        try h.validate()
        if len == 0 {
            try r.expectEnd("dataLength")
        } else {
            // Zero padding between the header and the payload.
            try r.reserved(Int(off) - Limits.dataTransferHeaderSize, "padding")
            if Int(len) > r.remaining { throw .truncated(field: "data") }
            if Int(len) < r.remaining { throw .inconsistentLength(field: "dataLength") }
        }
        return h
    }

    /// Writes the header and any padding up to `dataOffset`; the caller appends the payload.
    func write(into w: inout ByteWriter) {
        w.u16(TransportMessageType.dataTransfer.rawValue)
        w.u16(flags.rawValue)
        w.u16(creditsRequested)
        w.u16(creditsGranted)
        w.u32(remainingDataLength)
        w.u32(dataOffset)
        w.u32(dataLength)
        w.u32(0)
        if dataLength > 0 { w.zeros(Int(dataOffset) - Limits.dataTransferHeaderSize) }
    }

    /// Encodes the header alone (with padding), for senders that gather the payload from
    /// another buffer with a second scatter/gather element.
    public func encode() throws(WireError) -> [UInt8] {
        try validate()
        var w = ByteWriter(capacity: Int(max(dataOffset, 24)))
        write(into: &w)
        return w.bytes
    }
}

/// A data transfer message with its payload copied out: convenient for tests, clients and
/// anything not on the hot path. Empty messages (no payload) are keepalives and credit grants.
public struct DataTransferMessage: Sendable, Hashable {
    public var header: DataTransferHeader
    public var payload: [UInt8]

    /// Builds a message carrying `payload` (a whole upper-layer message or one fragment of it).
    public init(flags: DataTransferFlags = [], creditsRequested: UInt16, creditsGranted: UInt16,
                remainingDataLength: UInt32 = 0, payload: [UInt8] = []) {
        let len = UInt32(clamping: payload.count)
        header = DataTransferHeader(flags: flags, creditsRequested: creditsRequested, creditsGranted: creditsGranted,
                                    remainingDataLength: remainingDataLength,
                                    dataOffset: payload.isEmpty ? 0 : UInt32(Limits.dataTransferHeaderSize),
                                    dataLength: len)
        self.payload = payload
    }

    public init(header: DataTransferHeader, payload: [UInt8]) {
        self.header = header
        self.payload = payload
    }

    public func encode() throws(WireError) -> [UInt8] {
        if payload.count > Int(Limits.maxMessageSize) { throw .oversized(field: "dataLength") }
        if UInt32(payload.count) != header.dataLength { throw .inconsistentLength(field: "dataLength") }
        try header.validate()
        var w = ByteWriter(capacity: header.messageSize)
        header.write(into: &w)
        w.append(payload)
        return w.bytes
    }

    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(WireError) -> DataTransferMessage {
        let h = try DataTransferHeader.decode(buffer)
        let payload = h.dataLength == 0 ? [] : Array(UnsafeRawBufferPointer(rebasing: buffer[h.payloadRange]))
        return DataTransferMessage(header: h, payload: payload)
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> DataTransferMessage {
        try withBytes(bytes) { b throws(WireError) in try decode(b) }
    }
}
