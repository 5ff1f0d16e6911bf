/// Flags in the upper-layer header.
public struct HeaderFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Set on every response, and on a client's reply to a callback.
    public static let response = HeaderFlags(rawValue: 0x1)
    /// Set on server-initiated messages (CB_LAYOUTRECALL) and on the client's reply to them.
    public static let callback = HeaderFlags(rawValue: 0x2)
    public static let known: HeaderFlags = [.response, .callback]
}

/// The 40-byte header in front of every upper-layer message (PROTOCOL.md §3.2).
///
/// Decoding the header alone lets a server answer a request whose body it cannot decode (with
/// its message id), and read the command before it knows whether it supports it.
public struct MessageHeader: Sendable, Hashable {
    /// The four bytes FD 'D' 'X' 'S' every upper-layer message starts with.
    public static let magic: [UInt8] = [0xFD, 0x44, 0x58, 0x53]

    public var command: Command
    /// Zero in requests and callbacks.
    public var status: Status
    public var flags: HeaderFlags
    /// Chosen by the sender of a request (or callback), echoed in its response.
    public var messageId: UInt64
    /// Zero until SESSION_SETUP's first response assigns one.
    public var sessionId: UInt64
    /// Bytes after the header.
    public var bodyLength: UInt32

    public init(command: Command, status: Status = .ok, flags: HeaderFlags = [], messageId: UInt64,
                sessionId: UInt64, bodyLength: UInt32 = 0) {
        self.command = command
        self.status = status
        self.flags = flags
        self.messageId = messageId
        self.sessionId = sessionId
        self.bodyLength = bodyLength
    }

    public var isResponse: Bool { flags.contains(.response) }
    public var isCallback: Bool { flags.contains(.callback) }

    func validate() throws(WireError) {
        let unknown = flags.rawValue & ~HeaderFlags.known.rawValue
        if unknown != 0 { throw .unknownFlags(field: "flags", bits: UInt64(unknown)) }
        if !flags.contains(.response) && status != .ok { throw .reservedNotZero(field: "status") }
        if bodyLength > Limits.maxMessageSize - UInt32(Limits.headerSize) { throw .oversized(field: "bodyLength") }
    }

    /// Decodes the header at the start of `buffer` (which may hold more: the body). Does not
    /// check `bodyLength` against the buffer; ``Message/decode(_:)-(UnsafeRawBufferPointer)`` does.
    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(WireError) -> MessageHeader {
        var r = ByteReader(buffer)
        return try decode(from: &r)
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> MessageHeader {
        try withBytes(bytes) { b throws(WireError) in try decode(b) }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> MessageHeader {
        let m = try r.bytes(4, "magic")
        if m != magic { throw .badMagic(field: "magic") }
        let hs = try r.u16("headerSize")
        if hs != UInt16(Limits.headerSize) { throw .outOfRange(field: "headerSize") }
        let command = Command(rawValue: try r.u16("command"))
        let status = Status(rawValue: try r.u32("status"))
        let flags = HeaderFlags(rawValue: try r.u32("flags"))
        let mid = try r.u64("messageId")
        let sid = try r.u64("sessionId")
        let bl = try r.u32("bodyLength")
        try r.reserved(4, "reserved")
        let h = MessageHeader(command: command, status: status, flags: flags, messageId: mid, sessionId: sid, bodyLength: bl)
        try h.validate()
        return h
    }

    func write(into w: inout ByteWriter) {
        w.append(Self.magic)
        w.u16(UInt16(Limits.headerSize))
        w.u16(command.rawValue)
        w.u32(status.rawValue)
        w.u32(flags.rawValue)
        w.u64(messageId)
        w.u64(sessionId)
        w.u32(bodyLength)
        w.u32(0)
    }
}
