import Glibc
import SystemPackage

/// A file lease on one open descriptor: `fcntl(F_SETLEASE)`, `F_GETLEASE`,
/// `F_SETSIG`.
///
/// A lease asks the kernel to tell the holder before another open (or a
/// truncate) of the file proceeds: the other process blocks in open(2) until
/// the holder downgrades or releases the lease, or until
/// `/proc/sys/fs/lease-break-time` (45 s by default) runs out. The kernel
/// signals the descriptor's owner, which `F_SETLEASE` sets to the calling
/// process; `LeaseBreakNotifier` turns that signal into readable events.
///
/// A write lease needs the holder's descriptor to be the file's only open
/// one; a read lease cannot be taken on a file the holder has open for
/// writing. Both need the caller to own the file or hold CAP_LEASE.
public struct FileLease: Sendable {
    /// A lease type: `F_RDLCK`, `F_WRLCK` or `F_UNLCK`.
    public enum Kind: Sendable, Equatable {
        /// Broken by an open for writing or a truncate.
        case read
        /// Broken by any open or a truncate.
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
    }

    /// The descriptor the lease belongs to (not owned: closing it drops the lease).
    public let descriptor: FileDescriptor

    public init(_ descriptor: FileDescriptor) {
        self.descriptor = descriptor
    }

    /// Delivers this descriptor's lease breaks as `signal` instead of SIGIO,
    /// with `fcntl(F_SETSIG)`. A non-zero signal makes the kernel queue one
    /// per break and fill in `si_fd`, which says whose lease broke. Set it
    /// before taking the lease.
    public func setBreakSignal(_ signal: Int32) throws(PmemError) {
        _ = try retryingInterrupts("fcntl(F_SETSIG)") { fcntl(descriptor.rawValue, F_SETSIG, signal) }
    }

    /// Takes, downgrades or releases (`.none`) the lease with `fcntl(F_SETLEASE)`.
    /// Releasing or downgrading is how the holder lets a blocked opener go.
    /// EAGAIN means the file is open elsewhere in a conflicting way.
    public func set(_ kind: Kind) throws(PmemError) {
        _ = try retryingInterrupts("fcntl(F_SETLEASE)") {
            fcntl(descriptor.rawValue, F_SETLEASE, kind.rawValue)
        }
    }

    /// The lease held, from `fcntl(F_GETLEASE)`. While a break is in progress
    /// the kernel reports the type the breaker needs it lowered to (`.none`
    /// or `.read`), so a held `.write` lease that now reads differently is
    /// being broken.
    public func current() throws(PmemError) -> Kind {
        let raw = try retryingInterrupts("fcntl(F_GETLEASE)") { fcntl(descriptor.rawValue, F_GETLEASE) }
        switch raw {
        case Int32(F_RDLCK): return .read
        case Int32(F_WRLCK): return .write
        default: return .none
        }
    }

    /// Sends break signals to one thread instead of the process, with
    /// `fcntl(F_SETOWN_EX, F_OWNER_TID)`. Only that thread can then read
    /// them from a signalfd. Call after `set(_:)`, which resets the owner to
    /// the process. Meant for programs that cannot block the signal in every
    /// thread (a test runner); the server uses the process-wide default.
    public func directBreaks(toThread thread: pid_t) throws(PmemError) {
        var owner = FileOwnerEx(type: F_OWNER_TID, pid: thread)
        _ = try retryingInterrupts("fcntl(F_SETOWN_EX)") {
            withUnsafeMutablePointer(to: &owner) {
                fcntl(descriptor.rawValue, F_SETOWN_EX, UnsafeMutableRawPointer($0))
            }
        }
    }

    /// The calling thread's kernel id, from `gettid(2)`.
    public static func currentThreadID() -> pid_t {
        sys_gettid()
    }
}
