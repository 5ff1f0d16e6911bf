import DaxshareVerbs
import DaxshareWire
import Logging
import Synchronization

/// An SMB Direct-style message transport over one RDMA connection
/// (PROTOCOL.md §2): the negotiate exchange, then upper-layer messages split
/// into data transfer messages that each cost one credit, with credits
/// granted back as receives are reposted.
///
/// Received messages arrive reassembled in `messages`. A receive is posted again (and its
/// credit becomes grantable) only once the upper layer has taken the message it carried, so
/// a peer that sends faster than this side consumes is held up by credits; see
/// `maxBufferedBytes` for the bound that gives.
///
/// Sends go through a ring of registered buffers, so several messages can be in flight:
/// one message's fragments are posted back to back, never interleaved with another's, and
/// the next message is posted without waiting for the previous one's completion.
///
/// Any breach of the rules by the peer closes this channel (and only this one) with the
/// reason, which ends `messages` with a `TransportError.violation`.
public final class MessageChannel: Sendable {
    public let connection: Connection
    public let negotiated: NegotiatedTransport

    private let receiveBuffers: RegisteredBuffer
    private let receiveCount: Int
    private let receiveSize: Int
    private let ring: SendRing
    private let sendGate = AsyncGate()
    private let logger: Logger
    private struct State {
        var credits: CreditWindow
        var reassembler: Reassembler
        var inbox = InboundQueue()
        /// The task waiting in `messages` for the next message (one consumer at a time).
        var consumer: CheckedContinuation<Void, Never>?
        /// Whether the end of `messages` (its error) has been delivered.
        var endDelivered = false
        var creditWaiters: [CheckedContinuation<Void, any Error>] = []
        var closedReason: TransportError?
        var grantPending = false
        /// Whether the peer has shown it posts at least two receives for us (it granted two
        /// credits at once): from then on the last credit is kept for grants (`takeCredit`).
        var keepsLastCredit = false
        /// Keepalive (§2.9): when a message last arrived, and when a keepalive went unanswered.
        var lastReceived = ContinuousClock.now
        var keepaliveSent: ContinuousClock.Instant?
        /// The keepalive watcher, cancelled when the channel ends (it may be sleeping for minutes).
        var keepaliveWatch: Task<Void, Never>?
        /// Whether receive completions are still handled: false once one ended the channel.
        var receiving = true
    }
    private let state: Mutex<State>

    /// Receives each side keeps posted: one per credit it may grant.
    static func receiveCount(_ config: TransportConfig) -> Int { Int(config.creditsRequested) }

    static func connectionOptions(_ config: TransportConfig) -> ConnectionOptions {
        var o = ConnectionOptions()
        o.receiveQueueDepth = receiveCount(config) + 1
        o.sendQueueDepth = max(o.sendQueueDepth, 2 * maxRingSlots)
        return o
    }

    /// Send buffers at most: enough to keep many responses in flight, few enough that the
    /// send queue keeps room for RDMA READs and WRITEs.
    static let maxRingSlots = 32

    /// Send buffers in the ring: one per credit this side may hold (more could not be sent
    /// at once), within `maxRingSlots`.
    static func ringSlots(_ negotiated: NegotiatedTransport) -> Int {
        max(1, min(Int(negotiated.credits.maxSendCredits), maxRingSlots))
    }

    /// The channel after a successful negotiate exchange; starts receiving.
    private init(
        connection: Connection, negotiated: NegotiatedTransport, receives: RegisteredBuffer,
        receiveSize: Int, config: TransportConfig, logger: Logger
    ) throws(VerbsError) {
        self.connection = connection
        self.negotiated = negotiated
        self.receiveBuffers = receives
        self.receiveCount = Self.receiveCount(config)
        self.receiveSize = receiveSize
        self.ring = try SendRing(
            domain: connection.domain, slots: Self.ringSlots(negotiated), slotSize: Int(negotiated.maxSendSize))
        self.logger = logger
        var initial = State(
            credits: negotiated.credits,
            reassembler: Reassembler(maxMessageSize: Int(negotiated.maxIncomingMessageSize)))
        initial.keepsLastCredit = negotiated.credits.sendCredits >= 2
        self.state = Mutex(initial)
        start()
        watchKeepalive(interval: config.keepaliveInterval, timeout: config.keepaliveTimeout)
    }

