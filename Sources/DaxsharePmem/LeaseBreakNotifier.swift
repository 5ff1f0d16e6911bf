import CLinux
import Glibc
import Synchronization
import SystemPackage

/// Lease-break notifications read from a `signalfd(2)`, so no signal handler
/// ever runs: the signal stays blocked and is dequeued as data.
///
/// **Startup requirement.** A blocked signal is only safe if *every* thread
/// blocks it; a thread that doesn't would take the default action (an RT
/// signal terminates the process). Threads inherit the mask of the thread
/// that creates them, so the server must call `blockSignal()` first thing in
/// `main`, before any thread starts (the Swift concurrency pool, Dispatch,
/// the verbs event loop). Then the kernel leaves each break pending for the
/// process, and any thread can read it here, e.g. from an epoll loop that
/// watches `descriptor`. A thread that unblocks everything later (libdispatch's
/// `dispatch_main` does, on the main thread) defeats that: `ignoreWhereUnblocked()`
/// makes the signal harmless there.
///
/// Each descriptor that takes a lease must name the same signal with
/// `FileLease.setBreakSignal(_:)`; the kernel then reports which descriptor's
/// lease broke.
// @unchecked: the descriptor is immutable and `closed` is a Mutex.
public final class LeaseBreakNotifier: @unchecked Sendable {
    /// SIGRTMIN+1: a real-time signal, so breaks of several leases queue
    /// instead of merging, and one nothing else in the server uses.
    public static var defaultSignal: Int32 { __libc_current_sigrtmin() + 1 }

    /// The signal this notifier reads.
    public let signal: Int32
    /// The signalfd: readable (EPOLLIN) when breaks are pending. Non-blocking,
    /// close-on-exec. Valid until `close()`.
    public let descriptor: FileDescriptor

    private let closed = Mutex(false)

    /// Blocks `signal` in the calling thread with `pthread_sigmask(SIG_BLOCK)`.
    /// Called from `main` before any thread exists, that covers every thread.
    public static func blockSignal(_ signal: Int32 = defaultSignal) throws(PmemError) {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        let result = pthread_sigmask(SIG_BLOCK, &set, nil)
        if result != 0 { throw .system(call: "pthread_sigmask", errno: Errno(rawValue: result)) }
    }

    /// Sets `signal`'s disposition to SIG_IGN with `sigaction(2)`. The kernel never ignores a
    /// signal the receiving thread blocks, so the thread that reads it from its signalfd still
    /// gets every break sent to it; a process-directed one that finds a thread with the signal
    /// unblocked is dropped there instead of terminating the process. Such a thread exists even
    /// when `blockSignal()` ran first in `main`: libdispatch's `dispatch_main`, which runs
    /// Swift's async main on Linux, parks the main thread in `sigsuspend` with an empty mask
    /// (seen in the testbed: SigBlk 0, wchan sigsuspend). Call at start-up, before any lease:
    /// setting SIG_IGN discards instances already pending.
    public static func ignoreWhereUnblocked(_ signal: Int32 = defaultSignal) throws(PmemError) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = SIG_IGN
        sigemptyset(&action.sa_mask)
        if sigaction(signal, &action, nil) != 0 { throw .system(call: "sigaction(SIG_IGN)", errno: currentErrno()) }
    }

    /// Opens a signalfd for `signal` with `signalfd(-1, {signal}, SFD_NONBLOCK | SFD_CLOEXEC)`.
    /// The signal must already be blocked (see `blockSignal`).
    public init(signal: Int32 = defaultSignal) throws(PmemError) {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        let fd = try retryingInterrupts("signalfd") {
            signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        }
        self.signal = signal
        self.descriptor = FileDescriptor(rawValue: fd)
    }

    deinit {
        close()
    }

    /// Closes the signalfd. Idempotent.
    public func close() {
        let wasClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        if !wasClosed { try? descriptor.close() }
    }

    /// Reads every pending break (`read(2)` of `signalfd_siginfo` records until
    /// EAGAIN) and returns the descriptors whose leases are being broken, each
    /// once, in arrival order. Empty when nothing is pending.
    /// Signals not raised by a lease break (e.g. sent with kill) are dropped.
    public func readEvents() throws(PmemError) -> [FileDescriptor] {
        var descriptors: [FileDescriptor] = []
        var record = signalfd_siginfo()
        let size = MemoryLayout<signalfd_siginfo>.size
        while true {
            let count: Int
            do {
                count = try withUnsafeMutableBytes(of: &record) { buffer throws(PmemError) in
                    try retryingInterrupts("read(signalfd)") { read(descriptor.rawValue, buffer.baseAddress, size) }
                }
            } catch where error.errno == .wouldBlock {
                break  // drained
            }
            guard count == size else { break }
            // Kernel-raised SIGIO-style signals carry a positive POLL_* code;
            // kill and sigqueue use SI_USER (0) and negative codes.
            if record.ssi_signo == UInt32(signal), record.ssi_code > 0 {
                let fd = FileDescriptor(rawValue: record.ssi_fd)
                if !descriptors.contains(fd) { descriptors.append(fd) }
            }
        }
        return descriptors
    }
}
