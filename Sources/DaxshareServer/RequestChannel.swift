import DaxshareTransport
import DaxshareVerbs
import DaxshareWire

/// What a `ClientConnection` needs of the transport its client's requests arrive on: the
/// reassembled messages, a way to answer, an end, the negotiated sizes and who is on the
/// other side.
///
/// `MessageChannel` is the real one. The protocol exists so that the connection's dispatch
/// (authentication, ordering, the outstanding-request limit, what closes a connection) can be
/// driven by a fake channel in host unit tests, where there is no RDMA device, as the client's
/// `MessageTransport` is. What else the connection does with RDMA (two-sided data, layouts'
/// memory regions) is not the channel's: it is `ConnectionRDMA`, absent with a fake.
protocol RequestChannel: AnyObject, Sendable {
    associatedtype Messages: AsyncSequence<[UInt8], any Error> & Sendable
    /// The client's upper-layer messages, in order. Ends with nil after a local `close`, or
    /// throws why the channel ended otherwise (a `TransportError.violation` when the peer broke
    /// the transport's rules). On a `MessageChannel` a message not yet taken holds a credit.
    var messages: Messages { get }
    /// Sends one upper-layer message; throws once the channel has ended.
    func send(_ message: [UInt8]) async throws
    /// `send`, returning once the message is posted when `awaitingCompletion` is false (a
    /// reply no close follows).
    func send(_ message: [UInt8], awaitingCompletion: Bool) async throws
    /// Ends the channel (idempotent): `messages` ends and later sends fail.
    func close(reason: String)
    var isClosed: Bool { get }
    /// What the transport negotiation agreed (the sizes a reply and a transfer may have).
    var negotiated: NegotiatedTransport { get }
    /// The client's address: for logs, and what failed authentications are counted by.
    var peerAddress: SocketAddress { get }
}

extension RequestChannel {
    func send(_ message: [UInt8], awaitingCompletion: Bool) async throws { try await send(message) }
}

extension MessageChannel: RequestChannel {
    var peerAddress: SocketAddress { connection.peerAddress }
}
