import DaxsharePmem
import Foundation
import Glibc
import Logging
import SystemPackage

/// The one thread that receives lease-break signals. Leases direct their
/// breaks to this thread (`F_SETOWN_EX`, `F_OWNER_TID`), which keeps the
/// signal blocked and reads it from a signalfd: no signal handler ever runs,
/// and no other thread of the process ever sees the signal.
final class LeaseWatcher: @unchecked Sendable {
    let signal = LeaseBreakNotifier.defaultSignal
    private(set) var threadID: pid_t = 0
    private let logger: Logger

    /// Starts the thread; `onBreak` runs on it with the descriptor whose lease broke.
    init(logger: Logger, onBreak: @escaping @Sendable (FileDescriptor) -> Void) throws {
        self.logger = logger
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var setup: Result<(pid_t, LeaseBreakNotifier), any Error>?
        let signal = self.signal
        let thread = Thread {
            do {
                try LeaseBreakNotifier.blockSignal(signal)
                let notifier = try LeaseBreakNotifier(signal: signal)
                setup = .success((FileLease.currentThreadID(), notifier))
                ready.signal()
                var pfd = pollfd(fd: notifier.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
                while true {
                    if poll(&pfd, 1, -1) < 0 { continue }
                    guard let fds = try? notifier.readEvents() else { continue }
                    for fd in fds { onBreak(fd) }
                }
            } catch {
                setup = .failure(error)
                ready.signal()
            }
        }
        thread.name = "daxshare-leases"
        thread.start()
        ready.wait()
        switch setup! {
        case let .success((tid, _)): threadID = tid
        case let .failure(error): throw error
        }
    }

    /// Takes a write lease on `descriptor`, with breaks sent to this thread.
    func lease(_ descriptor: FileDescriptor) throws {
        let lease = FileLease(descriptor)
        try lease.setBreakSignal(signal)
        try lease.set(.write)
        try lease.directBreaks(toThread: threadID)
    }

    /// Releases the lease, letting a blocked opener proceed.
    func release(_ descriptor: FileDescriptor) {
        do { try FileLease(descriptor).set(.none) } catch {
            logger.warning("releasing a lease failed: \(error)")
        }
    }
}
