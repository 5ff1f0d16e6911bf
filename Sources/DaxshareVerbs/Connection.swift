import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// Sizes and retry settings of a connection's queue pair.
public struct ConnectionOptions: Sendable {
    /// Work requests the send queue holds; more callers wait for a slot.
    public var sendQueueDepth = 128
    public var receiveQueueDepth = 128
    public var maxScatterGather = 4
    /// Outstanding RDMA READs the peer may issue against us, and we against it.
    public var readDepth: UInt8 = 16
    /// 7 means retry forever: rxe answers a fault on an ODP page with an RNR
    /// NAK, so a zero here would fail the first access to a cold page.
    public var rnrRetryCount: UInt8 = 7
    public var retryCount: UInt8 = 7
    /// rdma_cm address and route resolution timeout.
    public var resolveTimeoutMilliseconds: Int32 = 2000
    /// How long a connect or accept waits for RDMA_CM_EVENT_ESTABLISHED. rdma_cm's own
    /// retries can leave a half-made connection waiting far longer (a peer that sent a connect
    /// request and went away), and that wait held up the server's shutdown.
    public var establishTimeout: Duration = .seconds(30)
    /// Make the queue pair able to post RDMA FLUSH (`flush`): an extended queue pair
    /// (`rdma_create_qp_ex` with IBV_QP_EX_WITH_FLUSH), posted through the `ibv_wr_*` calls. Where
    /// this rdma-core or device has no FLUSH, a plain queue pair, and `canFlush` is false.
    public var flushOperations = false

    public init() {}
}

/// A reliable-connected queue pair made through rdma_cm, with its own
/// protection domain and completion queue.
///
/// Work requests are async: each send-queue operation resumes its caller when
/// its completion arrives, with the completion's failure as a `VerbsError`.
/// `postSend` instead returns once the SEND is posted and reports its completion
/// to a handler, so a caller can keep several in flight.
/// Receive completions are queued for `nextReceive()` until `deliverReceives(to:)` hands them,
/// from then on, straight to a handler on the loop thread.
// @unchecked: mutable state only under `lock`, which work requests are posted under too.
public final class Connection: @unchecked Sendable {
    public let device: Device
    /// This connection's own protection domain: memory registered here is
    /// reachable through this connection only.
    public let domain: ProtectionDomain
    public let options: ConnectionOptions
    /// Private data the peer sent with its connect request or accept.
    public private(set) var peerPrivateData: [UInt8] = []
    /// A handler of receive completions, on the loop thread, in order; nil once the
    /// connection is torn down.
    public typealias ReceiveHandler = @Sendable (WorkCompletion?) -> Void

    let cm: CommunicationID
    let cq: CompletionQueue
    let qp: UnsafeMutablePointer<ibv_qp>
    /// The extended queue pair when it was made with FLUSH (`ConnectionOptions.flushOperations`):
    /// every send work request then goes through it.
    private let qpx: UnsafeMutablePointer<ibv_qp_ex>?
    /// Where receive completions go (under `lock`). Not an AsyncStream: its generic,
    /// unspecialized buffer and the task it resumes cost a message ~10% of a loop thread's
    /// time under TCG (perf, two-sided 4 KiB reads).
    private var receiveRoute = ReceiveRoute.queue([], waiter: nil)
    private enum ReceiveRoute {
        /// Until a handler: completions wait for `nextReceive()`, which may be waiting.
        case queue([WorkCompletion], waiter: UnsafeContinuation<WorkCompletion?, Never>?)
        case handler(ReceiveHandler)
        case finished
    }
    private let lock = PthreadLock()
    /// Send work requests made on the loop thread wait here (under `lock`) until the loop's
    /// current round of jobs is done, then go out as one chain (`postBatch`): one
    /// `ibv_post_send`, which on rxe is a system call and a run of the kernel's requester, for
    /// what several requests posted (at two-sided 4 KiB qd8 the server's loop takes ~8 requests
    /// per wake-up, each a READ's RDMA WRITE and its reply's SEND).
    private let batch: SendBatch
    private var batchPostScheduled = false
    /// `postBatch` as the loop task that runs it: made once, so scheduling it allocates nothing
    /// (a closure per batch was one allocation per 4 KiB one-sided I/O at queue depth 1). Set
    /// at the end of `init`, read only after.
    private var postBatchTask: @Sendable () -> Void = {}
    /// Who hears of each posted work request's completion, by its id: a handler, or a task
    /// waiting on it (stored as is: no closure to allocate per work request).
    private enum Waiter {
        case handler(CompletionHandler)
        case task(UnsafeContinuation<WorkCompletion, any Error>)

        func resume(_ result: Result<WorkCompletion, VerbsError>) {
            switch self {
            case let .handler(h): h(result)
            case let .task(c): c.resume(with: result.mapError { $0 as any Error })
            }
        }
    }
    private var pending: [UInt64: Waiter] = [:]
    private var nextID: UInt64 = 1
    private var freeSlots: Int
    private var slotWaiters: [UnsafeContinuation<Void, any Error>] = []
    private var state = State.connecting
    /// Set once a connect or accept went out: from then on ending the identifier sends a CM
    /// message, which must wait for the port (`PortWait`).
    private var sentConnect = false
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []

