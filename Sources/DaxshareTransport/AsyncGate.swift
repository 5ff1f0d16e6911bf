import Synchronization

/// An async mutex: one holder at a time, waiters resumed in arrival order.
/// Used so the fragments of one message are never interleaved with another's.
final class AsyncGate: Sendable {
    private struct State {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func enter() async {
        // A free gate is taken without suspending: a continuation always suspends the task,
        // and resuming it is a job on its executor.
        let taken = state.withLock { s -> Bool in
            if s.held { return false }
            s.held = true
            return true
        }
        if taken { return }
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.held { s.held = true; return true }
                s.waiters.append(cont)
                return false
            }
            if now { cont.resume() }
        }
    }

    func leave() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty { s.held = false; return nil }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
