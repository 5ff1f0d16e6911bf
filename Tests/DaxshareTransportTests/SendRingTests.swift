@testable import DaxshareTransport
import Testing

@Suite("Send ring slots")
struct SlotPoolTests {
    @Test func handsOutEverySlotOnce() {
        var pool = SlotPool<String>(count: 3)
        let taken = (0..<3).compactMap { pool.acquire(orQueue: "w\($0)") }
        #expect(Set(taken) == [0, 1, 2])
        #expect(pool.freeCount == 0 && pool.waiting == 0)
    }

    @Test func aFreedSlotGoesToTheOldestWaiter() {
        var pool = SlotPool<String>(count: 1)
        #expect(pool.acquire(orQueue: "first") == 0)
        #expect(pool.acquire(orQueue: "a") == nil)
        #expect(pool.acquire(orQueue: "b") == nil)
        #expect(pool.release(0) == "a")
        #expect(pool.release(0) == "b")
        #expect(pool.release(0) == nil)
        #expect(pool.freeCount == 1)
    }

    @Test func noOvertakingWhileOthersWait() {
        var pool = SlotPool<Int>(count: 2)
        _ = pool.acquire(orQueue: 0)
        _ = pool.acquire(orQueue: 0)
        #expect(pool.acquire(orQueue: 1) == nil)
        // A slot freed goes to the waiter, not to a newcomer.
        #expect(pool.release(1) == 1)
        #expect(pool.acquire(orQueue: 2) == nil)
        #expect(pool.removeWaiters() == [2])
        #expect(pool.release(0) == nil)
        #expect(pool.acquire(orQueue: 3) == 0)
    }

    @Test func takeFreeNeverOvertakesAWaiterAndQueuesNothing() {
        var pool = SlotPool<Int>(count: 2)
        #expect(pool.takeFree() == 0)
        #expect(pool.takeFree() == 1)
        #expect(pool.takeFree() == nil)
        #expect(pool.waiting == 0)
        #expect(pool.acquire(orQueue: 7) == nil)
        #expect(pool.release(0) == 7)
        #expect(pool.release(1) == nil)
        // One slot free, but `release` handed the other to the waiter: still no overtaking.
        #expect(pool.acquire(orQueue: 8) == 1)
        #expect(pool.takeFree() == nil)
    }
}

@Suite("The send gate")
struct AsyncGateTests {
    /// One holder at a time, whether the gate was free (taken without suspending) or held
    /// (waited for): a holder that suspends inside is never joined by another.
    @Test func oneHolderAtATime() async {
        let gate = AsyncGate()
        let inside = Inside()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    for _ in 0..<20 {
                        await gate.enter()
                        await inside.enter()
                        await Task.yield()
                        await inside.leave()
                        gate.leave()
                    }
                }
            }
        }
        #expect(await inside.most == 1)
        #expect(await inside.entries == 16 * 20)
    }
}

private actor Inside {
    var now = 0, most = 0, entries = 0
    func enter() { now += 1; entries += 1; most = max(most, now) }
    func leave() { now -= 1 }
}
