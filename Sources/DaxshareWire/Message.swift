/// A client request, one case per command (PROTOCOL.md §4–5).
public enum Request: Sendable, Hashable {
    case negotiate(NegotiateRequest)
    case sessionSetup(SessionSetupRequest)
    case logoff
    case treeConnect(TreeConnectRequest)
    case treeDisconnect(TreeDisconnectRequest)
    case echo(EchoMessage)
    case serverStats
    case serverClients
    case open(OpenRequest)
    case close(CloseRequest)
    case stat(StatRequest)
    case list(ListRequest)
    case setSize(SetSizeRequest)
    case punchHole(PunchHoleRequest)
    case unlink(UnlinkRequest)
    case rename(RenameRequest)
    case flush(FlushRequest)
    case mkdir(MkdirRequest)
    case setAttributes(SetAttributesRequest)
    case statfs(StatfsRequest)
    case allocate(AllocateRequest)
    case read(ReadRequest)
    case write(WriteRequest)
    case layoutGet(LayoutGetRequest)
    case layoutCommit(LayoutCommitRequest)
    case layoutReturn(LayoutReturnRequest)

    public var command: Command {
        switch self {
        case .negotiate: .negotiate
        case .sessionSetup: .sessionSetup
        case .logoff: .logoff
        case .treeConnect: .treeConnect
        case .treeDisconnect: .treeDisconnect
        case .echo: .echo
        case .serverStats: .serverStats
        case .serverClients: .serverClients
        case .open: .open
        case .close: .close
        case .stat: .stat
        case .list: .list
        case .setSize: .setSize
        case .punchHole: .punchHole
        case .unlink: .unlink
        case .rename: .rename
        case .flush: .flush
        case .mkdir: .mkdir
        case .setAttributes: .setAttributes
        case .statfs: .statfs
        case .allocate: .allocate
        case .read: .read
        case .write: .write
        case .layoutGet: .layoutGet
        case .layoutCommit: .layoutCommit
        case .layoutReturn: .layoutReturn
        }
    }

    func encodeBody(into w: inout ByteWriter) throws(WireError) {
        switch self {
        case .negotiate(let b): try b.encode(into: &w)
        case .sessionSetup(let b): try b.encode(into: &w)
        case .logoff, .serverStats, .serverClients: break
        case .treeConnect(let b): try b.encode(into: &w)
        case .treeDisconnect(let b): try b.encode(into: &w)
        case .echo(let b): try b.encode(into: &w)
        case .open(let b): try b.encode(into: &w)
        case .close(let b): try b.encode(into: &w)
        case .stat(let b): try b.encode(into: &w)
        case .list(let b): try b.encode(into: &w)
        case .setSize(let b): try b.encode(into: &w)
        case .punchHole(let b): try b.encode(into: &w)
        case .unlink(let b): try b.encode(into: &w)
        case .rename(let b): try b.encode(into: &w)
        case .flush(let b): try b.encode(into: &w)
        case .mkdir(let b): try b.encode(into: &w)
        case .setAttributes(let b): try b.encode(into: &w)
        case .statfs(let b): try b.encode(into: &w)
        case .allocate(let b): try b.encode(into: &w)
        case .read(let b): try b.encode(into: &w)
        case .write(let b): try b.encode(into: &w)
        case .layoutGet(let b): try b.encode(into: &w)
        case .layoutCommit(let b): try b.encode(into: &w)
        case .layoutReturn(let b): try b.encode(into: &w)
        }
    }

    static func decodeBody(_ command: Command, from r: inout ByteReader) throws(WireError) -> Request {
        switch command {
        case .negotiate: .negotiate(try .decode(from: &r))
        case .sessionSetup: .sessionSetup(try .decode(from: &r))
        case .logoff: .logoff
        case .treeConnect: .treeConnect(try .decode(from: &r))
        case .treeDisconnect: .treeDisconnect(try .decode(from: &r))
        case .echo: .echo(try .decode(from: &r))
        case .serverStats: .serverStats
        case .serverClients: .serverClients
        case .open: .open(try .decode(from: &r))
        case .close: .close(try .decode(from: &r))
        case .stat: .stat(try .decode(from: &r))
        case .list: .list(try .decode(from: &r))
        case .setSize: .setSize(try .decode(from: &r))
        case .punchHole: .punchHole(try .decode(from: &r))
        case .unlink: .unlink(try .decode(from: &r))
        case .rename: .rename(try .decode(from: &r))
        case .flush: .flush(try .decode(from: &r))
        case .mkdir: .mkdir(try .decode(from: &r))
        case .setAttributes: .setAttributes(try .decode(from: &r))
        case .statfs: .statfs(try .decode(from: &r))
        case .allocate: .allocate(try .decode(from: &r))
        case .read: .read(try .decode(from: &r))
        case .write: .write(try .decode(from: &r))
        case .layoutGet: .layoutGet(try .decode(from: &r))
        case .layoutCommit: .layoutCommit(try .decode(from: &r))
        case .layoutReturn: .layoutReturn(try .decode(from: &r))
        case .cbLayoutRecall: throw .outOfRange(field: "command")
        default: throw .unknownCommand(command.rawValue)
        }
    }
}

