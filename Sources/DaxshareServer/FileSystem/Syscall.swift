import Glibc
import SystemPackage

/// Runs a C call that reports failure as -1 plus errno, retrying it while it
/// fails with EINTR: the one place the file-system code retries interruptions.
@inline(__always)
func retryingInterrupts<R: FixedWidthInteger & SignedInteger>(_ body: () -> R) throws(Errno) -> R {
    while true {
        let result = body()
        if result != -1 { return result }
        let errno = Errno(rawValue: Glibc.errno)
        if errno != .interrupted { throw errno }
    }
}
