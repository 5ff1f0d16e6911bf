import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A completion queue with its own completion channel (`ibv_create_cq`,
/// `ibv_create_comp_channel`). On a blocking loop the channel's non-blocking fd joins the
/// loop's epoll set; on a busy-polling loop the queue is never armed and is polled every turn.
// @unchecked: immutable pointers, and `entries`, touched on `loop`'s thread only (asserted); destroyed after it is unwatched there.
final class CompletionQueue: @unchecked Sendable {
    let channel: UnsafeMutablePointer<ibv_comp_channel>
    let cq: UnsafeMutablePointer<ibv_cq>
    /// The loop whose thread alone polls this queue.
    let loop: EventLoop
    /// Where `poll` lands completions: allocated once, so polling allocates nothing.
    private let entries = UnsafeMutablePointer<ibv_wc>.allocate(capacity: 32)
    private static let batch: Int32 = 32

    var fd: Int32 { channel.pointee.fd }

    init(context: UnsafeMutablePointer<ibv_context>, entries: Int, loop: EventLoop) throws(VerbsError) {
        self.loop = loop
        guard let channel = ibv_create_comp_channel(context) else {
            throw .call("ibv_create_comp_channel", Errno(rawValue: errno))
        }
        guard let cq = ibv_create_cq(context, Int32(entries), nil, channel, 0) else {
            let e = Errno(rawValue: errno)
            ibv_destroy_comp_channel(channel)
            throw .call("ibv_create_cq(\(entries))", e)
        }
        self.channel = channel
        self.cq = cq
        let flags = fcntl(channel.pointee.fd, F_GETFL)
        _ = fcntl(channel.pointee.fd, F_SETFL, flags | O_NONBLOCK)
        if loop.waiting == .blocking {
            try check("ibv_req_notify_cq", ibv_req_notify_cq(cq, 0))
        }
    }

    /// Hands every completion to `body` on the loop thread from now on: when the channel
    /// signals (blocking loop), or on every turn (busy-polling loop).
    func watch(_ body: @escaping @Sendable (WorkCompletion) -> Void) throws(VerbsError) {
        switch loop.waiting {
        case .blocking: try loop.register(fd: fd) { [self] in drain(body) }
        case .busyPolling: loop.addPoller(key: fd) { [self] in poll(body) }
        }
    }

    /// Stops `watch`; call on the loop thread (`execute`) so no poll is running.
    func unwatch() {
        switch loop.waiting {
        case .blocking: loop.unregister(fd: fd)
        case .busyPolling: loop.removePoller(key: fd)
        }
    }

    /// Consumes the channel's event, re-arms the queue, and hands every
    /// polled completion to `body`. Re-arming before the final poll means a
    /// completion that lands in between still raises the next event.
    ///
    /// One `ibv_get_cq_event`, not a loop until EAGAIN: the channel serves this queue alone,
    /// and an armed queue raises one event, so a second read would only fail (a system call
    /// per wake-up); a later event keeps the descriptor readable for the next turn.
    func drain(_ body: (WorkCompletion) -> Void) {
        var evCQ: UnsafeMutablePointer<ibv_cq>?
        var evCtx: UnsafeMutableRawPointer?
        if ibv_get_cq_event(channel, &evCQ, &evCtx) == 0 {
            ibv_ack_cq_events(cq, 1)
            _ = ibv_req_notify_cq(cq, 0)
        }
        poll(body)
    }

    /// Polls without waiting for an event (used at teardown).
    func poll(_ body: (WorkCompletion) -> Void) {
        loop.assertInLoop("polling a completion queue")
        while true {
            let n = ibv_poll_cq(cq, Self.batch, entries)
            if n <= 0 { return }
            for i in 0..<Int(n) { body(WorkCompletion(entries[i])) }
            if n < Self.batch { return }
        }
    }

    /// Destroys the queue, then the channel; the QP using it must be gone.
    func destroy() {
        ibv_destroy_cq(cq)
        ibv_destroy_comp_channel(channel)
        entries.deallocate()
    }
}