    enum State { case connecting, established, disconnected, closed }

    /// The high bit marks receive work requests so completions can be routed.
    static let receiveBit: UInt64 = 1 << 63

    init(cm: CommunicationID, options: ConnectionOptions) throws(VerbsError) {
        guard let context = cm.context else { throw .invalidArgument("rdma_cm id has no device") }
        self.cm = cm
        self.options = options
        self.device = Device(borrowing: context)
        self.domain = try ProtectionDomain(device: device)
        self.cq = try CompletionQueue(
            context: context, entries: options.sendQueueDepth + options.receiveQueueDepth, loop: cm.loop)
        var attr = ibv_qp_init_attr()
        attr.send_cq = cq.cq
        attr.recv_cq = cq.cq
        attr.qp_type = IBV_QPT_RC
        attr.sq_sig_all = 1
        attr.cap.max_send_wr = UInt32(options.sendQueueDepth)
        attr.cap.max_recv_wr = UInt32(options.receiveQueueDepth)
        attr.cap.max_send_sge = UInt32(options.maxScatterGather)
        attr.cap.max_recv_sge = UInt32(options.maxScatterGather)
        let extended = options.flushOperations ? dxr_create_qp_with_flush(cm.id, domain.pd, &attr) : nil
        if extended == nil, rdma_create_qp(cm.id, domain.pd, &attr) != 0 {
            let e = Errno(rawValue: errno)
            cq.destroy()
            throw .call("rdma_create_qp", e)
        }
        self.qpx = extended
        self.qp = cm.id.pointee.qp
        self.freeSlots = options.sendQueueDepth
        self.batch = SendBatch(capacity: options.sendQueueDepth, segmentsEach: options.maxScatterGather)
        // Steady state allocates nothing: the table never grows past the send queue.
        pending.reserveCapacity(options.sendQueueDepth)
        slotWaiters.reserveCapacity(16)
        postBatchTask = { [weak self] in self?.postBatch() }
        try cq.watch { [weak self] wc in self?.complete(wc) }
        AsyncEvents.shared.watch(context, loop: cm.loop)
        AsyncEvents.shared.register(qp, self)
    }

    deinit { tearDown() }

    // MARK: Establishing

    /// Connects to `host:port` (`rdma_resolve_addr`, `rdma_resolve_route`,
    /// `rdma_connect`). `prepare` runs once the queue pair exists and before the
    /// connect is sent: post the receives the peer's first messages need there.
    public static func connect(
        host: String, port: UInt16, privateData: [UInt8] = [], options: ConnectionOptions = .init(),
        loop: EventLoop = .shared, prepare: (Connection) throws -> Void = { _ in }
    ) async throws -> Connection {
        let address = try SocketAddress(host: host, port: port)
        let cm = try CommunicationID(loop: loop)
        do {
            try address.withSockaddr { sa throws(VerbsError) in
                try checkErrno("rdma_resolve_addr(\(address))", rdma_resolve_addr(cm.id, nil, sa, options.resolveTimeoutMilliseconds))
            }
            _ = try await cm.mailbox.expect(RDMA_CM_EVENT_ADDR_RESOLVED)
            try checkErrno("rdma_resolve_route", rdma_resolve_route(cm.id, options.resolveTimeoutMilliseconds))
            _ = try await cm.mailbox.expect(RDMA_CM_EVENT_ROUTE_RESOLVED)
            // A connect sent on a port that is down would wedge the device's CM (see PortWait).
            if let context = cm.context {
                let device = Device(borrowing: context)
                if !PortWait.isActive(device, cm.id.pointee.port_num) { throw VerbsError.portDown(device.name) }
            }
        } catch {
            cm.destroy()
            throw error
        }
        let connection: Connection
        do { connection = try Connection(cm: cm, options: options) } catch { cm.destroy(); throw error }
        try prepare(connection)
        let depth = try connection.readDepth(peerOffers: options.readDepth)
        var param = rdma_conn_param()
        param.responder_resources = depth
        param.initiator_depth = depth
        param.retry_count = options.retryCount
        param.rnr_retry_count = options.rnrRetryCount
        connection.lock.withLock { connection.sentConnect = true }
        try privateData.withUnsafeBytes { raw in
            param.private_data = raw.baseAddress
            param.private_data_len = UInt8(clamping: raw.count)
            try checkErrno("rdma_connect", rdma_connect(cm.id, &param))
        }
        let established = try await connection.awaitEstablished()
        connection.peerPrivateData = established.privateData
        return connection
    }