/// A successful (status OK) response, one case per command.
public enum Response: Sendable, Hashable {
    case negotiate(NegotiateResponse)
    case sessionSetup(SessionSetupResponse)
    case logoff
    case treeConnect(TreeConnectResponse)
    case treeDisconnect
    case echo(EchoMessage)
    case serverStats(ServerStatsResponse)
    case serverClients(ServerClientsResponse)
    case open(OpenResponse)
    case close
    case stat(FileAttributes)
    case list(ListResponse)
    case setSize(FileAttributes)
    case punchHole
    case unlink
    case rename
    case flush
    case mkdir(FileAttributes)
    case setAttributes(FileAttributes)
    case statfs(FileSystemStatistics)
    case allocate(FileAttributes)
    case read(ReadResponse)
    case write(WriteResponse)
    case layoutGet(LayoutGetResponse)
    case layoutCommit(LayoutCommitResponse)
    case layoutReturn

    public var command: Command {
        switch self {
        case .negotiate: .negotiate
        case .sessionSetup: .sessionSetup
        case .logoff: .logoff
        case .treeConnect: .treeConnect
        case .treeDisconnect: .treeDisconnect
        case .echo: .echo
        case .serverStats: .serverStats
        case .serverClients: .serverClients
        case .open: .open
        case .close: .close
        case .stat: .stat
        case .list: .list
        case .setSize: .setSize
        case .punchHole: .punchHole
        case .unlink: .unlink
        case .rename: .rename
        case .flush: .flush
        case .mkdir: .mkdir
        case .setAttributes: .setAttributes
        case .statfs: .statfs
        case .allocate: .allocate
        case .read: .read
        case .write: .write
        case .layoutGet: .layoutGet
        case .layoutCommit: .layoutCommit
        case .layoutReturn: .layoutReturn
        }
    }

    func encodeBody(into w: inout ByteWriter) throws(WireError) {
        switch self {
        case .negotiate(let b): try b.encode(into: &w)
        case .sessionSetup(let b): try b.encode(into: &w)
        case .logoff, .treeDisconnect, .close, .punchHole, .unlink, .rename, .flush, .layoutReturn: break
        case .treeConnect(let b): try b.encode(into: &w)
        case .echo(let b): try b.encode(into: &w)
        case .serverStats(let b): try b.encode(into: &w)
        case .serverClients(let b): try b.encode(into: &w)
        case .open(let b): try b.encode(into: &w)
        case .stat(let b): try b.encode(into: &w)
        case .list(let b): try b.encode(into: &w)
        case .setSize(let b): try b.encode(into: &w)
        case .mkdir(let b): try b.encode(into: &w)
        case .setAttributes(let b): try b.encode(into: &w)
        case .statfs(let b): try b.encode(into: &w)
        case .allocate(let b): try b.encode(into: &w)
        case .read(let b): try b.encode(into: &w)
        case .write(let b): try b.encode(into: &w)
        case .layoutGet(let b): try b.encode(into: &w)
        case .layoutCommit(let b): try b.encode(into: &w)
        }
    }

    static func decodeBody(_ command: Command, from r: inout ByteReader) throws(WireError) -> Response {
        switch command {
        case .negotiate: .negotiate(try .decode(from: &r))
        case .sessionSetup: .sessionSetup(try .decode(from: &r))
        case .logoff: .logoff
        case .treeConnect: .treeConnect(try .decode(from: &r))
        case .treeDisconnect: .treeDisconnect
        case .echo: .echo(try .decode(from: &r))
        case .serverStats: .serverStats(try .decode(from: &r))
        case .serverClients: .serverClients(try .decode(from: &r))
        case .open: .open(try .decode(from: &r))
        case .close: .close
        case .stat: .stat(try .decode(from: &r))
        case .list: .list(try .decode(from: &r))
        case .setSize: .setSize(try .decode(from: &r))
        case .punchHole: .punchHole
        case .unlink: .unlink
        case .rename: .rename
        case .flush: .flush
        case .mkdir: .mkdir(try .decode(from: &r))
        case .setAttributes: .setAttributes(try .decode(from: &r))
        case .statfs: .statfs(try .decode(from: &r))
        case .allocate: .allocate(try .decode(from: &r))
        case .read: .read(try .decode(from: &r))
        case .write: .write(try .decode(from: &r))
        case .layoutGet: .layoutGet(try .decode(from: &r))
        case .layoutCommit: .layoutCommit(try .decode(from: &r))
        case .layoutReturn: .layoutReturn
        case .cbLayoutRecall: throw .outOfRange(field: "command")
        default: throw .unknownCommand(command.rawValue)
        }
    }
}

/// A server-initiated message (header flag CALLBACK).
public enum Callback: Sendable, Hashable {
    case layoutRecall(LayoutRecall)
    public var command: Command { .cbLayoutRecall }
}

/// A client's reply to a callback (header flags CALLBACK|RESPONSE).
public enum CallbackReply: Sendable, Hashable {
    case layoutRecall(LayoutRecallAck)
    public var command: Command { .cbLayoutRecall }
}

