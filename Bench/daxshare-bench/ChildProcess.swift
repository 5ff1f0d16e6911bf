import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Children of the benchmarks (perftest, a local opener), started with posix_spawn.
///
/// A child gets an empty signal mask and default dispositions, not whatever the spawning thread
/// of this Swift process had blocked: perftest's -D duration is a SIGALRM, and inherited blocked
/// the alarm never came (every timed run ended in `timeout`).
enum ChildProcess {
    static func spawn(_ argv: [String]) throws -> pid_t {
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t(), defaults = sigset_t()
        sigemptyset(&empty)
        sigemptyset(&defaults)
        for sig in [SIGALRM, SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP, SIGUSR1, SIGUSR2] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], nil, &attr, &cArgs, environ)
        guard rc == 0 else { throw BenchFailure("posix_spawn \(argv[0]): \(rc)") }
        return pid
    }

    /// waitpid, retried on EINTR; the raw wait status.
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}
