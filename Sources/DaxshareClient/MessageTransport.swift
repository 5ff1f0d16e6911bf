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
    func close(reason: String)
    /// Largest total length of the buffer descriptors of one READ or WRITE.
    var maxReadWriteSize: Int { get }
}

extension MessageChannel: MessageTransport {
    public var maxReadWriteSize: Int { Int(negotiated.maxReadWriteSize) }
}
