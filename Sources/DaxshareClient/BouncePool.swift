import DaxshareWire
import Synchronization

/// One slot of the bounce buffer: registered memory a single READ or WRITE uses from the time
/// its request is built until its response arrives.
// @unchecked: one I/O holds a slot at a time: the pool hands it out and takes it back.
struct BounceSlot: @unchecked Sendable {
    let index: Int
    let memory: any RegisteredMemory
    let offset: Int
    let size: Int

    var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: memory.bytes[offset..<(offset + size)])
    }

    func descriptor(length: Int) -> BufferDescriptor {
        memory.descriptor(offset: offset, length: length)
    }
}

/// The session's registered bounce memory: one region, registered on first use and kept for
/// the session's life, carved into equal slots handed out one per request in flight.
///
/// Registering per call would pin and unpin memory on every read; one cached region costs a
/// few MiB for the session's lifetime instead. Two-sided I/O copies through it: the server
/// RDMA-WRITEs into a slot (READ) or RDMA-READs from one (WRITE), and the client copies
/// between the slot and the caller's buffer.
final class BouncePool: Sendable {
    let slotSize: Int
    let slotCount: Int
    private let registrar: any BufferRegistrar
    private struct State {
        var memory: (any RegisteredMemory)?
        var free: [Int]
        var waiters: [CheckedContinuation<Int, Never>] = []
    }
    private let state: Mutex<State>

    init(registrar: any BufferRegistrar, slotSize: Int, slotCount: Int) {
        self.registrar = registrar
        self.slotSize = slotSize
        self.slotCount = slotCount
        state = Mutex(State(free: Array((0..<slotCount).reversed())))
    }

    /// Waits for a free slot (registering the region the first time).
    func acquire() async throws(ClientError) -> BounceSlot {
        let memory = try registered()
        // A free slot without suspending: a continuation always suspends the task.
        if let i = state.withLock({ $0.free.popLast() }) {
            return BounceSlot(index: i, memory: memory, offset: i * slotSize, size: slotSize)
        }
        let index = await withCheckedContinuation { (k: CheckedContinuation<Int, Never>) in
            let now = state.withLock { s -> Int? in
                if let i = s.free.popLast() { return i }
                s.waiters.append(k)
                return nil
            }
            if let now { k.resume(returning: now) }
        }
        return BounceSlot(index: index, memory: memory, offset: index * slotSize, size: slotSize)
    }

    /// Returns a slot; only after the server has answered the request that used it.
    func release(_ slot: BounceSlot) {
        let waiter = state.withLock { s -> CheckedContinuation<Int, Never>? in
            if !s.waiters.isEmpty { return s.waiters.removeFirst() }
            s.free.append(slot.index)
            return nil
        }
        waiter?.resume(returning: slot.index)
    }

    private func registered() throws(ClientError) -> any RegisteredMemory {
        try state.withLock { s throws(ClientError) -> any RegisteredMemory in
            if let m = s.memory { return m }
            let m = try registrar.register(length: slotSize * slotCount)
            s.memory = m
            return m
        }
    }
}
