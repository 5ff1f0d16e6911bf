#if canImport(Glibc)
import Glibc
#endif
@testable import DaxshareExecutor
import Synchronization
import Testing

@Suite struct ThreadPoolExecutorTests {
    @Test func timersComeOutByDeadlineThenArrival() {
        var heap = TimerHeap<Int>()
        let earliest = [heap.push(50, 1), heap.push(70, 2), heap.push(10, 3), heap.push(50, 4), heap.push(10, 5)]
        #expect(earliest == [true, false, true, false, false])
        #expect(heap.earliest == 10)
        let early = heap.popDue(now: 9)
        #expect(early == nil)
        var out: [Int] = []
        while let p = heap.popDue(now: 60) { out.append(p) }
        #expect(out == [3, 5, 1, 4])
        #expect(heap.count == 1 && heap.earliest == 70)
        #expect(heap.popDue(now: 70) == 2)
        for d in (0..<500).map({ _ in UInt64.random(in: 0...1000) }) { heap.push(d, Int(d)) }
        var last = -1
        while let p = heap.popDue(now: .max) {
            #expect(p >= last)
            last = p
        }
        #expect(heap.count == 0 && heap.earliest == nil)
    }

    @Test func deadlinesOnSwiftsClocksBecomeMonotonicTimes() {
        let now = ThreadPoolExecutor.now(CLOCK_MONOTONIC)
        // SuspendingClock (2) is CLOCK_MONOTONIC: 50 ms ahead stays 50 ms ahead.
        let target = now + 50_000_000
        let d = ThreadPoolExecutor.monotonicDeadline(seconds: Int64(target / 1_000_000_000), nanoseconds: Int64(target % 1_000_000_000), clock: 2)
        #expect(d >= target && d < target + 20_000_000)
        // ContinuousClock (1) is CLOCK_BOOTTIME: 50 ms ahead of it is 50 ms ahead here too.
        let boot = ThreadPoolExecutor.now(CLOCK_BOOTTIME) + 50_000_000
        let b = ThreadPoolExecutor.monotonicDeadline(seconds: Int64(boot / 1_000_000_000), nanoseconds: Int64(boot % 1_000_000_000), clock: 1)
        #expect(b >= now + 50_000_000 && b < now + 70_000_000)
        // A past deadline is now; one past the end of time is the end of time.
        #expect(ThreadPoolExecutor.monotonicDeadline(seconds: 0, nanoseconds: 0, clock: 2) <= ThreadPoolExecutor.now(CLOCK_MONOTONIC))
        #expect(ThreadPoolExecutor.monotonicDeadline(seconds: .max, nanoseconds: 999_999_999, clock: 2) == .max)
    }

    @Test func tasksThatPreferThePoolRunOnItsThreadsConcurrently() async {
        let pool = ThreadPoolExecutor(threads: 3)
        let seen = Seen()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<30 {
                group.addTask(executorPreference: pool) {
                    seen.threads.withLock { _ = $0.insert(UInt(pthread_self())) }
                    let now = seen.running.add(1, ordering: .relaxed).newValue
                    seen.peak.max(now, ordering: .relaxed)
                    usleep(2_000)  // holds its thread, as blocking work would
                    seen.running.subtract(1, ordering: .relaxed)
                }
            }
        }
        let used = seen.threads.withLock { $0 }
        #expect(used.count <= 3)
        #expect(seen.peak.load(ordering: .relaxed) >= 2)
        #expect(!used.contains(UInt(pthread_self())))
    }

    /// A timer runs its job no earlier than its deadline, and other jobs run meanwhile.
    @Test func aDelayedJobRunsAtItsDeadline() async {
        let pool = ThreadPoolExecutor(threads: 2)
        let capture = CapturingExecutor(then: pool)
        let started = ThreadPoolExecutor.now(CLOCK_MONOTONIC)
        let seen = Seen()
        let task = Task(executorPreference: capture) {
            seen.ranAt.store(ThreadPoolExecutor.now(CLOCK_MONOTONIC), ordering: .relaxed)
        }
        let job = capture.take()
        pool.enqueue(job, afterNanoseconds: 60_000_000)
        // Meanwhile an immediate job is not held up by the timer (no timing asserted: a loaded
        // host may take longer than the delay to get here).
        await withTaskGroup(of: Void.self) { group in
            group.addTask(executorPreference: pool) {}
        }
        await task.value
        #expect(seen.ranAt.load(ordering: .relaxed) >= started + 60_000_000)
    }
}

/// What the tasks under test saw.
private final class Seen: Sendable {
    let threads = Mutex<Set<UInt>>([])
    let running = Atomic<Int>(0)
    let peak = Atomic<Int>(0)
    let ranAt = Atomic<UInt64>(0)
}

/// Keeps the first job enqueued on it instead of running it, to hand it to the pool's timers;
/// later ones (the task hopping back to its preferred executor) go to the pool at once.
private final class CapturingExecutor: TaskExecutor {
    private let job = Mutex<UnownedJob?>(nil)
    private let captured = Atomic<Bool>(false)
    private let pool: ThreadPoolExecutor
    init(then pool: ThreadPoolExecutor) { self.pool = pool }
    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        if captured.exchange(true, ordering: .acquiringAndReleasing) {
            pool.enqueue(unowned)
        } else {
            self.job.withLock { $0 = unowned }
        }
    }
    func take() -> UnownedJob {
        while true {
            if let j = job.withLock({ j in defer { j = nil }; return j }) { return j }
            usleep(1_000)
        }
    }
}
