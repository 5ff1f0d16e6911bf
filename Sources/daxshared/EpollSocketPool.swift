#if canImport(Glibc)
import Glibc
#endif
import CLinux
import FlyingSocks
import Foundation
import Synchronization

/// FlyingFox's socket pool for the metrics endpoint: one thread in `epoll_wait`, without
/// timeout, resuming the task that waits for a socket when it is ready.
///
/// FlyingSocks' own `SocketPool` blocks in `epoll_wait` on a Dispatch queue, which starts
/// Dispatch's worker pool and its once-a-second timer: with it an idle daxshared woke every
/// second (measured in the testbed; ThreadPoolExecutor says why that matters).
final class EpollSocketPool: AsyncSocketPool {
    private let epollFD: Int32
    private let waiting = Mutex<[Int32: CheckedContinuation<Void, any Error>]>([:])

    init() throws {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw SystemCallFailure("epoll_create1") }
        let thread = Thread { [self] in
            _ = dxs_set_thread_name("metrics-epoll")
            wait()
        }
        thread.start()
    }

    func prepare() async throws {}

    /// The thread does the work; this only keeps the server's run loop alive until cancelled.
    func run() async throws {
        try await withTaskCancellationHandler {
            while true { try await Task.sleep(for: .seconds(86_400)) }
        } onCancel: {
            for fd in waiting.withLock({ Array($0.keys) }) { resume(fd, throwing: CancellationError()) }
        }
    }

    func suspendSocket(_ socket: Socket, untilReadyFor events: Socket.Events) async throws {
        let fd = socket.file.rawValue
        var mask = EPOLLONESHOT.rawValue | EPOLLRDHUP.rawValue
        if events.contains(.read) { mask |= EPOLLIN.rawValue }
        if events.contains(.write) { mask |= EPOLLOUT.rawValue }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                waiting.withLock { $0[fd] = c }
                var ev = epoll_event(events: mask, data: epoll_data_t(fd: fd))
                if epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &ev) != 0, epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev) != 0 {
                    resume(fd, throwing: SystemCallFailure("epoll_ctl(\(fd))"))
                } else if Task.isCancelled {
                    resume(fd, throwing: CancellationError())
                }
            }
        } onCancel: {
            // FlyingFox's timeouts and shutdown cancel the waiting task.
            resume(fd, throwing: CancellationError())
        }
    }

    private func resume(_ fd: Int32, throwing error: any Error) {
        guard let c = waiting.withLock({ $0.removeValue(forKey: fd) }) else { return }
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        c.resume(throwing: error)
    }

    private func wait() {
        var events = [epoll_event](repeating: epoll_event(), count: 32)
        while true {
            let n = epoll_wait(epollFD, &events, Int32(events.count), -1)
            if n < 0 { if errno == EINTR { continue }; return }
            for e in events.prefix(Int(n)) {
                // Errors and hang-ups wake the task too: its read or write then says what happened.
                if let c = waiting.withLock({ $0.removeValue(forKey: e.data.fd) }) { c.resume() }
            }
        }
    }
}
