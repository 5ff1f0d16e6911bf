import DaxshareVerbs
#if canImport(Glibc)
import Glibc
#endif

/// A task executor for callers that start I/O from threads of their own (FUSE's reader
/// threads): a task started inside `startingInline` runs on the starting thread, right after
/// the body returns, until it first suspends; from then on it runs on the event loop.
///
/// A one-sided read or write's first stretch is short and ends where its work request is
/// posted (`ibv_post_send` may be called from any thread); the completion resumes it on the
/// loop that polls it, which replies. Started with the loop as preference instead, the task
/// would wait for the loop to wake (an eventfd write, a context switch) before posting.
// @unchecked: each thread's pending jobs are reached through its own pthread-specific slot
// and touched only by that thread; the loop is thread-safe.
public final class InlineStartExecutor: TaskExecutor, @unchecked Sendable {
    private let loop: EventLoop
    private let key: pthread_key_t

    /// The jobs a thread's `startingInline` body enqueued, run when it returns.
    private final class Pending {
        var active = false
        var jobs: [UnownedJob] = []
    }

    public init(loop: EventLoop) {
        self.loop = loop
        var key = pthread_key_t()
        // A thread's Pending is released with the thread.
        pthread_key_create(&key) { p in if let p { Unmanaged<AnyObject>.fromOpaque(p).release() } }
        self.key = key
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if let p = pthread_getspecific(key) {
            let pending = Unmanaged<Pending>.fromOpaque(p).takeUnretainedValue()
            if pending.active {
                pending.jobs.append(job)
                return
            }
        }
        loop.execute { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }

    /// Runs `body`; then, on this thread, what the tasks it started (with this executor as
    /// preference) do until they suspend, and anything else enqueued here meanwhile.
    public func startingInline(_ body: () -> Void) {
        let pending: Pending
        if let p = pthread_getspecific(key) {
            pending = Unmanaged<Pending>.fromOpaque(p).takeUnretainedValue()
        } else {
            pending = Pending()
            pthread_setspecific(key, Unmanaged.passRetained(pending as AnyObject).toOpaque())
        }
        precondition(!pending.active, "startingInline is not reentrant")
        pending.active = true
        body()
        var i = 0
        while i < pending.jobs.count {
            let job = pending.jobs[i]
            i += 1
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
        pending.jobs.removeAll(keepingCapacity: true)
        pending.active = false
    }
}
