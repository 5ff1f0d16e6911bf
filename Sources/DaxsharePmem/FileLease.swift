import CLinux
import Glibc
import SystemPackage

/// A file lease or a file delegation on one open descriptor: `fcntl(F_SETLEASE)`
/// and `F_GETLEASE`, or Linux 6.19's `F_SETDELEG` and `F_GETDELEG`; plus
/// `F_SETSIG` and `F_SETOWN_EX`, which say where breaks of either go.
///
/// Both ask the kernel to tell the holder before another process's
/// conflicting call proceeds: that call blocks until the holder downgrades or
/// releases, or until `/proc/sys/fs/lease-break-time` (45 s by default) runs
/// out. The kernel signals the descriptor's owner, which taking either sets to
/// the calling process; `LeaseBreakNotifier` turns that signal into readable
/// events. What breaks them (measured in the testbed, Linux 7.2):
///
/// - a **lease** breaks on another open (any, for a write lease) or a
///   truncate(2) — not on unlink, rename, chmod or utimes;
/// - a **delegation** breaks on all of those as well, and also when the
///   *holder itself* changes the file's metadata: its own ftruncate fails
///   with EAGAIN, and its own fsetxattr, futimens, fchmod, unlink and rename
///   block, each starting a break of its own delegation. fallocate breaks
///   neither.
///
/// A write lease or delegation needs the holder's descriptor to be the file's
/// only open one; a read one cannot be taken on a file the holder has open
/// for writing. Both need the caller to own the file or hold CAP_LEASE.
public struct FileLease: Sendable {
    /// A lease type: `F_RDLCK`, `F_WRLCK` or `F_UNLCK`.
    public enum Kind: Sendable, Equatable {
        /// Broken by an open for writing or a truncate (and, for a delegation,
        /// an unlink, rename or attribute change).
        case read
        /// Broken by any open or a truncate (and, for a delegation, an unlink,
        /// rename or attribute change).
        case write
        /// No lease.
        case none

        var rawValue: Int32 {
            switch self {
            case .read: Int32(F_RDLCK)
            case .write: Int32(F_WRLCK)
            case .none: Int32(F_UNLCK)
            }
        }

        init(rawValue: Int32) {
            switch rawValue {
            case Int32(F_RDLCK): self = .read
            case Int32(F_WRLCK): self = .write
            default: self = .none
            }
        }
    }

    /// Which kernel object the lease is.
    public enum Mechanism: String, Sendable, Equatable, CustomStringConvertible {
        /// `F_SETDELEG` (Linux 6.19): also breaks on unlink, rename and attribute changes.
        case delegation
        /// `F_SETLEASE`: breaks on open and truncate only.
        case lease

        public var description: String { rawValue }
    }

    /// The descriptor the lease belongs to (not owned: closing it drops the lease).
    public let descriptor: FileDescriptor
    /// Whether `set(_:)` and `current()` use F_SETDELEG/F_GETDELEG or F_SETLEASE/F_GETLEASE.
    public let mechanism: Mechanism

    public init(_ descriptor: FileDescriptor, mechanism: Mechanism = .lease) {
        self.descriptor = descriptor
        self.mechanism = mechanism
    }

    /// Whether the running kernel knows `F_GETDELEG` (Linux 6.19 and later):
    /// older kernels answer EINVAL. A filesystem may still refuse delegations,
    /// which `takeWrite(on:preferring:)` handles per file.
    public static let kernelHasDelegations: Bool = {
        let fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { _ = close(fd) }
        return dxs_fcntl_getdeleg(fd) != -1
    }()

    /// Takes a write delegation on `descriptor` when `preferring` is
    /// `.delegation`, falling back to a write lease where F_SETDELEG is
    /// refused with EINVAL (a kernel before 6.19, or a filesystem without
    /// delegations); with `.lease`, takes a write lease. Returns the one held.
    /// Set the break signal first (`setBreakSignal(_:)`). EAGAIN (the file is
    /// open elsewhere) is thrown, not fallen back from: a lease would meet it too.
    public static func takeWrite(
        on descriptor: FileDescriptor, preferring preferred: Mechanism = .delegation
    ) throws(PmemError) -> FileLease {
        if preferred == .delegation {
            let delegation = FileLease(descriptor, mechanism: .delegation)
            do {
                try delegation.set(.write)
                return delegation
            } catch where error.errno == .invalidArgument {
                // No delegations here: a lease catches opens and truncates at least.
            }
        }
        let lease = FileLease(descriptor, mechanism: .lease)
        try lease.set(.write)
        return lease
    }

    /// Delivers this descriptor's breaks as `signal` instead of SIGIO, with
    /// `fcntl(F_SETSIG)`. A non-zero signal makes the kernel queue one per
    /// break and fill in `si_fd`, which says whose lease broke. Set it before
    /// each take: releasing a lease resets it to 0 (in the testbed, a retaken
    /// delegation's next break came as SIGIO).
    public func setBreakSignal(_ signal: Int32) throws(PmemError) {
        _ = try retryingInterrupts("fcntl(F_SETSIG)") { dxs_fcntl_setsig(descriptor.rawValue, signal) }
    }

    /// Takes, downgrades or releases (`.none`) the lease with `fcntl(F_SETLEASE)`,
    /// or the delegation with `fcntl(F_SETDELEG)`. Releasing or downgrading is
    /// how the holder lets a blocked breaker go. EAGAIN means the file is open
    /// elsewhere in a conflicting way; EINVAL from F_SETDELEG, that the kernel
    /// or filesystem has no delegations.
    public func set(_ kind: Kind) throws(PmemError) {
        switch mechanism {
        case .lease:
            _ = try retryingInterrupts("fcntl(F_SETLEASE)") { dxs_fcntl_setlease(descriptor.rawValue, kind.rawValue) }
        case .delegation:
            _ = try retryingInterrupts("fcntl(F_SETDELEG)") { dxs_fcntl_setdeleg(descriptor.rawValue, kind.rawValue) }
        }
    }

    /// The lease held, from `fcntl(F_GETLEASE)` or `fcntl(F_GETDELEG)`. While
    /// a break is in progress the kernel reports the type the breaker needs it
    /// lowered to (`.none` or `.read`), so a held `.write` lease that now
    /// reads differently is being broken.
    public func current() throws(PmemError) -> Kind {
        switch mechanism {
        case .lease:
            Kind(rawValue: try retryingInterrupts("fcntl(F_GETLEASE)") { dxs_fcntl_getlease(descriptor.rawValue) })
        case .delegation:
            Kind(rawValue: try retryingInterrupts("fcntl(F_GETDELEG)") { dxs_fcntl_getdeleg(descriptor.rawValue) })
        }
    }

    /// Sends break signals to one thread instead of the process, with
    /// `fcntl(F_SETOWN_EX, F_OWNER_TID)`. Only that thread can then read
    /// them from a signalfd. Call after `set(_:)`, which resets the owner to
    /// the process.
    public func directBreaks(toThread thread: pid_t) throws(PmemError) {
        _ = try retryingInterrupts("fcntl(F_SETOWN_EX)") { dxs_fcntl_setown_thread(descriptor.rawValue, thread) }
    }

    /// The calling thread's kernel id, from `gettid(2)`.
    public static func currentThreadID() -> pid_t {
        dxs_gettid()
    }
}
