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
}
