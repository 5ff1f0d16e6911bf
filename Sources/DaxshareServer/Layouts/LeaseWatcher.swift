import CLinux
import DaxsharePmem
import Foundation
import Glibc
import Logging
import Synchronization
import SystemPackage

/// The one thread that receives lease-break signals. Leases direct their
/// breaks to this thread (`F_SETOWN_EX`, `F_OWNER_TID`), which reads the
/// signal from a signalfd: no signal handler ever runs. daxshared blocks the
/// signal in its main thread before any other thread exists, and ignores it
/// where it is not blocked, so a break sent to the process before `F_SETOWN_EX`
/// cannot kill it; `lease(_:)` finds such a break from the lease's state.
///
/// Which mechanism it takes (`FileLease.Mechanism`): `preferring: .delegation`
/// takes F_SETDELEG where the kernel has it (Linux 6.19), which also breaks on
/// a local unlink, rename or attribute change, and falls back to F_SETLEASE.
/// The server prefers `.delegation` (`--lease-kind`). A delegation also breaks on
/// the holder's own metadata changes (measured, Linux 7.2): its ftruncate fails
/// with EAGAIN, and its fsetxattr, fremovexattr, futimens, fchmod, unlink and
/// rename block until the delegation is released, each starting a break of it.
/// So the server's own such changes go through `FileLayouts.ownChange`, which
/// releases the delegation around them and takes it again after (fallocate is
/// safe: it breaks neither).
// @unchecked: `threadID` is written only in init, before the instance is shared.
final class LeaseWatcher: @unchecked Sendable {
    let signal = LeaseBreakNotifier.defaultSignal
    /// What `lease(_:)` asks for first.
    let preferred: FileLease.Mechanism
    private(set) var threadID: pid_t = 0
    private let logger: Logger
    private let onBreak: @Sendable (FileDescriptor) -> Void
    /// What each leased descriptor holds, so `release` undoes the same kind.
    private let held = Mutex<[Int32: FileLease.Mechanism]>([:])

    /// Starts the thread; `onBreak` runs on it with the descriptor whose lease broke.
    init(logger: Logger, preferring preferred: FileLease.Mechanism = .lease,
         onBreak: @escaping @Sendable (FileDescriptor) -> Void) throws {
        self.logger = logger
        self.preferred = preferred
        self.onBreak = onBreak
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var setup: Result<(pid_t, LeaseBreakNotifier), any Error>?
        let signal = self.signal
        let thread = Thread {
            _ = dxs_set_thread_name("lease-breaks")
            do {
                try LeaseBreakNotifier.blockSignal(signal)  // already blocked in daxshared; not in every host
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
        logger.notice("layouts live under \(Self.describe(preferred))")
    }

    /// What the server will take, for the start-up log.
    static func describe(_ preferred: FileLease.Mechanism) -> String {
        let kernel = FileLease.kernelHasDelegations
        switch (preferred, kernel) {
        case (.delegation, true):
            return "file delegations (F_SETDELEG): a local open, truncate, unlink, rename or attribute change recalls them"
        case (.delegation, false):
            return "file leases (F_SETLEASE; this kernel has no F_SETDELEG): a local open or truncate recalls them, a local unlink or rename does not"
        case (.lease, _):
            return "file leases (F_SETLEASE\(kernel ? ", chosen over F_SETDELEG" : "")): a local open or truncate recalls them, a local unlink or rename does not"
        }
    }

    /// Takes a write lease (or delegation, see `preferred`) on `descriptor`,
    /// with breaks sent to this thread, and returns which it took.
    @discardableResult
    func lease(_ descriptor: FileDescriptor) throws -> FileLease.Mechanism {
        try FileLease(descriptor).setBreakSignal(signal)
        let lease = try FileLease.takeWrite(on: descriptor, preferring: preferred)
        do { try lease.directBreaks(toThread: threadID) } catch {
            try? lease.set(.none)  // a lease nobody would hear break must not stay
            throw error
        }
        held.withLock { $0[descriptor.rawValue] = lease.mechanism }
        // A break between the take and F_SETOWN_EX went to the process, not this thread's
        // signalfd: the lease's state still shows it.
        if (try? lease.current()) != .write {
            logger.notice("a lease broke before its breaks were redirected; handling it now")
            onBreak(descriptor)
        }
        return lease.mechanism
    }

    /// What `descriptor` holds now, if anything.
    func mechanism(of descriptor: FileDescriptor) -> FileLease.Mechanism? {
        held.withLock { $0[descriptor.rawValue] }
    }

    /// Releases the lease, letting a blocked opener proceed.
    func release(_ descriptor: FileDescriptor) {
        let mechanism = held.withLock { $0.removeValue(forKey: descriptor.rawValue) } ?? .lease
        do { try FileLease(descriptor, mechanism: mechanism).set(.none) } catch {
            logger.warning("releasing a \(mechanism) failed: \(error)")
        }
    }
}
