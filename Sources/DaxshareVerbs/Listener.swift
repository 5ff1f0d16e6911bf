import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A passive rdma_cm endpoint (`rdma_bind_addr`, `rdma_listen`) that hands out
/// incoming connection requests.
// @unchecked: `isClosed` only under `closed`.
public final class Listener: @unchecked Sendable {
    /// The bound address; its port is the real one when 0 was asked for.
    public let address: SocketAddress
    /// Connection requests as they arrive; ends when the listener closes.
    public let requests: AsyncStream<ConnectionRequest>
    private let cm: CommunicationID
    private let closed = PthreadLock()
    private var isClosed = false

    public init(host: String, port: UInt16, backlog: Int32 = 64, loop: EventLoop = .shared) throws(VerbsError) {
        let address = try SocketAddress(host: host, port: port)
        let cm = try CommunicationID(loop: loop)
        do {
            try address.withSockaddr { sa throws(VerbsError) in
                try checkErrno("rdma_bind_addr(\(address))", rdma_bind_addr(cm.id, sa))
            }
            try checkErrno("rdma_listen", rdma_listen(cm.id, backlog))
        } catch {
            cm.destroy()
            throw error
        }
        self.cm = cm
        self.address = SocketAddress(copying: rdma_get_local_addr(cm.id))
        let (stream, sink) = AsyncStream.makeStream(of: ConnectionRequest.self)
        self.requests = stream
        Task { [mailbox = cm.mailbox] in
            while let event = await mailbox.next() {
                guard event.type == RDMA_CM_EVENT_CONNECT_REQUEST else { continue }
                sink.yield(ConnectionRequest(event: event, loop: loop))
            }
            sink.finish()
        }
    }

    /// Stops listening; requests not yet accepted are rejected. Idempotent.
    public func close() {
        let first = closed.withLock { () -> Bool in
            defer { isClosed = true }
            return !isClosed
        }
        if first { cm.destroy() }
    }

    deinit { close() }
}

/// A client's connect request, waiting for `accept` or `reject`. Dropping it
/// unanswered rejects it.
// @unchecked: `answered` only under `lock`.
public final class ConnectionRequest: @unchecked Sendable {
    /// The private data the client sent with its connect.
    public let privateData: [UInt8]
    /// The client's address.
    public let peer: SocketAddress
    private let event: CMEvent
    private let loop: EventLoop
    private let lock = PthreadLock()
    private var answered = false

    init(event: CMEvent, loop: EventLoop) {
        self.event = event
        self.loop = loop
        self.privateData = event.privateData
        self.peer = SocketAddress(copying: rdma_get_peer_addr(event.id))
    }

    private func take() throws(VerbsError) {
        let first = lock.withLock { () -> Bool in
            defer { answered = true }
            return !answered
        }
        guard first else { throw .invalidArgument("connection request already answered") }
    }

    /// Accepts (`rdma_accept`) with a new queue pair in a new protection domain, whose events
    /// and completions arrive on `loop` (the listener's unless given).
    /// `prepare` runs before the accept goes out: post receives there.
    public func accept(
        privateData: [UInt8] = [], options: ConnectionOptions = .init(), loop: EventLoop? = nil,
        prepare: (Connection) throws -> Void = { _ in }
    ) async throws -> Connection {
        try take()
        let cm: CommunicationID
        do {
            cm = try CommunicationID(migrating: event.id, loop: loop ?? self.loop)
        } catch {
            _ = rdma_reject(event.id, nil, 0)
            rdma_destroy_id(event.id)
            throw error
        }
        let connection: Connection
        do {
            connection = try Connection(cm: cm, options: options)
        } catch {
            _ = rdma_reject(cm.id, nil, 0)
            cm.destroy()
            throw error
        }
        try prepare(connection)
        try await connection.accept(
            privateData: privateData, peerResponderResources: event.responderResources,
            peerInitiatorDepth: event.initiatorDepth)
        return connection
    }

    /// Refuses the connection (`rdma_reject`) with `privateData` as the reason.
    public func reject(privateData: [UInt8] = []) {
        guard (try? take()) != nil else { return }
        privateData.withUnsafeBytes { raw in
            _ = rdma_reject(event.id, raw.baseAddress, UInt8(clamping: raw.count))
        }
        rdma_destroy_id(event.id)
    }

    deinit { reject() }
}
