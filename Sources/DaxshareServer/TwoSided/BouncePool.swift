import DaxshareVerbs
import Synchronization

/// A connection's registered buffers for two-sided READ and WRITE: the server's RDMA moves data
/// between a chunk and the client's buffer, and `pread`/`pwrite` between the chunk and the file
/// (the kernel's DAX copy, which is machine-check safe and fails with an error, never a SIGBUS).
/// Chunks are made on demand up to `count`; a request that finds none free waits for one, so a
/// connection's two-sided memory is at most `count × chunkSize` (and a byte a chunk) however
/// many requests run. A chunk's `bytes` are one longer than `chunkSize`: use `chunkSize`.
final class BouncePool: Sendable {
    let chunkSize: Int
    let count: Int
    private let domain: ProtectionDomain
    private struct State {
        var free: [RegisteredBuffer] = []
        var made = 0
        var waiters: [CheckedContinuation<RegisteredBuffer, any Error>] = []
    }
    private let state = Mutex(State())

    init(domain: ProtectionDomain, chunkSize: Int, count: Int) {
        self.domain = domain
        self.chunkSize = chunkSize
        self.count = count
    }

    /// Runs `body` with a chunk of its own.
    func withChunk<T: Sendable>(_ body: (RegisteredBuffer) async throws -> T) async throws -> T {
        let chunk = try await acquire()
        defer { give(chunk) }
        return try await body(chunk)
    }

    /// A chunk of the caller's own, waiting for one if all are taken; it goes back with `give`.
    func acquire() async throws -> RegisteredBuffer {
        enum Next { case take(RegisteredBuffer), make, wait }
        let next = state.withLock { s -> Next in
            if let b = s.free.popLast() { return .take(b) }
            if s.made < count { s.made += 1; return .make }
            return .wait
        }
        switch next {
        case let .take(b): return b
        case .make:
            // One byte past `chunkSize`: a READ's pread takes it to learn end of file without an fstat.
            do { return try RegisteredBuffer(domain: domain, length: chunkSize + 1, access: [.localWrite]) } catch {
                state.withLock { $0.made -= 1 }
                throw error
            }
        case .wait:
            return try await withCheckedThrowingContinuation { c in
                let now = state.withLock { s -> RegisteredBuffer? in
                    if let b = s.free.popLast() { return b }
                    s.waiters.append(c)
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        }
    }

    /// Returns a chunk (from any thread: the event loop's completion handlers do).
    func give(_ chunk: RegisteredBuffer) {
        let waiter = state.withLock { s -> CheckedContinuation<RegisteredBuffer, any Error>? in
            if s.waiters.isEmpty { s.free.append(chunk); return nil }
            return s.waiters.removeFirst()
        }
        waiter?.resume(returning: chunk)
    }
}