/// What a message is: its direction and role, and its body.
public enum MessageBody: Sendable, Hashable {
    /// Client → server. Header flags 0, status 0.
    case request(Request)
    /// Server → client, status OK. Header flag RESPONSE.
    case response(Response)
    /// Server → client, any status but OK, for any command (including one the server does not
    /// know: NOT_SUPPORTED). Header flag RESPONSE; body ``ErrorBody``.
    case error(command: Command, status: Status, ErrorBody)
    /// Server → client, unsolicited. Header flag CALLBACK.
    case callback(Callback)
    /// Client → server, answering a callback. Header flags CALLBACK|RESPONSE.
    case callbackReply(status: Status, CallbackReply)

    public var command: Command {
        switch self {
        case .request(let r): r.command
        case .response(let r): r.command
        case .error(let c, _, _): c
        case .callback(let c): c.command
        case .callbackReply(_, let c): c.command
        }
    }

    public var status: Status {
        switch self {
        case .request, .response, .callback: .ok
        case .error(_, let s, _): s
        case .callbackReply(let s, _): s
        }
    }

    public var flags: HeaderFlags {
        switch self {
        case .request: []
        case .response, .error: .response
        case .callback: .callback
        case .callbackReply: [.callback, .response]
        }
    }
}

/// An upper-layer message: the unit that is fragmented into data transfer messages.
///
/// Encode with ``encode()``; decode a reassembled message with ``decode(_:)-(UnsafeRawBufferPointer)``.
public struct Message: Sendable, Hashable {
    public var messageId: UInt64
    public var sessionId: UInt64
    public var body: MessageBody

    public init(messageId: UInt64, sessionId: UInt64, body: MessageBody) {
        self.messageId = messageId
        self.sessionId = sessionId
        self.body = body
    }

    /// Shorthand for a request.
    public static func request(_ r: Request, messageId: UInt64, sessionId: UInt64) -> Message {
        Message(messageId: messageId, sessionId: sessionId, body: .request(r))
    }

    /// Shorthand for a successful response to `request`.
    public static func response(_ r: Response, to request: MessageHeader) -> Message {
        Message(messageId: request.messageId, sessionId: request.sessionId, body: .response(r))
    }

    /// Shorthand for a failed response to `request` (any command, even an unknown one).
    public static func error(_ status: Status, to request: MessageHeader, retryAfterMs: UInt32 = 0) -> Message {
        Message(messageId: request.messageId, sessionId: request.sessionId,
                body: .error(command: request.command, status: status, ErrorBody(retryAfterMs: retryAfterMs)))
    }

    public var command: Command { body.command }
    public var status: Status { body.status }

    public var header: MessageHeader {
        MessageHeader(command: command, status: status, flags: body.flags, messageId: messageId, sessionId: sessionId)
    }

    public func encode() throws(WireError) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        header.write(into: &w)
        switch body {
        case .request(let r): try r.encodeBody(into: &w)
        case .response(let r): try r.encodeBody(into: &w)
        case .error(_, let status, let e):
            if status == .ok { throw .outOfRange(field: "status") }
            try e.encode(into: &w)
        case .callback(.layoutRecall(let b)): try b.encode(into: &w)
        case .callbackReply(_, .layoutRecall(let b)): try b.encode(into: &w)
        }
        let bodyLength = w.count - Limits.headerSize
        if w.count > Int(Limits.maxMessageSize) { throw .oversized(field: "bodyLength") }
        w.patchU32(UInt32(bodyLength), at: 32)
        return w.bytes
    }

    /// Decodes one complete upper-layer message (the output of ``Reassembler``).
    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(WireError) -> Message {
        var r = ByteReader(buffer)
        let h = try MessageHeader.decode(from: &r)
        if Int(h.bodyLength) > r.remaining { throw .truncated(field: "body") }
        if Int(h.bodyLength) < r.remaining { throw .inconsistentLength(field: "bodyLength") }
        let body: MessageBody
        switch (h.isCallback, h.isResponse) {
        case (false, false):
            body = .request(try Request.decodeBody(h.command, from: &r))
        case (false, true):
            if h.status == .ok {
                body = .response(try Response.decodeBody(h.command, from: &r))
            } else {
                body = .error(command: h.command, status: h.status, try ErrorBody.decode(from: &r))
            }
        case (true, false):
            try requireCallbackCommand(h.command)
            body = .callback(.layoutRecall(try LayoutRecall.decode(from: &r)))
        case (true, true):
            try requireCallbackCommand(h.command)
            body = .callbackReply(status: h.status, .layoutRecall(try LayoutRecallAck.decode(from: &r)))
        }
        try r.expectEnd("bodyLength")
        return Message(messageId: h.messageId, sessionId: h.sessionId, body: body)
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Message {
        try withBytes(bytes) { b throws(WireError) in try decode(b) }
    }

    private static func requireCallbackCommand(_ c: Command) throws(WireError) {
        if c == .cbLayoutRecall { return }
        if c.isKnown { throw .outOfRange(field: "command") }
        throw .unknownCommand(c.rawValue)
    }
}
