import DaxshareVerbs
import Synchronization

/// Which slots of a fixed set are free, and who waits for one: a slot freed while someone
/// waits goes straight to the oldest waiter. Plain value; its owner keeps it under a lock.
struct SlotPool<Waiter> {
    private var free: [Int]
    private var waiters: [Waiter] = []
    let count: Int

    init(count: Int) {
        self.count = count
        free = Array((0..<count).reversed())
    }

    var freeCount: Int { free.count }
    var waiting: Int { waiters.count }

    /// A free slot if one is free and nobody waits for one; nothing is queued.
    mutating func takeFree() -> Int? {
        waiters.isEmpty ? free.popLast() : nil
    }

    /// A free slot, or nil after queueing `waiter` (it is handed a slot by a later `release`).
    mutating func acquire(orQueue waiter: Waiter) -> Int? {
        if let slot = takeFree() { return slot }
        waiters.append(waiter)
        return nil
    }

    /// Returns `slot`; if someone waits, it is theirs now and they are returned to be woken.
    mutating func release(_ slot: Int) -> Waiter? {
        precondition((0..<count).contains(slot) && !free.contains(slot), "slot \(slot) released twice")
        if waiters.isEmpty {
            free.append(slot)
            return nil
        }
        return waiters.removeFirst()
    }

    /// Removes every waiter (to fail them).
    mutating func removeWaiters() -> [Waiter] {
        defer { waiters.removeAll() }
        return waiters
    }
}

/// Registered send buffers, one message of `slotSize` each, so several SENDs can be in
/// flight on one connection: a slot is taken to post a message and comes back when that
/// SEND completes.
final class SendRing: Sendable {
    let buffer: RegisteredBuffer
    let slotSize: Int
    private struct State {
        var pool: SlotPool<CheckedContinuation<Int, any Error>>
        var closed: TransportError?
        /// Slots whose SEND is posted and not yet complete.
        var posted: Set<Int> = []
        var peak = 0
    }
    private let state: Mutex<State>

    init(domain: ProtectionDomain, slots: Int, slotSize: Int) throws(VerbsError) {
        buffer = try RegisteredBuffer(domain: domain, length: slots * slotSize, access: [.localWrite])
        self.slotSize = slotSize
        state = Mutex(State(pool: SlotPool(count: slots), closed: nil))
    }

    var slots: Int { state.withLock { $0.pool.count } }
    /// SENDs posted and not yet completed.
    var inFlight: Int { state.withLock { $0.posted.count } }
    /// The most SENDs ever in flight at once.
    var peak: Int { state.withLock { $0.peak } }

    /// A free slot, waiting for a SEND to complete if there is none.
    func acquire() async throws -> Int {
        // A free slot without suspending (see `AsyncGate.enter`).
        let now = try state.withLock { s throws(TransportError) -> Int? in
            if let reason = s.closed { throw reason }
            return s.pool.takeFree()
        }
        if let now { return now }
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Int, any Error>) in
            let now = state.withLock { s -> Result<Int, TransportError>? in
                if let reason = s.closed { return .failure(reason) }
                return s.pool.acquire(orQueue: cont).map { .success($0) }
            }
            if let now { cont.resume(with: now) }
        }
    }

    /// Call right before posting the slot's SEND.
    func posting(_ slot: Int) {
        state.withLock { s in
            s.posted.insert(slot)
            s.peak = max(s.peak, s.posted.count)
        }
    }

    /// Gives a slot back: its SEND completed, or it was never posted.
    func release(_ slot: Int) {
        state.withLock { s in
            s.posted.remove(slot)
            return s.pool.release(slot)
        }?.resume(returning: slot)
    }

    /// Fails waiters now and acquirers from now on.
    func close(_ reason: TransportError) {
        let waiters = state.withLock { s in
            if s.closed == nil { s.closed = reason }
            return s.pool.removeWaiters()
        }
        waiters.forEach { $0.resume(throwing: reason) }
    }

    func bytes(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[(slot * slotSize)..<((slot + 1) * slotSize)])
    }

    func segment(_ slot: Int, length: Int) -> ScatterGatherElement {
        buffer.region.segment(offset: slot * slotSize, length: length)
    }
}

/// The outcome of one posted SEND, which may come before or after someone waits for it.
final class SendCompletion: Sendable {
    private struct State {
        var result: Result<Void, TransportError>?
        var waiter: CheckedContinuation<Void, any Error>?
    }
    private let state = Mutex(State())

    func fulfill(_ result: Result<Void, TransportError>) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(with: result)
    }

    func wait() async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            let done = state.withLock { s -> Result<Void, TransportError>? in
                if s.result == nil { s.waiter = cont }
                return s.result
            }
            if let done { cont.resume(with: done) }
        }
    }
}
