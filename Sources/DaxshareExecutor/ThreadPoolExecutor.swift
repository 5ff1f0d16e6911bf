#if canImport(Glibc)
import Glibc
#endif
import CConcurrencyHooks
import CLinux
@_spi(ExperimentalScheduling) import _Concurrency

/// A fixed pool of threads that runs Swift tasks, with its own timers: the process's global
/// executor once `installAsGlobalExecutor()` has run.
///
/// Why not Dispatch's pool, which Swift uses on Linux by default: corelibs-libdispatch
/// watches its pool with a timer that fires every second for the life of the process, once
/// the first task has run (src/event/workqueue.c, `_dispatch_workq_monitor_pools`). A server
/// with nothing to do then still wakes a thread every second (measured in the testbed: 13
/// wake-ups and 9 ms of CPU in 10 s of an idle daxshared), and a client writing one-sided with
/// RDMA FLUSH sees server CPU where the server takes no part. This pool's threads sleep in
/// `pthread_cond_wait` until a job is enqueued, or until the earliest `Task.sleep` is due.
///
/// Jobs run in the order they are enqueued (priorities are not honoured) on up to `threads`
/// threads at once. Work that blocks a thread (an fsync, a large registration) holds one of
/// them; there are a few more threads than CPUs for that, and none grows.
// @unchecked: all mutable state is under `mutex`.
public final class ThreadPoolExecutor: TaskExecutor, @unchecked Sendable {
    /// The pool `installAsGlobalExecutor` installs: twice the CPUs, at least four threads.
    public static let global = ThreadPoolExecutor(threads: max(4, 2 * Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))), name: "task-pool")

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Idle threads wait here for a job.
    private let workAvailable = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// The one thread that waits for the earliest timer waits here, with that timeout.
    private let timersChanged = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var ready: [UnownedJob] = []
    private var readyHead = 0
    private var timers = TimerHeap<UnownedJob>()
    private var idleThreads = 0
    private var watcherWaiting = false
    public let threads: Int

    /// `threads` threads, named `name-0`, `name-1`… (cut to 15 bytes, as Linux keeps them).
    public init(threads: Int, name: String = "task-pool") {
        precondition(threads > 0)
        self.threads = threads
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(workAvailable, &attributes)
        pthread_cond_init(timersChanged, &attributes)
        pthread_condattr_destroy(&attributes)
        for i in 0..<threads {
            var thread = pthread_t()
            let start = Start(pool: self, name: "\(name)-\(i)")
            let rc = pthread_create(&thread, nil, { context in
                let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
                _ = dxs_set_thread_name(start.name)
                start.pool.work()
                return nil
            }, Unmanaged.passRetained(start).toOpaque())
            precondition(rc == 0, "pthread_create: \(rc)")
            pthread_detach(thread)
        }
    }

    /// What a new thread needs: its pool and its name.
    private final class Start {
        let pool: ThreadPoolExecutor
        let name: String
        init(pool: ThreadPoolExecutor, name: String) {
            self.pool = pool
            self.name = name
        }
    }

    // MARK: Enqueueing

    public func enqueue(_ job: consuming ExecutorJob) {
        enqueue(UnownedJob(job))
    }

    /// Runs `job` as soon as a thread is free.
    public func enqueue(_ job: UnownedJob) {
        pthread_mutex_lock(mutex)
        ready.append(job)
        wakeOne()
        pthread_mutex_unlock(mutex)
    }

    /// Runs `job` once CLOCK_MONOTONIC reaches `deadline` (nanoseconds).
    public func enqueue(_ job: UnownedJob, atMonotonic deadline: UInt64) {
        pthread_mutex_lock(mutex)
        if timers.push(deadline, job) {
            // A new earliest deadline: the watcher's timeout is too long now, or nobody watches.
            if watcherWaiting { pthread_cond_signal(timersChanged) } else if idleThreads > 0 { pthread_cond_signal(workAvailable) }
        }
        pthread_mutex_unlock(mutex)
    }

    /// Runs `job` after `nanoseconds`.
    public func enqueue(_ job: UnownedJob, afterNanoseconds nanoseconds: UInt64) {
        let (deadline, overflow) = Self.now(CLOCK_MONOTONIC).addingReportingOverflow(nanoseconds)
        enqueue(job, atMonotonic: overflow ? .max : deadline)
    }

    /// Under `mutex`: a job is ready; an idle thread takes it, or else the timer watcher.
    private func wakeOne() {
        if idleThreads > 0 { pthread_cond_signal(workAvailable) } else if watcherWaiting { pthread_cond_signal(timersChanged) }
    }

    // MARK: Threads

    private func work() {
        let executor = asUnownedTaskExecutor()
        pthread_mutex_lock(mutex)
        while true {
            if timers.earliest != nil {
                let now = Self.now(CLOCK_MONOTONIC)
                while let job = timers.popDue(now: now) { ready.append(job) }
            }
            if readyHead < ready.count {
                let job = ready[readyHead]
                readyHead += 1
                if readyHead == ready.count { ready.removeAll(keepingCapacity: true); readyHead = 0 }
                // More queued: another thread starts on it now, not after this job.
                if readyHead < ready.count { wakeOne() }
                pthread_mutex_unlock(mutex)
                unsafe job.runSynchronously(on: executor)
                pthread_mutex_lock(mutex)
                continue
            }
            if !watcherWaiting, let deadline = timers.earliest {
                watcherWaiting = true
                var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
                pthread_cond_timedwait(timersChanged, mutex, &ts)
                watcherWaiting = false
            } else {
                idleThreads += 1
                pthread_cond_wait(workAvailable, mutex)
                idleThreads -= 1
            }
        }
    }

    static func now(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    // MARK: Installing

    private typealias Original = @convention(thin) (UnownedJob) -> Void
    private typealias Hook = @convention(thin) (UnownedJob, Original) -> Void
    private typealias DelayOriginal = @convention(thin) (UInt64, UnownedJob) -> Void
    private typealias DelayHook = @convention(thin) (UInt64, UnownedJob, DelayOriginal) -> Void
    private typealias DeadlineOriginal = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob) -> Void
    private typealias DeadlineHook = @convention(thin) (Int64, Int64, Int64, Int64, Int32, UnownedJob, DeadlineOriginal) -> Void

    /// Makes `global` the executor of every task that has no other (the runtime's
    /// `swift_task_enqueueGlobal*` hooks): `Task {}`, nonisolated async functions, `Task.sleep`.
    /// Call it first thing in `main`, before any task is created; the main actor stays on
    /// the main queue.
    public static func installAsGlobalExecutor() {
        _ = global
        let hook: Hook = { job, _ in ThreadPoolExecutor.global.enqueue(job) }
        let delayHook: DelayHook = { delay, job, _ in ThreadPoolExecutor.global.enqueue(job, afterNanoseconds: delay) }
        let deadlineHook: DeadlineHook = { seconds, nanoseconds, _, _, clock, job, _ in
            ThreadPoolExecutor.global.enqueue(job, atMonotonic: ThreadPoolExecutor.monotonicDeadline(seconds: seconds, nanoseconds: nanoseconds, clock: clock))
        }
        swift_task_enqueueGlobal_hook = unsafeBitCast(hook, to: UnsafeMutableRawPointer?.self)
        swift_task_enqueueGlobalWithDelay_hook = unsafeBitCast(delayHook, to: UnsafeMutableRawPointer?.self)
        swift_task_enqueueGlobalWithDeadline_hook = unsafeBitCast(deadlineHook, to: UnsafeMutableRawPointer?.self)
    }

    /// A deadline on one of Swift's clocks as a CLOCK_MONOTONIC time. The runtime's clock ids
    /// (swift_clock_id): 1 is ContinuousClock (CLOCK_BOOTTIME on Linux), 2 SuspendingClock
    /// (CLOCK_MONOTONIC).
    static func monotonicDeadline(seconds: Int64, nanoseconds: Int64, clock: Int32) -> UInt64 {
        let clockNow = now(clock == 1 ? CLOCK_BOOTTIME : CLOCK_MONOTONIC)
        let monotonicNow = now(CLOCK_MONOTONIC)
        let (scaled, o1) = UInt64(max(0, seconds)).multipliedReportingOverflow(by: 1_000_000_000)
        let (target, o2) = scaled.addingReportingOverflow(UInt64(max(0, nanoseconds)))
        if o1 || o2 { return .max }
        guard target > clockNow else { return monotonicNow }
        let (sum, o3) = monotonicNow.addingReportingOverflow(target - clockNow)
        return o3 ? .max : sum
    }
}