    // MARK: Establishing

    /// Client side: connects, then sends the negotiate request and checks the answer. With
    /// `flushOperations` the queue pair can post RDMA FLUSH where this rdma-core and device
    /// can (`Connection.canFlush`).
    public static func connect(
        host: String, port: UInt16, config: TransportConfig = .init(), loop: EventLoop = .shared,
        flushOperations: Bool = false, logger: Logger = Logger(label: "daxshare.transport")
    ) async throws -> MessageChannel {
        let count = receiveCount(config)
        var receives: RegisteredBuffer?
        let hello = try ConnectPrivateData(kind: .connect).encode()
        var options = connectionOptions(config)
        options.flushOperations = flushOperations
        let connection = try await Connection.connect(
            host: host, port: port, privateData: hello, options: options, loop: loop
        ) { c in
            receives = try postReceives(on: c, count: count, size: Int(config.maxReceiveSize))
        }
        do {
            let buffers = receives!
            if let reply = try? ConnectPrivateData.decode(connection.peerPrivateData), reply.kind != .accept {
                throw TransportError.closed(reason: "server refused: reason \(reply.reason.rawValue)")
            }
            let request = TransportNegotiation.request(config)
            try await sendRaw(try request.encode(), on: connection)
            let message = try await receiveNegotiate(on: connection, buffers: buffers, config: config)
            guard case let .negotiateResponse(response) = message else {
                throw TransportError.violation(.unexpectedMessage(message.type))
            }
            let negotiated: NegotiatedTransport
            do { negotiated = try TransportNegotiation.accept(response, for: request, postedReceives: count) } catch {
                throw TransportError.violation(error)
            }
            return try MessageChannel(
                connection: connection, negotiated: negotiated, receives: buffers,
                receiveSize: Int(config.maxReceiveSize), config: config, logger: logger)
        } catch {
            connection.close()
            throw error
        }
    }

    /// Server side: accepts the request (its completions on `loop`, or the listener's), waits
    /// for the negotiate request and answers it.
    public static func accept(
        _ request: ConnectionRequest, config: TransportConfig = .init(), loop: EventLoop? = nil,
        logger: Logger = Logger(label: "daxshare.transport")
    ) async throws -> MessageChannel {
        guard let hello = try? ConnectPrivateData.decode(request.privateData), hello.kind == .connect else {
            request.reject(privateData: (try? ConnectPrivateData(kind: .reject, reason: .badPrivateData).encode()) ?? [])
            throw TransportError.violation(.malformed(.badMagic(field: "privateData")))
        }
        guard (hello.minVersion...hello.maxVersion).contains(Limits.version1) else {
            request.reject(privateData: (try? ConnectPrivateData(kind: .reject, reason: .versionNotSupported).encode()) ?? [])
            throw TransportError.closed(reason: "the peer speaks transport versions \(hello.minVersion)...\(hello.maxVersion), not 0x0100")
        }
        let count = receiveCount(config)
        var receives: RegisteredBuffer?
        let connection = try await request.accept(
            privateData: try ConnectPrivateData(kind: .accept).encode(), options: connectionOptions(config), loop: loop
        ) { c in
            receives = try postReceives(on: c, count: count, size: Int(config.maxReceiveSize))
        }
        do {
            let buffers = receives!
            let message = try await receiveNegotiate(on: connection, buffers: buffers, config: config)
            guard case let .negotiateRequest(req) = message else {
                throw TransportError.violation(.unexpectedMessage(message.type))
            }
            let (response, negotiated) = TransportNegotiation.respond(to: req, config: config, postedReceives: count)
            try await sendRaw(try response.encode(), on: connection)
            guard let negotiated else {
                throw TransportError.closed(reason: "negotiate failed: \(response.status)")
            }
            return try MessageChannel(
                connection: connection, negotiated: negotiated, receives: buffers,
                receiveSize: Int(config.maxReceiveSize), config: config, logger: logger)
        } catch {
            connection.close()
            throw error
        }
    }