    /// Accepts on the passive side; see `ConnectionRequest.accept`.
    func accept(privateData: [UInt8], peerResponderResources: UInt8, peerInitiatorDepth: UInt8) async throws {
        var param = rdma_conn_param()
        param.responder_resources = try readDepth(peerOffers: peerInitiatorDepth)
        param.initiator_depth = try readDepth(peerOffers: peerResponderResources)
        param.retry_count = options.retryCount
        param.rnr_retry_count = options.rnrRetryCount
        lock.withLock { sentConnect = true }
        try privateData.withUnsafeBytes { raw in
            param.private_data = raw.baseAddress
            param.private_data_len = UInt8(clamping: raw.count)
            try checkErrno("rdma_accept", rdma_accept(cm.id, &param))
        }
        _ = try await awaitEstablished()
    }

    /// The read depth both sides can live with: ours, the peer's, the device's.
    private func readDepth(peerOffers: UInt8) throws(VerbsError) -> UInt8 {
        let attrs = try device.attributes()
        return min(options.readDepth, peerOffers == 0 ? options.readDepth : peerOffers, UInt8(clamping: attrs.maxQPReadAtomics))
    }

    private func awaitEstablished() async throws -> CMEvent {
        let expired = Expired()
        let timer = Task { [mailbox = cm.mailbox, timeout = options.establishTimeout] in
            try await Task.sleep(for: timeout)
            expired.set()
            mailbox.close()  // ends the wait below
        }
        defer { timer.cancel() }
        let event: CMEvent
        do {
            event = try await cm.mailbox.expect(RDMA_CM_EVENT_ESTABLISHED)
        } catch {
            close()
            throw expired.isSet ? VerbsError.timedOut("RDMA_CM_EVENT_ESTABLISHED after \(options.establishTimeout)") : error
        }
        lock.withLock { state = .established }
        // After establishment the only events left are the disconnect kind.
        Task { [weak self, mailbox = cm.mailbox] in
            while let e = await mailbox.next() {
                if e.type == RDMA_CM_EVENT_DISCONNECTED || e.type == RDMA_CM_EVENT_DEVICE_REMOVAL
                    || e.type == RDMA_CM_EVENT_TIMEWAIT_EXIT {
                    self?.peerDisconnected()
                }
            }
        }
        return event
    }

    /// The loop this connection's completions and CM events arrive on: tasks that prefer it
    /// as their executor resume from a completion without a thread hop.
    public var eventLoop: EventLoop { cm.loop }

    /// The peer's address (`rdma_get_peer_addr`).
    public var peerAddress: SocketAddress {
        SocketAddress(copying: rdma_get_peer_addr(cm.id))
    }

    /// True until a disconnect or close.
    public var isConnected: Bool { lock.withLock { state == .established } }

    /// Whether the port this connection runs on is active (`ibv_query_port`). While it is not,
    /// work requests fail after their retries and CM messages wait (`PortWait`).
    public var portIsActive: Bool { PortWait.isActive(device, cm.id.pointee.port_num) }

    /// Whether `flush` can be posted here: the queue pair was made with FLUSH
    /// (`ConnectionOptions.flushOperations`, rdma-core >= 45, a device that has it). Whether the
    /// peer's memory accepts it is the memory region's business (IBV_ACCESS_FLUSH_PERSISTENT).
    public var canFlush: Bool { qpx != nil }

    // MARK: Work requests

    /// Posts a receive into `segment`; its completion arrives in `receives` with
    /// `id` (which must leave the top bit clear).
    public func postReceive(id: UInt64, _ segment: ScatterGatherElement) throws(VerbsError) {
        guard id & Self.receiveBit == 0 else { throw .invalidArgument("receive id uses the reserved top bit") }
        var sge = segment.c
        var wr = ibv_recv_wr()
        wr.wr_id = id | Self.receiveBit
        wr.num_sge = 1
        var bad: UnsafeMutablePointer<ibv_recv_wr>?
        // Under the lock: `tearDown` marks the connection closed under it before destroying
        // the queue pair, so a post never reaches a freed QP (a peer's second message racing
        // its connection's teardown must cost an error, not the server process).
        let rc = lock.withLock { () -> Int32? in
            guard state != .closed else { return nil }
            return withUnsafeMutablePointer(to: &sge) { p in
                wr.sg_list = p
                return ibv_post_recv(qp, &wr, &bad)
            }
        }
        guard let rc else { throw .disconnected }
        try check("ibv_post_recv", rc)
    }

    /// A SEND of the bytes in `segments`.
    @discardableResult
    public func send(_ segments: [ScatterGatherElement]) async throws -> WorkCompletion {
        try await post(IBV_WR_SEND, segments, remote: nil)
    }

    /// What a posted work request reports when it completes: called once, on the event loop
    /// thread (so it must not block), with the completion, its failure, or `.disconnected`
    /// when the connection is torn down first.
    public typealias CompletionHandler = @Sendable (Result<WorkCompletion, VerbsError>) -> Void

    /// Posts a SEND of the bytes in `segments` and returns once it is on the send queue (after
    /// waiting for a free send-queue slot), not when it completes: `onCompletion` says that.
    /// The segments must stay untouched until then. SENDs posted one after another go out
    /// in that order. If this throws, nothing was posted and `onCompletion` is never called;
    /// on the loop thread a small SEND is posted with the loop's batch (`enqueue`), and a
    /// failure to post it comes to `onCompletion`.
    public func postSend(_ segments: [ScatterGatherElement], onCompletion: @escaping CompletionHandler) async throws {
        try validate(segments, remote: nil)
        try await acquireSlot()
        if let failure = enqueue(IBV_WR_SEND, segments, remote: nil, .handler(onCompletion)) { throw failure }
    }

