import DaxshareWire
import Synchronization

/// Owns one connection's traffic: sends requests with fresh message ids, reads every message
/// the server sends on a single task, hands responses to their waiting requests
/// (`ResponseRouter`) and answers callbacks.
///
/// When the connection ends — the server closes it, the transport fails, or the server sends
/// something malformed or unexpected (a protocol violation: the client disconnects) — every
/// waiting request fails with that reason, and so does every later one.
final class RequestDispatcher: Sendable {
    let transport: any MessageTransport
    let router = ResponseRouter()
    /// The server's `maxOutstandingRequests`, once NEGOTIATE has told it; 1 before.
    let outstanding = AsyncSemaphore(permits: 1)
    let callbacks: AsyncStream<ServerCallback>
    private let callbackSink: AsyncStream<ServerCallback>.Continuation
    private let acknowledger: Mutex<RecallAcknowledger>
    private let session = Mutex<UInt64>(0)

    init(transport: any MessageTransport, acknowledger: @escaping RecallAcknowledger) {
        self.transport = transport
        self.acknowledger = Mutex(acknowledger)
        (callbacks, callbackSink) = AsyncStream.makeStream(of: ServerCallback.self, bufferingPolicy: .bufferingNewest(256))
    }

    /// The session id every message carries: 0 until SESSION_SETUP's first response.
    var sessionId: UInt64 {
        get { session.withLock { $0 } }
        set { session.withLock { $0 = newValue } }
    }

    /// Replaces how CB_LAYOUTRECALL is acknowledged (the layout engine installs its own once
    /// the session can take layouts).
    func setAcknowledger(_ acknowledger: @escaping RecallAcknowledger) {
        self.acknowledger.withLock { $0 = acknowledger }
    }

    /// Starts the task that reads the connection. Call once.
    func start() {
        Task(executorPreference: transport.readExecutor) { [self] in await readLoop() }
    }

    /// Sends `request` and returns the server's reply, whatever its status.
    func exchange(_ request: Request) async throws(ClientError) -> Message {
        await outstanding.acquire()
        defer { outstanding.release() }
        let id = try router.allocate(command: request.command)
        let bytes: [UInt8]
        do {
            bytes = try Message.request(request, messageId: id, sessionId: sessionId).encode()
        } catch {
            router.cancel(id)
            throw .invalidArgument("cannot encode the \(request.command) request: \(error)")
        }
        do {
            // The reply says the request arrived: no wake-up for its SEND's completion.
            try await transport.send(bytes, awaitingCompletion: false)
        } catch {
            router.cancel(id)
            throw router.closedError ?? ClientError(transportFailure: error)
        }
        return try await router.wait(id).get()
    }

    /// Sends `request` and returns its success body; any other status throws `.status`.
    func call(_ request: Request) async throws(ClientError) -> Response {
        try Self.successBody(of: try await exchange(request))
    }

    /// The success body of a reply, or the typed error its status stands for.
    static func successBody(of message: Message) throws(ClientError) -> Response {
        switch message.body {
        case let .response(r): return r
        case let .error(command, status, body): throw .status(status, command, retryAfterMs: body.retryAfterMs)
        default: throw .protocol("a \(message.command) reply that is not a response")
        }
    }

    /// Fails everything with `error` and closes the connection. Idempotent.
    func shutdown(_ error: ClientError, reason: String) {
        router.close(error)
        transport.close(reason: reason)
        callbackSink.finish()
    }

    // MARK: Reading

    private func readLoop() async {
        do {
            if try await !read(transport.messages) { return }
            router.close(.transport("the server closed the connection"))
        } catch {
            router.close(ClientError(transportFailure: error))
        }
        callbackSink.finish()
    }

    /// Handles every message until the sequence ends (true) or one is a violation (false,
    /// after shutting down).
    private func read(_ messages: some AsyncSequence<[UInt8], any Error>) async throws -> Bool {
        for try await bytes in messages {
            if let violation = handle(bytes) {
                shutdown(.protocol(violation), reason: "protocol violation by the server: \(violation)")
                return false
            }
        }
        return true
    }

    /// Routes one message; returns why it is a violation, if it is one.
    func handle(_ bytes: [UInt8]) -> String? {
        let message: Message
        do { message = try Message.decode(bytes) } catch { return "malformed message from the server: \(error)" }
        switch message.body {
        case .response, .error:
            return router.deliver(message)
        case let .callback(.layoutRecall(recall)):
            let status = acknowledger.withLock { $0 }(recall)
            let reply = Message(messageId: message.messageId, sessionId: sessionId,
                                body: .callbackReply(status: status, .layoutRecall(LayoutRecallAck(recallId: recall.recallId))))
            // Sent from its own task: the reader must keep reading while the reply waits for a credit.
            Task { [transport] in
                if let bytes = try? reply.encode() { try? await transport.send(bytes) }
            }
            callbackSink.yield(.layoutRecall(recall, acknowledgement: status))
            return nil
        case .request:
            return "the server sent a \(message.command) request"
        case .callbackReply:
            return "the server sent a callback reply"
        }
    }
}