    /// The first message of either side: a negotiate message, outside credits.
    /// Its receive is posted again at once.
    private static func receiveNegotiate(
        on connection: Connection, buffers: RegisteredBuffer, config: TransportConfig
    ) async throws -> TransportMessage {
        let wc = try await first(on: connection, timeoutSeconds: TransportConfig.negotiateTimeoutSeconds)
        let message = try decode(wc, in: buffers, size: Int(config.maxReceiveSize))
        try repost(wc, on: connection, buffers: buffers, size: Int(config.maxReceiveSize))
        return message
    }

    private static func postReceives(on c: Connection, count: Int, size: Int) throws(VerbsError) -> RegisteredBuffer {
        let buffers = try RegisteredBuffer(domain: c.domain, length: count * size, access: [.localWrite])
        for slot in 0..<count {
            try c.postReceive(id: UInt64(slot), buffers.region.segment(offset: slot * size, length: size))
        }
        return buffers
    }

    private static func repost(_ wc: WorkCompletion, on c: Connection, buffers: RegisteredBuffer, size: Int) throws(VerbsError) {
        try c.postReceive(id: wc.id, buffers.region.segment(offset: Int(wc.id) * size, length: size))
    }

    /// The next receive completion, failing after `timeoutSeconds`: the timer
    /// disconnects, which flushes the receive being waited on.
    private static func first(on connection: Connection, timeoutSeconds: Int) async throws -> WorkCompletion {
        let timer = Task {
            try await Task.sleep(for: .seconds(timeoutSeconds))
            connection.disconnect()
        }
        defer { timer.cancel() }
        let wc = await connection.nextReceive()
        if timer.isCancelled == false, connection.isConnected == false || wc == nil {
            throw TransportError.violation(.negotiateTimeout)
        }
        guard let wc else { throw TransportError.violation(.negotiateTimeout) }
        if let error = wc.error { throw TransportError.verbs(error) }
        return wc
    }

    private static func decode(_ wc: WorkCompletion, in buffers: RegisteredBuffer, size: Int) throws -> TransportMessage {
        let slot = UnsafeRawBufferPointer(rebasing: buffers.bytes[(Int(wc.id) * size)..<(Int(wc.id) * size + wc.byteCount)])
        do { return try TransportMessage.decode(slot) } catch { throw TransportError.violation(.malformed(error)) }
    }

    /// Sends a negotiate message, which is outside credit accounting.
    private static func sendRaw(_ bytes: [UInt8], on c: Connection) async throws {
        let buffer = try RegisteredBuffer(domain: c.domain, length: bytes.count, access: [.localWrite])
        buffer.bytes.copyBytes(from: bytes)
        try await c.send([buffer.region.segment(length: bytes.count)])
    }

    // MARK: Receiving

    /// Reassembled upper-layer messages, in order. Taking one (the iterator's `next()`) is
    /// what gives its receive back to the peer as a credit. It ends when the channel does:
    /// with nil after a local `close`, else with the reason (once; nil after that).
    public var messages: Messages { Messages(channel: self) }