    /// Posts an RDMA WRITE of `segments` to `remote` and returns once it is on the send queue,
    /// as `postSend` does; `onCompletion` says when it is done, and the segments must stay
    /// untouched until then. A SEND posted after it on this connection reaches the peer only
    /// after the written bytes are in place (RC ordering), so a reply need not wait for it.
    public func postWrite(
        from segments: [ScatterGatherElement], to remote: RemoteMemory, onCompletion: @escaping CompletionHandler
    ) async throws {
        try await postWrite(from: segments[...], to: remote, onCompletion: onCompletion)
    }

    /// `postWrite` of one segment (no array to allocate).
    public func postWrite(
        from segment: ScatterGatherElement, to remote: RemoteMemory, onCompletion: @escaping CompletionHandler
    ) async throws {
        try await postWrite(from: CollectionOfOne(segment), to: remote, onCompletion: onCompletion)
    }

    private func postWrite(
        from segments: some Collection<ScatterGatherElement>, to remote: RemoteMemory, onCompletion: @escaping CompletionHandler
    ) async throws {
        try validate(segments, remote: remote)
        try await acquireSlot()
        if let failure = enqueue(IBV_WR_RDMA_WRITE, segments, remote: remote, .handler(onCompletion)) { throw failure }
    }

    /// An RDMA READ of `remote` into `segments` (one-sided: the peer's CPU is not involved).
    @discardableResult
    public func read(into segments: [ScatterGatherElement], from remote: RemoteMemory) async throws -> WorkCompletion {
        try await post(IBV_WR_RDMA_READ, segments, remote: remote)
    }

    /// An RDMA READ into one segment: nothing is allocated per operation.
    @discardableResult
    public func read(into segment: ScatterGatherElement, from remote: RemoteMemory) async throws -> WorkCompletion {
        try await post(IBV_WR_RDMA_READ, CollectionOfOne(segment), remote: remote)
    }

    /// An RDMA WRITE of `segments` to `remote`.
    @discardableResult
    public func write(from segments: [ScatterGatherElement], to remote: RemoteMemory) async throws -> WorkCompletion {
        try await post(IBV_WR_RDMA_WRITE, segments, remote: remote)
    }

    /// An RDMA WRITE of one segment: nothing is allocated per operation.
    @discardableResult
    public func write(from segment: ScatterGatherElement, to remote: RemoteMemory) async throws -> WorkCompletion {
        try await post(IBV_WR_RDMA_WRITE, CollectionOfOne(segment), remote: remote)
    }

    /// An RDMA FLUSH of `remote` to persistence (IBTA 1.5; placement type PERSISTENT, selectivity
    /// RANGE): completes once the peer's device has made every byte of the range that earlier
    /// RDMA WRITEs on this queue pair placed persistent, without the peer's CPU. Fails with a
    /// remote access error (breaking the queue pair) when the region lacks FLUSH_PERSISTENT
    /// access or is gone; throws `.invalidArgument` at once where `canFlush` is false.
    @discardableResult
    public func flush(_ remote: RemoteMemory) async throws -> WorkCompletion {
        guard canFlush else { throw VerbsError.invalidArgument("this queue pair cannot post RDMA FLUSH") }
        return try await post(dxr_wr_flush_opcode(), EmptyCollection(), remote: remote)
    }

    /// Posts an RDMA WRITE of `segments` to `written` and an RDMA FLUSH of `flushed` right behind
    /// it, in one chain (`ibv_wr_start` ... `ibv_wr_complete`), and waits for both: the write is
    /// persistent when this returns. Needs `canFlush`.
    public func writeAndFlush(from segments: some Collection<ScatterGatherElement>, to written: RemoteMemory,
                              flushing flushed: RemoteMemory) async throws {
        guard canFlush else { throw VerbsError.invalidArgument("this queue pair cannot post RDMA FLUSH") }
        try validate(segments, remote: written)
        try await acquireSlot()
        do { try await acquireSlot() } catch { releaseSlot(); throw error }
        let results = ChainResults(count: 2)
        try await withUnsafeThrowingContinuation { (cont: UnsafeContinuation<Void, any Error>) in
            results.continuation = cont
            let handler: CompletionHandler = { results.arrived($0) }
            if let failure = enqueueChain([(IBV_WR_RDMA_WRITE, Array(segments), written), (dxr_wr_flush_opcode(), [], flushed)],
                                          handler) {
                cont.resume(throwing: failure)
            }
        }
    }

    private func post(
        _ opcode: ibv_wr_opcode, _ segments: some Collection<ScatterGatherElement>, remote: RemoteMemory?
    ) async throws -> WorkCompletion {
        try validate(segments, remote: remote)
        try await acquireSlot()
        return try await withUnsafeThrowingContinuation { (cont: UnsafeContinuation<WorkCompletion, any Error>) in
            if let failure = enqueue(opcode, segments, remote: remote, .task(cont)) {
                cont.resume(throwing: failure)
            }
        }
    }

