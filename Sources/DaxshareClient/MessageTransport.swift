import DaxshareTransport

/// What a session needs from the transport below it: send upper-layer messages, receive them
/// reassembled, close, and the negotiated two-sided transfer limit.
///
/// `MessageChannel` is the real one. The protocol exists so that the session logic (handshake,
/// dispatch, chunking, transfers) can be driven by an in-process fake in host unit tests,
/// where there is no RDMA device.
public protocol MessageTransport: Sendable {
    associatedtype Messages: AsyncSequence<[UInt8], any Error> & Sendable
    /// Reassembled upper-layer messages from the server, in order; ends when the connection does.
    /// Read it promptly: on a `MessageChannel` a message not yet taken holds the server's credit.
    var messages: Messages { get }
    func send(_ message: [UInt8]) async throws
    /// `send`, returning once the message is posted when `awaitingCompletion` is false: for a
    /// request, whose reply says it arrived.
    func send(_ message: [UInt8], awaitingCompletion: Bool) async throws
    func close(reason: String)
    /// Where the task that reads `messages` should run (nil: anywhere). It runs only
    /// non-blocking work: routing replies, acknowledging callbacks.
    var readExecutor: (any TaskExecutor)? { get }
    /// Largest total length of the buffer descriptors of one READ or WRITE.
    var maxReadWriteSize: Int { get }
}

extension MessageTransport {
    public func send(_ message: [UInt8], awaitingCompletion: Bool) async throws { try await send(message) }
    public var readExecutor: (any TaskExecutor)? { nil }
}

extension MessageChannel: MessageTransport {
    /// The connection's event loop: the reader takes each message on the thread that polled
    /// its completion, with no hop to the global pool per reply.
    public var readExecutor: (any TaskExecutor)? { connection.eventLoop }
    public var maxReadWriteSize: Int { Int(negotiated.maxReadWriteSize) }
}
