#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Foundation
import SystemPackage

/// The daemon's SIGINT, SIGTERM and SIGHUP: a handler (`dxs_signal_to_pipe`) writes the
/// signal's number to a pipe, and a thread of its own reads it and calls `handle`, so no work
/// runs in a signal handler, whichever thread the signal interrupted.
///
/// Not Dispatch's signal sources: activating one starts Dispatch's worker pool, and with it
/// that pool's timer, which wakes the process every second for as long as it runs.
enum SignalPipe {
    static func start(_ signals: [Int32], handle: @escaping @Sendable (Int32) -> Void) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SystemCallFailure("pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // The handler must never block: a full pipe already holds a signal to handle.
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        for signal in signals where dxs_signal_to_pipe(signal, fds[1]) != 0 {
            throw SystemCallFailure("sigaction(\(signal))")
        }
        let readEnd = fds[0]
        let thread = Thread {
            _ = dxs_set_thread_name("signal-pipe")
            var byte: UInt8 = 0
            while true {
                let n = read(readEnd, &byte, 1)
                if n == 1 { handle(Int32(byte)) } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
        thread.start()
    }
}

/// A system call of daxshared's own that failed: which, and the errno it left.
struct SystemCallFailure: Error, CustomStringConvertible {
    let call: String
    let errno: Errno
    /// Takes the thread's errno now, right after the call.
    init(_ call: String) {
        self.call = call
        self.errno = Errno(rawValue: Glibc.errno)
    }
    var description: String { "\(call): \(errno)" }
}