    private func validate(_ segments: some Collection<ScatterGatherElement>, remote: RemoteMemory?) throws(VerbsError) {
        guard segments.count <= options.maxScatterGather else {
            throw .invalidArgument("\(segments.count) segments; the queue pair takes \(options.maxScatterGather)")
        }
        if let remote {
            let total = segments.reduce(UInt64(0)) { $0 + UInt64($1.length) }
            guard total <= remote.length else {
                throw .invalidArgument("\(total) bytes do not fit remote range of \(remote.length)")
            }
        }
    }

    /// Posts one work request on a send-queue slot the caller holds; on failure the slot is
    /// released, the handler dropped and the error returned. On the loop thread a small one
    /// posted for a handler (`postSend`, `postWrite`: messages and two-sided data; a task that
    /// awaits its request, as one-sided I/O does, gains nothing from waiting for the round)
    /// joins the batch the loop posts after its current round of jobs (`batch`); a failure to
    /// post the batch reaches the waiters of its requests instead. A large one goes at once,
    /// behind the batch: its wire time dwarfs the post, and a READ's next `pread` should
    /// overlap it (batched, a 1 MiB two-sided READ's four pieces waited for all four copies).
    private func enqueue(
        _ opcode: ibv_wr_opcode, _ segments: some Collection<ScatterGatherElement>, remote: RemoteMemory?,
        _ waiter: Waiter
    ) -> VerbsError? {
        var wr = ibv_send_wr()
        Self.fill(&wr, opcode, count: segments.count, remote: remote)
        if case .handler = waiter, segments.reduce(0, { $0 + Int($1.length) }) < Self.batchedBelow, eventLoop.inLoop {
            let schedule = lock.withLock { () -> Bool? in
                guard state != .closed else { return nil }
                wr.wr_id = takeID()
                batch.append(wr, segments)
                pending[wr.wr_id] = waiter
                defer { batchPostScheduled = true }
                return !batchPostScheduled
            }
            guard let schedule else {
                releaseSlot()
                return .disconnected
            }
            if schedule { eventLoop.execute(postBatchTask) }
            return nil
        }
        // The scatter/gather list on the stack (at most `maxScatterGather`, validated).
        let (failure, batchFailure) = withUnsafeTemporaryAllocation(
            of: ibv_sge.self, capacity: max(1, segments.count)
        ) { sges -> (VerbsError?, BatchFailure?) in
            for (i, s) in segments.enumerated() { sges[i] = s.c }
            // Posted under the lock, as receives are: never onto a destroyed queue pair.
            return lock.withLock { () -> (VerbsError?, BatchFailure?) in
                guard state != .closed else { return (.disconnected, nil) }
                // What the loop batched goes first: requests leave in the order they were made.
                let batchFailure = postBatchLocked()
                wr.wr_id = takeID()
                wr.sg_list = sges.baseAddress
                var bad: UnsafeMutablePointer<ibv_send_wr>?
                let rc = dxr_post_send(qp, qpx, &wr, &bad)
                if rc != 0 { return (.call(qpx == nil ? "ibv_post_send" : "ibv_wr_complete", Errno(rawValue: rc)), batchFailure) }
                pending[wr.wr_id] = waiter
                return (nil, batchFailure)
            }
        }
        if let batchFailure { fail(batchFailure) }
        if failure != nil { releaseSlot() }
        return failure
    }

    /// Requests that move fewer bytes than this are batched on the loop thread (`enqueue`).
    static let batchedBelow = 64 << 10

    private func takeID() -> UInt64 {
        defer { nextID = (nextID + 1) & ~Self.receiveBit }
        return nextID
    }

    /// The requests of a batch that could not be posted, and why.
    private typealias BatchFailure = (error: VerbsError, waiters: [Waiter])

    /// Posts the batch, on the loop's turn after the requests that made it.
    private func postBatch() {
        let failure = lock.withLock { () -> BatchFailure? in
            batchPostScheduled = false
            return postBatchLocked()
        }
        if let failure { fail(failure) }
    }

    /// Posts what is batched as one chain; under `lock`. Returns the waiters of requests that
    /// were not posted (their slots still held), to fail outside the lock.
    private func postBatchLocked() -> BatchFailure? {
        guard batch.count > 0 else { return nil }
        defer { batch.count = 0 }
        // Torn down meanwhile: `tearDown` failed every waiter.
        guard state != .closed else { return nil }
        var bad: UnsafeMutablePointer<ibv_send_wr>?
        let rc = dxr_post_send(qp, qpx, batch.requests, &bad)
        guard rc != 0 else { return nil }
        // ibv_post_send posted those before `bad`; ibv_wr_complete (qpx) none of them.
        let first = qpx == nil ? bad.map { $0 - batch.requests } ?? 0 : 0
        var waiters: [Waiter] = []
        for i in first..<batch.count {
            if let w = pending.removeValue(forKey: batch.requests[i].wr_id) { waiters.append(w) }
        }
        return (.call(qpx == nil ? "ibv_post_send" : "ibv_wr_complete", Errno(rawValue: rc)), waiters)
    }

