import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// A device's asynchronous events (`ibv_get_async_event`, `ibv_ack_async_event`): port state
/// changes, and errors the NIC found outside any work request (a queue pair gone fatal, a
/// completion queue overrun). Every event is logged and acknowledged; a queue pair's error
/// disconnects its connection, whose callers then fail as on any disconnect, instead of
/// waiting on a queue pair that will never complete anything again.
///
/// One watcher per device context, on the event loop that already waits for completions.
final class AsyncEvents: Sendable {
    static let shared = AsyncEvents()

    private struct WeakConnection {
        weak var connection: Connection?
    }
    private struct State {
        var watched: Set<UInt> = []
        var queuePairs: [UInt: WeakConnection] = [:]
    }
    private let state = Mutex(State())
    private let logger = Logger(label: "daxshare.verbs")

    /// Starts reading `context`'s events on `loop`, once per context.
    func watch(_ context: UnsafeMutablePointer<ibv_context>, loop: EventLoop) {
        let key = UInt(bitPattern: context)
        let first = state.withLock { $0.watched.insert(key).inserted }
        guard first else { return }
        let fd = context.pointee.async_fd
        // The loop only polls: the descriptor must not block when the events are read.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let address = UInt(bitPattern: context)
        do {
            try loop.register(fd: fd) { [self] in
                drain(UnsafeMutablePointer<ibv_context>(bitPattern: address)!, loop: loop)
            }
        } catch {
            state.withLock { _ = $0.watched.remove(key) }
            logger.warning("asynchronous events of the RDMA device will not be read: \(error)")
        }
    }

    /// Routes `qp`'s errors to `connection` until `forget`.
    func register(_ qp: UnsafeMutablePointer<ibv_qp>, _ connection: Connection) {
        state.withLock { $0.queuePairs[UInt(bitPattern: qp)] = WeakConnection(connection: connection) }
    }

    func forget(_ qp: UnsafeMutablePointer<ibv_qp>) {
        state.withLock { _ = $0.queuePairs.removeValue(forKey: UInt(bitPattern: qp)) }
    }

    /// On the loop thread: every pending event, each acknowledged before the next.
    private func drain(_ context: UnsafeMutablePointer<ibv_context>, loop: EventLoop) {
        assert(loop.inLoop, "asynchronous events are read on their loop's thread only")
        var event = ibv_async_event()
        while ibv_get_async_event(context, &event) == 0 {
            handle(event, device: ibv_get_device_name(context.pointee.device).map { String(cString: $0) } ?? "?")
            ibv_ack_async_event(&event)
        }
    }

    private func handle(_ event: ibv_async_event, device: String) {
        let type = event.event_type
        let name = ibv_event_type_str(type).map { String(cString: $0) } ?? "event \(type.rawValue)"
        switch type {
        case IBV_EVENT_QP_FATAL, IBV_EVENT_QP_REQ_ERR, IBV_EVENT_QP_ACCESS_ERR, IBV_EVENT_PATH_MIG_ERR:
            let connection = event.element.qp.flatMap { qp in
                state.withLock { $0.queuePairs[UInt(bitPattern: qp)]?.connection }
            }
            logger.warning("\(device): \(name) on a queue pair\(connection.map { " (peer \($0.peerAddress))" } ?? ""): disconnecting it")
            // Not on the loop thread: a disconnect may wait for the loop.
            if let connection { Task { connection.disconnect() } }
        case IBV_EVENT_PORT_ERR, IBV_EVENT_DEVICE_FATAL, IBV_EVENT_CQ_ERR, IBV_EVENT_SRQ_ERR, IBV_EVENT_WQ_FATAL:
            logger.warning("\(device): \(name)")
        default:
            logger.info("\(device): \(name)")
        }
    }
}
