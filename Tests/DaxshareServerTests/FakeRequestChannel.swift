@testable import DaxshareServer
import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Synchronization
import Testing

/// A `RequestChannel` with no transport under it, as swift-nio's `EmbeddedChannel` is: the test
/// plays the client, pushing encoded messages in (`push`) and reading what the connection sent
/// back (`response(to:)`, `sent`), and sees whether and why the connection closed it.
///
/// It keeps `MessageChannel`'s contract where the connection can tell: messages pushed before
/// a close are still delivered, then `messages` ends with nil after a local close (or throws
/// what `fail` was given, as a peer's disconnect or violation does), and a send after the
/// close throws and is not recorded.
final class FakeRequestChannel: RequestChannel {
    let messages: AsyncThrowingStream<[UInt8], any Error>
    private let inbound: AsyncThrowingStream<[UInt8], any Error>.Continuation
    let negotiated: NegotiatedTransport
    let peerAddress: SocketAddress

    private struct State {
        /// What the connection sent, in order, not yet taken by `response(to:)`.
        var sent: [Message] = []
        var closedReason: String?
    }
    private let state = Mutex(State())

    /// `config` is the server's transport configuration: the sizes are negotiated from it as
    /// `MessageChannel.accept` does, against a client asking for the defaults.
    init(peer: String = "192.0.2.7", config: TransportConfig = TransportConfig()) {
        (messages, inbound) = AsyncThrowingStream.makeStream(of: [UInt8].self)
        let (_, negotiated) = TransportNegotiation.respond(
            to: TransportNegotiation.request(TransportConfig()), config: config, postedReceives: Int(config.creditsRequested))
        self.negotiated = negotiated!
        peerAddress = try! SocketAddress(host: peer, port: 50_000)
    }

    // MARK: RequestChannel (the connection's side)

    func send(_ message: [UInt8]) async throws {
        let decoded: Message
        do { decoded = try Message.decode(message) } catch {
            Issue.record("the connection sent a message that does not decode: \(error)")
            throw error
        }
        try state.withLock { s throws(TransportError) in
            if let reason = s.closedReason { throw .closed(reason: reason) }
            s.sent.append(decoded)
        }
    }

    func close(reason: String) {
        let first = state.withLock { s -> Bool in
            guard s.closedReason == nil else { return false }
            s.closedReason = reason
            return true
        }
        if first { inbound.finish() }
    }

    var isClosed: Bool { closedReason != nil }

    // MARK: The client's side

    /// Delivers a message as if the client had sent it.
    func push(_ message: Message) {
        do { push(bytes: try message.encode()) } catch { Issue.record("cannot encode \(message.command): \(error)") }
    }

    /// Delivers raw bytes as if the client had sent them (for malformed messages).
    func push(bytes: [UInt8]) { inbound.yield(bytes) }

    /// Ends the client's messages with `error`, as a disconnect or a transport violation does.
    func fail(_ error: any Error) { inbound.finish(throwing: error) }

    /// Why the connection closed the channel, if it has.
    var closedReason: String? { state.withLock { $0.closedReason } }

    /// Everything sent and not yet taken.
    var sent: [Message] { state.withLock { $0.sent } }

    /// Takes the message sent in answer to `messageId`, waiting up to `timeout` for it.
    func response(to messageId: UInt64, within timeout: Duration = .seconds(10)) async throws -> Message {
        try await poll(within: timeout, "a response to message \(messageId)") {
            state.withLock { s in
                guard let i = s.sent.firstIndex(where: { $0.messageId == messageId && $0.header.isResponse }) else { return nil }
                return s.sent.remove(at: i)
            }
        }
    }

    /// Waits up to `timeout` for the channel to be closed; returns the reason.
    func closed(within timeout: Duration = .seconds(10)) async throws -> String {
        try await poll(within: timeout, "the channel to be closed") { closedReason }
    }

    struct Timeout: Error, CustomStringConvertible {
        var description: String
    }

    /// What `check` returns once it is not nil, checked every few milliseconds.
    private func poll<T>(within timeout: Duration, _ what: String, _ check: () -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let value = check() { return value }
            guard ContinuousClock.now < deadline else { throw Timeout(description: "waited \(timeout) for \(what)") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}