    private func fail(_ failure: BatchFailure) {
        for _ in failure.waiters { releaseSlot() }
        failure.waiters.forEach { $0.resume(.failure(failure.error)) }
    }

    /// A work request's opcode and remote side. FLUSH carries its range in `wr.atomic`
    /// (`dxr_post_send`): it has no local memory, but a length.
    private static func fill(_ wr: inout ibv_send_wr, _ opcode: ibv_wr_opcode, count: Int, remote: RemoteMemory?) {
        wr.opcode = opcode
        wr.num_sge = Int32(count)
        guard let remote else { return }
        if opcode == dxr_wr_flush_opcode() {
            wr.wr.atomic.remote_addr = remote.address
            wr.wr.atomic.rkey = remote.rkey
            wr.wr.atomic.compare_add = remote.length
        } else {
            wr.wr.rdma.remote_addr = remote.address
            wr.wr.rdma.rkey = remote.rkey
        }
    }

    /// Posts several work requests as one chain, each on a slot the caller holds, all reporting
    /// to `handler`; on failure every slot is released and the error returned.
    private func enqueueChain(_ requests: [(ibv_wr_opcode, [ScatterGatherElement], RemoteMemory)],
                              _ handler: @escaping CompletionHandler) -> VerbsError? {
        let sgeCount = requests.reduce(0) { $0 + $1.1.count }
        var failedBatch: BatchFailure?
        defer { if let failedBatch { fail(failedBatch) } }
        let failure: VerbsError? = withUnsafeTemporaryAllocation(of: ibv_send_wr.self, capacity: requests.count) { wrs in
            withUnsafeTemporaryAllocation(of: ibv_sge.self, capacity: max(1, sgeCount)) { sges in
                var at = 0
                for (i, (opcode, segments, remote)) in requests.enumerated() {
                    var wr = ibv_send_wr()
                    Self.fill(&wr, opcode, count: segments.count, remote: remote)
                    wr.sg_list = segments.isEmpty ? nil : sges.baseAddress! + at
                    for s in segments { sges[at] = s.c; at += 1 }
                    wr.next = i + 1 < requests.count ? wrs.baseAddress! + i + 1 : nil
                    wrs[i] = wr
                }
                return lock.withLock { () -> VerbsError? in
                    guard state != .closed else { return .disconnected }
                    // What the loop batched goes first (`enqueue`).
                    if let batchFailure = postBatchLocked() { failedBatch = batchFailure }
                    var ids: [UInt64] = []
                    for i in 0..<requests.count {
                        wrs[i].wr_id = takeID()
                        ids.append(wrs[i].wr_id)
                    }
                    var bad: UnsafeMutablePointer<ibv_send_wr>?
                    let rc = dxr_post_send(qp, qpx, wrs.baseAddress!, &bad)
                    if rc != 0 { return .call(qpx == nil ? "ibv_post_send" : "ibv_wr_complete", Errno(rawValue: rc)) }
                    for id in ids { pending[id] = .handler(handler) }
                    return nil
                }
            }
        }
        if failure != nil { for _ in requests { releaseSlot() } }
        return failure
    }

    /// Runs on the loop thread for every polled completion.
    private func complete(_ wc: WorkCompletion) {
        if wc.id & Self.receiveBit != 0 {
            var c = wc
            c.id &= ~Self.receiveBit
            deliverReceive(c)
            return
        }
        guard let waiter = lock.withLock({ pending.removeValue(forKey: wc.id) }) else { return }
        releaseSlot()
        if let error = wc.error { waiter.resume(.failure(error)) } else { waiter.resume(.success(wc)) }
    }

    /// A free send-queue slot: at once when there is one (no suspension, nothing allocated),
    /// else in turn when one is released.
    private func acquireSlot() async throws {
        if try lock.withLock({ takeSlot() }).get() { return }
        try await withUnsafeThrowingContinuation { (cont: UnsafeContinuation<Void, any Error>) in
            // Checked again with the wait queued under the same lock: a release in between is not missed.
            let now = lock.withLock { () -> Result<Bool, VerbsError> in
                let now = takeSlot()
                if case .success(false) = now { slotWaiters.append(cont) }
                return now
            }
            switch now {
            case .success(true): cont.resume()
            case let .failure(error): cont.resume(throwing: error)
            case .success(false): break
            }
        }
    }

    /// Takes a free slot if one is free and nobody waits for it (true), or says the caller must
    /// wait (false); fails once the connection is going. Call under `lock`.
    private func takeSlot() -> Result<Bool, VerbsError> {
        if state == .closed || state == .disconnected { return .failure(.disconnected) }
        if freeSlots > 0 && slotWaiters.isEmpty { freeSlots -= 1; return .success(true) }
        return .success(false)
    }