/// What waits for a deadline: a binary min-heap on (deadline, arrival), so entries with the
/// same deadline come out in the order they went in.
struct TimerHeap<Payload> {
    private struct Entry { var deadline: UInt64; var sequence: UInt64; var payload: Payload }
    private var entries: [Entry] = []
    private var sequence: UInt64 = 0

    var earliest: UInt64? { entries.first?.deadline }
    var count: Int { entries.count }

    /// Adds an entry; true when it is now the earliest.
    @discardableResult
    mutating func push(_ deadline: UInt64, _ payload: Payload) -> Bool {
        sequence += 1
        entries.append(Entry(deadline: deadline, sequence: sequence, payload: payload))
        var i = entries.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(entries[i], entries[parent]) else { break }
            entries.swapAt(i, parent)
            i = parent
        }
        return i == 0
    }

    /// The earliest entry if its deadline is at or before `now`.
    mutating func popDue(now: UInt64) -> Payload? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < entries.count, Self.less(entries[l], entries[m]) { m = l }
                if r < entries.count, Self.less(entries[r], entries[m]) { m = r }
                if m == i { break }
                entries.swapAt(i, m)
                i = m
            }
        }
        return first.payload
    }

    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline != b.deadline ? a.deadline < b.deadline : a.sequence < b.sequence
    }
}

/// `Task.sleep` on a thread of the pool: Swift 6.3 asks the running executor for these (and
/// only otherwise falls back to Dispatch's `dispatch_after`, which bypasses the runtime's
/// global-executor hooks and starts Dispatch's pool: measured with uprobes in the testbed).
/// SPI of the concurrency library (ExperimentalScheduling), for want of a public one.
@_spi(ExperimentalScheduling) extension ThreadPoolExecutor: SchedulingExecutor {
    public func enqueue<C: Clock>(_ job: consuming ExecutorJob, after delay: C.Duration, tolerance: C.Duration?, clock: C) {
        enqueue(UnownedJob(job), afterNanoseconds: Self.nanoseconds(delay))
    }

    public func enqueue<C: Clock>(_ job: consuming ExecutorJob, at instant: C.Instant, tolerance: C.Duration?, clock: C) {
        enqueue(UnownedJob(job), afterNanoseconds: Self.nanoseconds(clock.now.duration(to: instant)))
    }

    /// A clock's duration in nanoseconds (Swift's clocks count in `Duration`); negative is 0.
    static func nanoseconds<D: DurationProtocol>(_ d: D) -> UInt64 {
        guard let d = d as? Duration else { return 0 }
        let (seconds, attoseconds) = d.components
        guard seconds >= 0 else { return 0 }
        let (ns, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : ns &+ UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}