    /// The channel's incoming messages (`messages`).
    public struct Messages: AsyncSequence, Sendable {
        public typealias Element = [UInt8]
        public typealias Failure = any Error
        let channel: MessageChannel

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: channel) }

        public struct AsyncIterator: AsyncIteratorProtocol {
            let channel: MessageChannel
            /// The next message; nil once the channel was closed locally, or when the waiting
            /// task is cancelled.
            public mutating func next() async throws -> [UInt8]? { try await channel.take() }
        }
    }

    /// Most bytes of received upper-layer messages this channel holds that the upper layer
    /// has not taken, whatever the peer sends and however slowly it is consumed: one message
    /// of `maxIncomingMessageSize`, plus one receive's payload for each receive posted
    /// (`InboundQueue` says why). Fixed besides: the registered receive buffers
    /// (receives × `maxReceiveSize`) and the send ring (up to `maxRingSlots` × `maxSendSize`).
    public var maxBufferedBytes: Int {
        Int(negotiated.maxIncomingMessageSize) + receiveCount * (receiveSize - Limits.dataTransferHeaderSize)
    }

    /// Messages received and not yet taken, and the receives they hold (for tests and stats).
    public var backlog: (messages: Int, heldReceives: Int, bytes: Int) {
        state.withLock { ($0.inbox.count, $0.inbox.heldReceives, $0.inbox.queuedBytes) }
    }

    /// SENDs posted and not yet completed.
    public var sendsInFlight: Int { ring.inFlight }
    /// The most SENDs ever in flight at once on this channel.
    public var sendsInFlightPeak: Int { ring.peak }

    private func take() async throws -> [UInt8]? {
        // A message already here is taken without suspending: a continuation always suspends
        // the task, and resuming it is another job on the loop.
        if let (message, repost) = state.withLock({ $0.inbox.take() }) {
            postAgain(repost)
            return message
        }
        enum Step { case message([UInt8], [UInt64]), end(TransportError?), cancelled, wait }
        while true {
            var step = Step.wait
            await withTaskCancellationHandler {
                await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
                    step = state.withLock { s -> Step in
                        if let (message, repost) = s.inbox.take() { return .message(message, repost) }
                        if let reason = s.closedReason {
                            defer { s.endDelivered = true }
                            return .end(s.endDelivered ? nil : reason)
                        }
                        if Task.isCancelled { return .cancelled }
                        precondition(s.consumer == nil, "two tasks iterate one channel's messages at once")
                        s.consumer = cont
                        return .wait
                    }
                    if case .wait = step { return }
                    cont.resume()
                }
            } onCancel: {
                state.withLock { s in defer { s.consumer = nil }; return s.consumer }?.resume()
            }
            switch step {
            case let .message(message, receives):
                postAgain(receives)
                return message
            case .end(nil), .end(.some(.closed)), .cancelled: return nil
            case let .end(reason?): throw reason
            case .wait: if Task.isCancelled { return nil }
            }
        }
    }

    /// How long a disconnect by the peer waits for messages still in the completion queue.
    static let disconnectGrace: Duration = .milliseconds(250)

    private func start() {
        // Straight from the completion queue's polling, on the connection's loop: the task
        // waiting for the message (on the same loop) resumes without a hop. Whatever ends the
        // channel from here goes to the loop's next turn: a handler must not tear the
        // connection down inside the polling (`Connection.deliverReceives`).
        connection.deliverReceives { [self] wc in
            if state.withLock({ $0.receiving == false }) { return }
            let failure: (TransportError, log: Bool)?
            if let wc {
                if let error = wc.error {
                    failure = (.verbs(error), false)
                } else {
                    do throws(TransportError) {
                        try handle(wc)
                        failure = nil
                    } catch {
                        failure = (error, true)
                    }
                }
            } else {
                failure = (.closed(reason: "connection closed"), false)
            }
            guard let (reason, log) = failure else { return }
            // Nothing more is read once the channel is ending, as when this was a loop.
            state.withLock { $0.receiving = false }
            connection.eventLoop.execute { [self] in end(reason, log: log) }
        }
        Task { [self] in
            await connection.waitUntilDisconnected()
            // The peer's last messages (a reply sent right before it closed) can still be on
            // their way through the completion queue when its disconnect arrives, on another
            // descriptor: give the receive path a moment to hand them over first.
            try? await Task.sleep(for: Self.disconnectGrace)
            end(.verbs(.disconnected), log: false)
        }
    }

    private func handle(_ wc: WorkCompletion) throws(TransportError) {
        let start = Int(wc.id) * receiveSize
        let bytes = UnsafeRawBufferPointer(rebasing: receiveBuffers.bytes[start..<(start + wc.byteCount)])
        let message: TransportMessage
        do { message = try TransportMessage.decode(bytes) } catch { throw .violation(.malformed(error)) }
        guard case let .dataTransfer(data) = message else { throw .violation(.unexpectedMessage(message.type)) }
        let (repost, wake, consumer): ([UInt64], [CheckedContinuation<Void, any Error>], CheckedContinuation<Void, Never>?)
        do {
            (repost, wake, consumer) = try state.withLock { s throws(TransportViolation) in
                try s.credits.received(data.header)
                if s.credits.sendCredits >= 2 { s.keepsLastCredit = true }
                s.lastReceived = .now
                s.keepaliveSent = nil
                let complete = try s.reassembler.append(data)
                let arrival: InboundQueue.Arrival =
                    data.header.dataLength == 0 ? .empty : complete.map { .complete($0) } ?? .fragment
                let repost = s.inbox.arrived(arrival, in: wc.id)
                defer { s.creditWaiters.removeAll() }
                var consumer: CheckedContinuation<Void, Never>?
                if complete != nil { swap(&consumer, &s.consumer) }
                return (repost, s.creditWaiters, consumer)
            }
        } catch {
            throw .violation(error)
        }
        // The message may have granted credits.
        wake.forEach { $0.resume() }
        consumer?.resume()
        postAgain(repost)
    }

    /// Posts `receives` again, counts them as grantable, and sends a grant if one is owed
    /// (checked even when there is nothing to post: the message just handled may have asked).
    private func postAgain(_ receives: [UInt64]) {
        var posted = 0
        for id in receives {
            let segment = receiveBuffers.region.segment(offset: Int(id) * receiveSize, length: receiveSize)
            do { try connection.postReceive(id: id, segment) } catch {
                // Closed meanwhile, or the queue pair is gone: the channel ends either way, on
                // the loop's next turn (this may be inside the completion queue's polling).
                connection.eventLoop.execute { [self] in end(.verbs(error), log: false) }
                return
            }
            posted += 1
        }
        let (sendGrant, wake) = state.withLock { s -> (Bool, [CheckedContinuation<Void, any Error>]) in
            s.credits.receivesPosted(posted)
            // A sender holding its last credit may now attach a grant and go.
            defer { s.creditWaiters.removeAll() }
            if s.closedReason == nil, s.credits.shouldSendCreditGrant, !s.grantPending {
                s.grantPending = true
                return (true, s.creditWaiters)
            }
            return (false, s.creditWaiters)
        }
        wake.forEach { $0.resume() }
        if sendGrant {
            Task(executorPreference: connection.eventLoop) { [self] in
                while true {
                    try? await sendDataTransfer(nil)
                    let again = state.withLock { s -> Bool in
                        if s.closedReason == nil, s.credits.shouldSendCreditGrant { return true }
                        s.grantPending = false
                        return false
                    }
                    if !again { return }
                }
            }
        }
    }

    // MARK: Sending

    /// Sends one upper-layer message, split into as many data transfer messages as the
    /// negotiated send size needs, waiting for credits and send buffers. Returns once the
    /// message is sent (its last SEND completed); other messages may be posted meanwhile.
    public func send(_ message: [UInt8]) async throws {
        try await send(message, awaitingCompletion: true)
    }

    /// `send`, returning once the message is posted when `awaitingCompletion` is false: its
    /// SEND completes later, and a failure ends the channel. What a request's reply wants (the
    /// next message from the peer says it arrived): no wake-up for the completion. A message
    /// the channel is closed behind must be awaited, or the close may flush it.
    public func send(_ message: [UInt8], awaitingCompletion: Bool) async throws {
        let fragments: [Fragment]
        do {
            fragments = try Fragmenter.fragments(
                of: message, maxSendSize: Int(negotiated.maxSendSize),
                maxMessageSize: Int(negotiated.maxOutgoingMessageSize))
        } catch {
            throw TransportError.wire(error)
        }
        var last: SendCompletion?
        do {
            // Held while posting only: the fragments go out back to back, in order.
            await sendGate.enter()
            defer { sendGate.leave() }
            for fragment in fragments { last = try await post(fragment) }
        }
        // In order on the queue pair: the last completing means all did (a failure of an
        // earlier one flushes the rest).
        if awaitingCompletion { try await last?.wait() }
    }

    /// An empty data transfer message: a credit grant or keepalive answer.
    private func sendDataTransfer(_ fragment: Fragment?) async throws {
        let posted: SendCompletion
        do {
            await sendGate.enter()
            defer { sendGate.leave() }
            // Re-check: a payload sent meanwhile may already have carried the grant.
            let still = state.withLock { $0.credits.shouldSendCreditGrant }
            if fragment == nil && !still { return }
            posted = try await post(fragment)
        }
        try await posted.wait()
    }

    /// Sends a keepalive: an empty message with RESPONSE_REQUESTED, if a credit allows one now
    /// (a side without credit is already owed an answer by the peer, rule 7).
    private func sendKeepalive() async throws {
        let posted: SendCompletion
        do {
            await sendGate.enter()
            defer { sendGate.leave() }
            guard state.withLock({ $0.credits.canSend }) else { return }
            posted = try await post(nil, requestResponse: true)
        }
        try await posted.wait()
    }

    /// §2.9: after `interval` of silence, a keepalive; if nothing at all arrives within
    /// `timeout` of it, the peer or the link is gone and the channel ends (`keepaliveTimeout`).
    /// This is how a side whose requests wait for answers learns that none will come.
    /// The watcher sleeps until the next moment something could be due (silence reaching
    /// `interval`, or an unanswered keepalive reaching `timeout`), not on a fixed tick: an
    /// idle connection costs the process no wake-ups (and a benchmark's server CPU no ticks).
    private func watchKeepalive(interval: Duration, timeout: Duration) {
        let watch = Task { [weak self] in
            var wait = interval
            while !Task.isCancelled {
                try? await Task.sleep(for: wait)
                guard let self else { return }
                enum Step { case stop, wait(Duration), send, expire }
                let step = state.withLock { s -> Step in
                    if s.closedReason != nil { return .stop }
                    let now = ContinuousClock.now
                    if let sent = s.keepaliveSent {
                        let left = sent + timeout - now
                        return left > .zero ? .wait(left) : .expire
                    }
                    let quiet = now - s.lastReceived
                    guard quiet >= interval else { return .wait(interval - quiet) }
                    s.keepaliveSent = now
                    return .send
                }
                switch step {
                case .stop: return
                case let .wait(left): wait = left
                case .send:
                    wait = timeout
                    Task { try? await self.sendKeepalive() }
                case .expire:
                    end(.violation(.keepaliveTimeout), log: true)
                    return
                }
            }
        }
        let closed = state.withLock { s in
            if s.closedReason == nil { s.keepaliveWatch = watch }
            return s.closedReason != nil
        }
        if closed { watch.cancel() }
    }

    /// Posts one data transfer message into a free ring slot, once a credit allows; call
    /// with the gate held. The slot returns to the ring when the SEND completes. A grant
    /// owed meanwhile goes out first (the gate holder is the only one who can send it).
    private func post(_ fragment: Fragment?, requestResponse: Bool = false) async throws -> SendCompletion {
        while true {
            let slot = try await ring.acquire()
            let done = SendCompletion()
            let grantOnly: Bool
            do {
                let outgoing: CreditWindow.Outgoing
                (outgoing, grantOnly) = try await takeCredit(forData: fragment != nil, requestResponse: requestResponse)
                // The header, then the payload straight from the caller's message into the slot.
                let payload: ArraySlice<UInt8> = grantOnly ? [] : fragment?.data ?? []
                let header = DataTransferHeader(
                    flags: outgoing.flags, creditsRequested: outgoing.creditsRequested,
                    creditsGranted: outgoing.creditsGranted,
                    remainingDataLength: payload.isEmpty ? 0 : fragment?.remainingDataLength ?? 0,
                    dataOffset: payload.isEmpty ? 0 : UInt32(Limits.dataTransferHeaderSize),
                    dataLength: UInt32(payload.count))
                let head: [UInt8]
                do { head = try header.encode() } catch { throw TransportError.wire(error) }
                let out = ring.bytes(slot)
                out.copyBytes(from: head)
                UnsafeMutableRawBufferPointer(rebasing: out[head.count...]).copyBytes(from: payload)
                let length = head.count + payload.count
                ring.posting(slot)
                do {
                    try await connection.postSend([ring.segment(slot, length: length)]) { [self] result in
                        // On the event loop: free the slot, report, and never tear down from here.
                        ring.release(slot)
                        switch result {
                        case .success: done.fulfill(.success(()))
                        case let .failure(e):
                            done.fulfill(.failure(.verbs(e)))
                            Task { end(.verbs(e), log: false) }
                        }
                    }
                } catch let e as VerbsError {
                    end(.verbs(e), log: false)
                    throw TransportError.verbs(e)
                }
            } catch {
                ring.release(slot)
                throw error
            }
            if !grantOnly { return done }
        }
    }

    /// Takes a send credit and stamps the credit fields, waiting for a message from the
    /// peer (or a repost) that lets this side send. Returns `grantOnly` when, instead, an
    /// empty message granting credits must go first.
    ///
    /// Data never takes the last credit once the peer has shown it posts two receives or
    /// more: the last one is kept for a grant, and a data message that leaves one asks for
    /// more (RESPONSE_REQUESTED). §2.8 allows both (rule 3 asks less). Without that, an upper
    /// layer that must send before it takes its next message (an echo loop) could be stuck
    /// holding one credit with every receive held by messages it has not taken, while the
    /// peer waits for a credit to send the grant it needs: with it, the peer always keeps a
    /// credit for that grant, and the grant's receive is never held.
    private func takeCredit(forData: Bool, requestResponse: Bool) async throws -> (CreditWindow.Outgoing, grantOnly: Bool) {
        while true {
            let next = try state.withLock { s throws(TransportError) -> (CreditWindow.Outgoing, Bool)? in
                if let reason = s.closedReason { throw reason }
                do throws(TransportViolation) {
                    let reserve = forData && s.keepsLastCredit
                    if s.credits.canSend, !reserve || s.credits.sendCredits >= 2 {
                        let ask = requestResponse || (reserve && s.credits.sendCredits == 2)
                        return (try s.credits.prepareSend(requestResponse: ask), false)
                    }
                    if forData, s.credits.shouldSendCreditGrant {
                        return (try s.credits.prepareSend(), true)
                    }
                    return nil
                } catch {
                    throw .violation(error)
                }
            }
            if let next { return next }
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
                enum Decision { case retry, wait, fail(TransportError) }
                let decision = state.withLock { s -> Decision in
                    if let reason = s.closedReason { return .fail(reason) }
                    // A grant arrived, or a grant is owed, meanwhile.
                    if s.credits.canSend && (s.credits.sendCredits >= 2 || !forData || !s.keepsLastCredit) { return .retry }
                    if forData && s.credits.shouldSendCreditGrant { return .retry }
                    s.creditWaiters.append(cont)
                    return .wait
                }
                switch decision {
                case .retry: cont.resume()
                case .wait: break
                case let .fail(reason): cont.resume(throwing: reason)
                }
            }
        }
    }

    // MARK: Ending

    /// Closes the channel and its connection, failing waiting senders. Idempotent.
    public func close(reason: String = "closed locally") {
        end(.closed(reason: reason), log: false)
    }

    /// Whether the channel has ended.
    public var isClosed: Bool { state.withLock { $0.closedReason != nil } }

    /// Messages already received stay in `messages`, ahead of its end, as a stream's buffer does.
    private func end(_ reason: TransportError, log: Bool) {
        let woken = state.withLock { s -> ([CheckedContinuation<Void, any Error>], CheckedContinuation<Void, Never>?)? in
            if s.closedReason != nil { return nil }
            s.closedReason = reason
            defer { s.creditWaiters.removeAll(); s.consumer = nil; s.keepaliveWatch = nil }
            s.keepaliveWatch?.cancel()
            return (s.creditWaiters, s.consumer)
        }
        guard let (waiters, consumer) = woken else { return }
        if log {
            logger.warning("closing connection from \(connection.peerAddress): \(reason)")
        }
        waiters.forEach { $0.resume(throwing: reason) }
        ring.close(reason)
        consumer?.resume()
        connection.close()
    }
}
