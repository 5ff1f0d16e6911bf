import Glibc
import SystemPackage

/// The errno of the call that just failed.
@inline(__always)
func currentErrno() -> Errno { Errno(rawValue: Glibc.errno) }

/// Runs a C call that reports failure as -1 plus errno, retrying it while it
/// fails with EINTR. This is the one place the module retries interrupted calls.
@inline(__always)
func retryingInterrupts<R: FixedWidthInteger & SignedInteger>(
    _ call: StaticString, _ body: () -> R
) throws(PmemError) -> R {
    while true {
        let result = body()
        if result != -1 { return result }
        let errno = currentErrno()
        if errno == .interrupted { continue }
        throw PmemError.system(call: "\(call)", errno: errno)
    }
}

extension PmemError {
    /// Wraps an `Errno` thrown by swift-system.
    static func wrapping(_ call: StaticString, _ error: any Error) -> PmemError {
        .system(call: "\(call)", errno: (error as? Errno) ?? .ioError)
    }
}