    private func releaseSlot() {
        let waiter: UnsafeContinuation<Void, any Error>? = lock.withLock {
            if slotWaiters.isEmpty { freeSlots += 1; return nil }
            return slotWaiters.removeFirst()
        }
        waiter?.resume()
    }

    // MARK: Receive completions

    /// The next receive completion (successful or flushed) before `deliverReceives(to:)`:
    /// nil once the connection is torn down or when the waiting task is cancelled (what was
    /// not taken stays queued). One waiter at a time.
    public func nextReceive() async -> WorkCompletion? {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (cont: UnsafeContinuation<WorkCompletion?, Never>) in
                enum Now { case take(WorkCompletion?), wait }
                let now = lock.withLock { () -> Now in
                    switch receiveRoute {
                    case let .queue(queued, waiter):
                        precondition(waiter == nil, "two tasks wait for one connection's receives")
                        if Task.isCancelled { return .take(nil) }
                        var rest = queued
                        if rest.isEmpty {
                            receiveRoute = .queue(rest, waiter: cont)
                            return .wait
                        }
                        let first = rest.removeFirst()
                        receiveRoute = .queue(rest, waiter: nil)
                        return .take(first)
                    case .handler: preconditionFailure("receive completions already go to a handler")
                    case .finished: return .take(nil)
                    }
                }
                if case let .take(wc) = now { cont.resume(returning: wc) }
            }
        } onCancel: {
            let waiter = lock.withLock { () -> UnsafeContinuation<WorkCompletion?, Never>? in
                guard case let .queue(queued, waiter?) = receiveRoute else { return nil }
                receiveRoute = .queue(queued, waiter: nil)
                return waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Receive completions: `AsyncSequence` over `nextReceive()` (for negotiation and tests).
    public var receives: ReceiveCompletions { ReceiveCompletions(connection: self) }

    public struct ReceiveCompletions: AsyncSequence, Sendable {
        public typealias Element = WorkCompletion
        public typealias Failure = Never
        let connection: Connection
        public func makeAsyncIterator() -> Iterator { Iterator(connection: connection) }
        public struct Iterator: AsyncIteratorProtocol {
            let connection: Connection
            public mutating func next() async -> WorkCompletion? { await connection.nextReceive() }
        }
    }

    /// From now on every receive completion goes to `handler` on the loop thread, those already
    /// queued first, then nil once the connection is torn down. Once per connection, with no
    /// `nextReceive()` waiting. The handler runs inside the completion queue's polling: it must
    /// not block, and must not close the connection there (defer that to the loop).
    public func deliverReceives(to handler: @escaping ReceiveHandler) {
        eventLoop.execute { [self] in
            // On the loop thread, where completions are polled: nothing arrives meanwhile.
            let (queued, finished) = lock.withLock { () -> ([WorkCompletion], Bool) in
                switch receiveRoute {
                case let .queue(queued, waiter):
                    precondition(waiter == nil, "a task still waits in nextReceive()")
                    receiveRoute = .handler(handler)
                    return (queued, false)
                case .handler: preconditionFailure("deliverReceives(to:) called twice")
                case .finished: return ([], true)
                }
            }
            for wc in queued { handler(wc) }
            if finished { handler(nil) }
        }
    }

    private func deliverReceive(_ wc: WorkCompletion) {
        enum Next { case none, resume(UnsafeContinuation<WorkCompletion?, Never>), call(ReceiveHandler) }
        let next = lock.withLock { () -> Next in
            switch receiveRoute {
            case let .handler(handler): return .call(handler)
            case let .queue(queued, waiter):
                if let waiter {
                    receiveRoute = .queue(queued, waiter: nil)
                    return .resume(waiter)
                }
                // Only before a handler (a negotiation's few messages): a copy costs nothing.
                receiveRoute = .queue(queued + [wc], waiter: nil)
                return .none
            case .finished: return .none
            }
        }
        switch next {
        case .none: break
        case let .resume(waiter): waiter.resume(returning: wc)
        case let .call(handler): handler(wc)
        }
    }

    private func finishReceives() {
        let route = lock.withLock { () -> ReceiveRoute in
            defer { receiveRoute = .finished }
            return receiveRoute
        }
        switch route {
        case let .queue(_, waiter?): waiter.resume(returning: nil)
        case let .handler(handler): handler(nil)
        case .queue, .finished: break
        }
    }

    // MARK: Ending

    private func peerDisconnected() {
        let (waiters, closers) = lock.withLock { () -> ([UnsafeContinuation<Void, any Error>], [CheckedContinuation<Void, Never>]) in
            if state == .established || state == .connecting { state = .disconnected }
            defer { slotWaiters.removeAll(); closeWaiters.removeAll() }
            return (slotWaiters, closeWaiters)
        }
        waiters.forEach { $0.resume(throwing: VerbsError.disconnected) }
        closers.forEach { $0.resume() }
    }

    /// Waits until the peer disconnects or the connection is closed.
    public func waitUntilDisconnected() async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let done = lock.withLock {
                if state == .disconnected || state == .closed { return true }
                closeWaiters.append(cont)
                return false
            }
            if done { cont.resume() }
        }
    }

    /// `rdma_disconnect`: the queue pair moves to the error state, posted work
    /// requests complete as flushed, and the peer sees a disconnect. While the port is down the
    /// DREQ waits for it (`PortWait`, at `close`); the queue pair is flushed now all the same.
    /// Safe from any thread at any time: it runs under the lock that `tearDown` marks the
    /// connection closed under before destroying the queue pair and the rdma_cm id, so it never
    /// uses them after. (It did, once: a queue-pair error's disconnect, started from the
    /// asynchronous-event thread, raced the connection's own close and crashed the server in
    /// `ucma_shutdown`.)
    public func disconnect() {
        lock.withLock {
            guard state == .established else { return }
            if portIsActive {
                _ = rdma_disconnect(cm.id)
            } else {
                var attr = ibv_qp_attr()
                attr.qp_state = IBV_QPS_ERR
                _ = ibv_modify_qp(qp, &attr, Int32(IBV_QP_STATE.rawValue))
            }
        }
        peerDisconnected()
    }

    /// Disconnects and releases the queue pair, completion queue and rdma_cm
    /// id. Idempotent. Memory regions stay valid until they are released (they
    /// keep the protection domain alive).
    public func close() {
        disconnect()
        tearDown()
    }

    private func tearDown() {
        let (first, sentConnect) = lock.withLock { () -> (Bool, Bool) in
            defer { state = .closed }
            return (state != .closed, self.sentConnect)
        }
        guard first else { return }
        let cq = self.cq, cm = self.cm
        cm.loop.executeAndWait {
            cq.unwatch()
            // What is still queued was flushed; its callers fail below.
            cq.poll { _ in }
        }
        AsyncEvents.shared.forget(qp)
        rdma_destroy_qp(cm.id)
        cq.destroy()
        if sentConnect && !portIsActive {
            PortWait.shared.park(cm, device: device, port: cm.id.pointee.port_num)
        } else {
            cm.destroy()
        }
        let waiters = lock.withLock { () -> [Waiter] in
            defer { pending.removeAll() }
            return Array(pending.values)
        }
        waiters.forEach { $0.resume(.failure(.disconnected)) }
        finishReceives()
        peerDisconnected()
    }
}

