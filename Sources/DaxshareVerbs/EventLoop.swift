#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation
import Synchronization
import SystemPackage

/// One thread that waits in `epoll_wait` on the file descriptors of completion
/// channels and rdma_cm event channels, and runs their handlers.
///
/// Verbs deliver completions through file descriptors; waiting on them in a
/// dedicated thread keeps Swift's cooperative pool free: handlers only poll and
/// resume continuations, never block. Teardown of anything a handler touches
/// goes through `execute`, so it cannot race a handler on this thread.
// @unchecked: mutable state in Mutexes; epoll_ctl and eventfd writes are thread-safe.
public final class EventLoop: @unchecked Sendable {
    /// The loop every connection uses unless told otherwise.
    public static let shared = EventLoop(name: "daxshare-verbs")

    private let epollFD: Int32
    private let wakeFD: Int32
    private struct State {
        var handlers: [Int32: @Sendable () -> Void] = [:]
        var tasks: [@Sendable () -> Void] = []
    }
    private let state = Mutex(State())
    private let threadID = Mutex<pthread_t?>(nil)

    public init(name: String) {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        precondition(epollFD >= 0 && wakeFD >= 0, "epoll_create1/eventfd failed: \(Errno(rawValue: errno))")
        var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wakeFD))
        _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &ev)
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Whether the caller is running on the loop's thread.
    public var inLoop: Bool {
        threadID.withLock { $0.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    /// Traps (in debug builds) unless the caller runs on the loop's thread: what only the loop
    /// touches (a completion queue's polling, a CM channel's reads) says so where it is touched,
    /// as swift-nio's `preconditionInEventLoop` does.
    public func assertInLoop(_ what: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        assert(inLoop, "\(what()) off the event loop's thread", file: file, line: line)
    }

    /// Calls `handler` on the loop thread whenever `fd` is readable
    /// (level-triggered: the handler must drain what it can).
    public func register(fd: Int32, handler: @escaping @Sendable () -> Void) throws(VerbsError) {
        state.withLock { $0.handlers[fd] = handler }
        var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: fd))
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev) != 0 {
            let e = Errno(rawValue: errno)
            state.withLock { _ = $0.handlers.removeValue(forKey: fd) }
            throw .call("epoll_ctl(ADD, \(fd))", e)
        }
    }

    /// Stops watching `fd`. A handler already running finishes first when this
    /// is called through `execute`.
    public func unregister(fd: Int32) {
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        state.withLock { _ = $0.handlers.removeValue(forKey: fd) }
    }

    /// Runs `task` on the loop thread, after any handler now running.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        state.withLock { $0.tasks.append(task) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Runs `task` on the loop thread and waits for it; runs it inline when
    /// already on the loop thread.
    public func executeAndWait(_ task: @escaping @Sendable () -> Void) {
        if inLoop { task(); return }
        let done = DispatchSemaphore(value: 0)
        execute { task(); done.signal() }
        done.wait()
    }

    private func run() {
        threadID.withLock { $0 = pthread_self() }
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let n = epoll_wait(epollFD, &events, Int32(events.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait: \(Errno(rawValue: errno))")
            }
            for i in 0..<Int(n) {
                let fd = events[i].data.fd
                if fd == wakeFD {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                    continue
                }
                if let handler = state.withLock({ $0.handlers[fd] }) { handler() }
            }
            let tasks = state.withLock { s -> [@Sendable () -> Void] in
                defer { s.tasks.removeAll() }
                return s.tasks
            }
            for task in tasks { task() }
        }
    }
}
