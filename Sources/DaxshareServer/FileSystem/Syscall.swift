import Glibc
import SystemPackage

// Linux values the C modules don't declare (they need _GNU_SOURCE).
let O_PATH: Int32 = 0o10000000

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

/// `long syscall(long number, ...)`, looked up once. Swift cannot call a C
/// variadic function, so this calls it through a fixed six-argument
/// prototype; on x86-64 and AArch64 Linux integer and pointer arguments travel
/// in the same registers either way, and glibc's syscall() only forwards them.
nonisolated(unsafe) private let rawSyscall: @convention(c) (Int, Int, Int, Int, Int, Int) -> Int = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "syscall") else {
        fatalError("libc has no syscall()")
    }
    return unsafeBitCast(symbol, to: (@convention(c) (Int, Int, Int, Int, Int, Int) -> Int).self)
}()

/// Calls a system call by number; -1 and errno on failure, as syscall(2).
func systemCall(_ number: Int, _ a: Int = 0, _ b: Int = 0, _ c: Int = 0, _ d: Int = 0, _ e: Int = 0) -> Int {
    rawSyscall(number, a, b, c, d, e)
}
