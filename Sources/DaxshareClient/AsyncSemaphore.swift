import Synchronization

/// A counting semaphore for async code: bounds how many requests are in flight at once.
///
/// Two bounds use it: the server's `maxOutstandingRequests` (more would be answered TOO_MANY)
/// and the data path's queue depth. Waiters are served in arrival order. There is no
/// cancellation: a request that has been sent must see its response before its buffers can
/// be reused, so nothing here gives up early.
final class AsyncSemaphore: Sendable {
    private struct State {
        var permits: Int
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(permits: Int) {
        precondition(permits >= 1)
        state = Mutex(State(permits: permits, available: permits))
    }

    var permits: Int { state.withLock { $0.permits } }

    func acquire() async {
        // A free permit without suspending: a continuation always suspends the task.
        let now = state.withLock { s -> Bool in
            guard s.available > 0 && s.waiters.isEmpty else { return false }
            s.available -= 1
            return true
        }
        if now { return }
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.available > 0 && s.waiters.isEmpty {
                    s.available -= 1
                    return true
                }
                s.waiters.append(k)
                return false
            }
            if now { k.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if !s.waiters.isEmpty && s.available >= 0 { return s.waiters.removeFirst() }
            s.available += 1
            return nil
        }
        next?.resume()
    }

    /// Changes the number of permits (after NEGOTIATE tells the real limit). Holders keep
    /// theirs; when shrinking, new acquirers wait until enough have been released.
    func setPermits(_ n: Int) {
        precondition(n >= 1)
        let wake = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.available += n - s.permits
            s.permits = n
            var wake: [CheckedContinuation<Void, Never>] = []
            while s.available > 0 && !s.waiters.isEmpty {
                s.available -= 1
                wake.append(s.waiters.removeFirst())
            }
            return wake
        }
        wake.forEach { $0.resume() }
    }
}
