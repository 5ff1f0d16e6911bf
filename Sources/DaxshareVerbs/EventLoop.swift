#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation
import Synchronization
import SystemPackage

/// One thread that waits on the file descriptors of completion channels and rdma_cm event
/// channels (`epoll_wait`), runs their handlers, and runs Swift tasks that prefer it.
///
/// Verbs deliver completions through file descriptors; waiting on them in a dedicated thread
/// keeps Swift's cooperative pool free: handlers only poll and resume continuations, never
/// block. Teardown of anything a handler touches goes through `execute`, so it cannot race a
/// handler on this thread.
///
/// The loop is also a `TaskExecutor`: a task started with it as executor preference
/// (`Task(executorPreference:)`, `withTaskExecutorPreference`) runs on this thread, so a
/// continuation that a completion handler resumes runs next on the same thread, without a hop
/// to the cooperative pool (a wake-up and a context switch per I/O). Such a task must not block.
///
/// `.busyPolling` trades a core for latency, as perftest does: while any completion queue is
/// watched the thread never sleeps, polls every queue on each turn and asks epoll (CM events,
/// `execute`) only every few turns; with none it blocks as `.blocking` does.
// @unchecked: mutable state in Mutexes; epoll_ctl and eventfd writes are thread-safe.
public final class EventLoop: @unchecked Sendable {
    /// How the thread waits for work.
    public enum Waiting: String, Sendable, CaseIterable {
        /// Sleeps in `epoll_wait` until a descriptor is readable or work is queued.
        case blocking
        /// Spins on its completion queues while it has any (`ibv_poll_cq`, no channel events).
        case busyPolling
    }

    /// The loop every connection uses unless told otherwise.
    public static let shared = EventLoop(name: "daxshare-verbs")

    public let waiting: Waiting
    /// The thread's name (cut to 15 bytes, as Linux keeps them).
    public let name: String
    private let epollFD: Int32
    private let wakeFD: Int32
    private struct State {
        var handlers: [Int32: @Sendable () -> Void] = [:]
        /// Called on every turn of a busy-polling loop (completion queues), by key.
        var pollers: [Int32: @Sendable () -> Void] = [:] {
            didSet { pollerList = Array(pollers.values) }
        }
        /// `pollers`' values, kept so a turn copies a reference, not a dictionary.
        var pollerList: [@Sendable () -> Void] = []
        var tasks: [@Sendable () -> Void] = []
        var jobs: [UnownedJob] = []
        /// The thread is in (or about to enter) an `epoll_wait` without timeout: queued
        /// work must write the eventfd to wake it. Otherwise it finds the work on its next turn.
        var sleeping = false
    }
    private let state = Mutex(State())
    private let threadID = Mutex<pthread_t?>(nil)
    /// epoll is asked once every this many turns while busy polling.
    private static let turnsPerEpoll = 16
    /// Queued tasks and jobs are run in at most this many rounds per turn, so that work that
    /// keeps queueing more cannot keep the loop from its descriptors.
    private static let roundsPerTurn = 8

    public init(name: String, waiting: Waiting = .blocking) {
        self.waiting = waiting
        self.name = name
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        precondition(epollFD >= 0 && wakeFD >= 0, "epoll_create1/eventfd failed: \(Errno(rawValue: errno))")
        var ev = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wakeFD))
        _ = epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &ev)
        let thread = Thread { [self] in run() }
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

    /// Calls `poll` on every turn of a busy-polling loop until `removePoller(key:)`; the
    /// loop spins while it has one. Only for `.busyPolling` loops.
    func addPoller(key: Int32, _ poll: @escaping @Sendable () -> Void) {
        precondition(waiting == .busyPolling, "a poller on a blocking loop would never run")
        wake(after: { $0.pollers[key] = poll })
    }

    func removePoller(key: Int32) {
        state.withLock { _ = $0.pollers.removeValue(forKey: key) }
    }

    /// Runs `task` on the loop thread, after any handler now running.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        wake(after: { $0.tasks.append(task) })
    }

    /// Runs `task` on the loop thread and waits for it; runs it inline when
    /// already on the loop thread.
    public func executeAndWait(_ task: @escaping @Sendable () -> Void) {
        if inLoop { task(); return }
        let done = DispatchSemaphore(value: 0)
        execute { task(); done.signal() }
        done.wait()
    }

    /// Changes the state, and writes the eventfd only if the thread may be asleep.
    private func wake(after change: (inout State) -> Void) {
        let sleeping = state.withLock { s in
            change(&s)
            return s.sleeping
        }
        if sleeping {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    private func run() {
        threadID.withLock { $0 = pthread_self() }
        // Foundation's Thread.name does not reach the kernel here, and a new thread starts
        // with its creator's name: name it for /proc, top -H and perf.
        _ = dxs_set_thread_name(name)
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        // Swapped with the queues each turn, so a steady loop allocates nothing.
        var tasks: [@Sendable () -> Void] = []
        var jobs: [UnownedJob] = []
        var turn = 0
        while true {
            turn &+= 1
            let (pollers, sleeping) = state.withLock { s in
                s.sleeping = s.pollerList.isEmpty && s.tasks.isEmpty && s.jobs.isEmpty
                return (s.pollerList, s.sleeping)
            }
            if pollers.isEmpty || turn % Self.turnsPerEpoll == 0 {
                let n = epoll_wait(epollFD, &events, Int32(events.count), sleeping ? -1 : 0)
                if n < 0 && errno != EINTR { fatalError("epoll_wait: \(Errno(rawValue: errno))") }
                if sleeping { state.withLock { $0.sleeping = false } }
                for i in 0..<Int(max(n, 0)) {
                    let fd = events[i].data.fd
                    if fd == wakeFD {
                        var value: UInt64 = 0
                        _ = read(wakeFD, &value, 8)
                        continue
                    }
                    if let handler = state.withLock({ $0.handlers[fd] }) { handler() }
                }
            }
            for poll in pollers { poll() }
            // What the handlers resumed usually queues more (a request's task posts, awaits, is
            // resumed by a completion polled above…): run what is queued until none is left,
            // a few rounds at most, before asking epoll again. An epoll_wait per round was two
            // extra system calls per two-sided request.
            for _ in 0..<Self.roundsPerTurn {
                state.withLock { s in
                    swap(&tasks, &s.tasks)
                    swap(&jobs, &s.jobs)
                }
                if tasks.isEmpty && jobs.isEmpty { break }
                for task in tasks { task() }
                for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
                tasks.removeAll(keepingCapacity: true)
                jobs.removeAll(keepingCapacity: true)
            }
        }
    }
}

extension EventLoop: TaskExecutor {
    /// Queues a job of a task that prefers this loop; it runs on the loop thread after the
    /// handlers of the current turn (a job queued from the loop thread itself costs no wake-up).
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        wake(after: { $0.jobs.append(job) })
    }
}
