import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// An rdma_cm event, copied out of `struct rdma_cm_event` so the event can be
/// acknowledged at once (rdma_destroy_id waits for every event to be acked).
// @unchecked: a copy of an acknowledged event; its id pointer is used by that id's owner only.
struct CMEvent: @unchecked Sendable {
    var type: rdma_cm_event_type
    var status: Int32
    var id: UnsafeMutablePointer<rdma_cm_id>
    var listenID: UnsafeMutablePointer<rdma_cm_id>?
    var privateData: [UInt8]
    var responderResources: UInt8
    var initiatorDepth: UInt8

    var name: String { rdma_event_str(type).map { String(cString: $0) } ?? "event \(type.rawValue)" }
}

/// An rdma_cm event channel (`rdma_create_event_channel`) with a non-blocking fd.
// @unchecked: an immutable pointer, read on the event loop's thread.
final class CMEventChannel: @unchecked Sendable {
    let channel: UnsafeMutablePointer<rdma_event_channel>
    var fd: Int32 { channel.pointee.fd }

    init() throws(VerbsError) {
        guard let ch = rdma_create_event_channel() else {
            throw .call("rdma_create_event_channel", Errno(rawValue: errno))
        }
        channel = ch
        let flags = fcntl(ch.pointee.fd, F_GETFL)
        _ = fcntl(ch.pointee.fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// The next event, or nil when none is pending (`rdma_get_cm_event`,
    /// `rdma_ack_cm_event`).
    func next() -> CMEvent? {
        var ev: UnsafeMutablePointer<rdma_cm_event>?
        guard rdma_get_cm_event(channel, &ev) == 0, let e = ev else { return nil }
        defer { rdma_ack_cm_event(e) }
        let conn = e.pointee.param.conn
        var data: [UInt8] = []
        if let p = conn.private_data, conn.private_data_len > 0 {
            data = Array(UnsafeRawBufferPointer(start: p, count: Int(conn.private_data_len)))
        }
        return CMEvent(
            type: e.pointee.event, status: e.pointee.status, id: e.pointee.id, listenID: e.pointee.listen_id,
            privateData: data, responderResources: conn.responder_resources, initiatorDepth: conn.initiator_depth)
    }

    func destroy() { rdma_destroy_event_channel(channel) }
}

/// Events waiting for an async consumer: a queue plus at most one waiter.
// @unchecked: `queue`, `waiter` and `closed` only under `lock`.
final class CMEventMailbox: @unchecked Sendable {
    private var queue: [CMEvent] = []
    private var waiter: CheckedContinuation<CMEvent?, Never>?
    private var closed = false
    private let lock = PthreadLock()

    func post(_ event: CMEvent) {
        lock.lock()
        if let w = waiter {
            waiter = nil
            lock.unlock()
            w.resume(returning: event)
        } else {
            queue.append(event)
            lock.unlock()
        }
    }

    func close() {
        lock.lock()
        closed = true
        let w = waiter
        waiter = nil
        lock.unlock()
        w?.resume(returning: nil)
    }

    /// The next event, or nil once the mailbox is closed.
    func next() async -> CMEvent? {
        await withCheckedContinuation { cont in
            lock.lock()
            if !queue.isEmpty {
                let e = queue.removeFirst()
                lock.unlock()
                cont.resume(returning: e)
            } else if closed {
                lock.unlock()
                cont.resume(returning: nil)
            } else {
                waiter = cont
                lock.unlock()
            }
        }
    }

    /// Waits for an event of type `expected`; any other event is an error.
    func expect(_ expected: rdma_cm_event_type) async throws(VerbsError) -> CMEvent {
        guard let e = await next() else { throw .disconnected }
        if e.type == expected { return e }
        if e.type == RDMA_CM_EVENT_REJECTED { throw .rejected(privateData: e.privateData, status: e.status) }
        let name = rdma_event_str(expected).map { String(cString: $0) } ?? "\(expected.rawValue)"
        throw .unexpectedEvent(expected: name, got: e.name, status: e.status)
    }
}

/// A pthread mutex usable around `await`-free critical sections that must
/// resume continuations outside the lock.
// @unchecked: a pthread mutex, which is what makes others safe.
final class PthreadLock: @unchecked Sendable {
    private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    func lock() { pthread_mutex_lock(m) }
    func unlock() { pthread_mutex_unlock(m) }
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock(); defer { unlock() }
        return try body()
    }
}