/// The completions of a chain's work requests, gathered: its waiter resumes once, with the first
/// failure or after the last success (a failed request may complete before the others flush).
// @unchecked: `continuation`, `remaining` and `failure` only under `lock`.
private final class ChainResults: @unchecked Sendable {
    private let lock = PthreadLock()
    private var remaining: Int
    private var failure: VerbsError?
    private var _continuation: UnsafeContinuation<Void, any Error>?
    var continuation: UnsafeContinuation<Void, any Error>? {
        get { lock.withLock { _continuation } }
        set { lock.withLock { _continuation = newValue } }
    }

    init(count: Int) { remaining = count }

    func arrived(_ result: Result<WorkCompletion, VerbsError>) {
        let done = lock.withLock { () -> (UnsafeContinuation<Void, any Error>, VerbsError?)? in
            if case let .failure(e) = result, failure == nil { failure = e }
            remaining -= 1
            guard remaining == 0, let c = _continuation else { return nil }
            _continuation = nil
            return (c, failure)
        }
        guard let (c, failure) = done else { return }
        if let failure { c.resume(throwing: failure) } else { c.resume() }
    }
}

/// Set once, read after: whether a timer fired.
// @unchecked: `value` only under `lock`.
private final class Expired: @unchecked Sendable {
    private let lock = PthreadLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Storage for the send work requests a connection batches (`Connection.batch`): at most one
/// per send-queue slot, each with room for the queue pair's scatter/gather entries, chained in
/// the order appended.
// @unchecked: used only under its connection's `lock`.
private final class SendBatch: @unchecked Sendable {
    let requests: UnsafeMutablePointer<ibv_send_wr>
    private let segments: UnsafeMutablePointer<ibv_sge>
    private let capacity: Int
    private let segmentsEach: Int
    var count = 0

    init(capacity: Int, segmentsEach: Int) {
        self.capacity = capacity
        self.segmentsEach = max(1, segmentsEach)
        requests = .allocate(capacity: capacity)
        segments = .allocate(capacity: capacity * self.segmentsEach)
    }

    deinit {
        requests.deallocate()
        segments.deallocate()
    }

    /// Adds `wr` (its id set) with `list` as its scatter/gather list, linked behind the last.
    /// A request holds a send-queue slot, so there is always room.
    func append(_ wr: ibv_send_wr, _ list: some Collection<ScatterGatherElement>) {
        precondition(count < capacity && list.count <= segmentsEach, "send batch overflow")
        let sges = segments + count * segmentsEach
        for (i, s) in list.enumerated() { sges[i] = s.c }
        var wr = wr
        wr.sg_list = list.isEmpty ? nil : sges
        wr.next = nil
        (requests + count).initialize(to: wr)
        if count > 0 { requests[count - 1].next = requests + count }
        count += 1
    }
}
