import Synchronization

/// The large two-sided READs the NIC is taking from one file's mapping (`NICRead`), counted
/// so that a size change can wait for them before it cuts pages from under them, and who
/// waits: a waiter is resumed when the count falls to zero (no polling), or at its deadline.
final class NICReads: Sendable {
    /// Read with sequentially consistent ordering against `SharedFile`'s blocking count: a READ
    /// counts itself in before looking at that, a size change raises that before looking here,
    /// so one of the two sees the other.
    private let count = Atomic<Int>(0)
    private struct Waiters {
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waiters whose deadline came before they were queued.
        var expired: Set<UInt64> = []
        var last: UInt64 = 0
    }
    private let waiters = Mutex(Waiters())

    var inFlight: Int { count.load(ordering: .sequentiallyConsistent) }

    func begin() { count.add(1, ordering: .sequentiallyConsistent) }

    func end() {
        guard count.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 else { return }
        let resumed = waiters.withLock { w in
            defer { w.waiting.removeAll() }
            return Array(w.waiting.values)
        }
        resumed.forEach { $0.resume() }
    }

    /// Returns once no READ is in flight, or after `timeout`, suspending meanwhile (the event
    /// loop running the caller goes on polling the completions that end those READs).
    func drained(within timeout: Duration) async {
        guard inFlight > 0 else { return }
        let id = waiters.withLock { w in
            w.last += 1
            return w.last
        }
        let deadline = Task {
            try? await Task.sleep(for: timeout)
            expire(id)
        }
        defer { deadline.cancel() }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = waiters.withLock { w -> Bool in
                // Checked under the lock `end` takes after its count reaches zero: either it
                // sees this waiter queued, or this sees the count at zero.
                if w.expired.remove(id) != nil || inFlight == 0 { return true }
                w.waiting[id] = c
                return false
            }
            if now { c.resume() }
        }
    }

    private func expire(_ id: UInt64) {
        let c = waiters.withLock { w -> CheckedContinuation<Void, Never>? in
            if let c = w.waiting.removeValue(forKey: id) { return c }
            w.expired.insert(id)
            return nil
        }
        c?.resume()
    }
}
