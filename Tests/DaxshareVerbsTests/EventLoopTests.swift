import CLinux
import Glibc
import Synchronization
import Testing
@testable import DaxshareVerbs

@Suite struct EventLoopTests {
    @Test func readableDescriptorRunsItsHandlerOnTheLoopThread() async throws {
        let loop = EventLoop(name: "test-loop")
        let fd = eventfd(0, Int32(EFD_NONBLOCK))
        defer { close(fd) }
        let (stream, sink) = AsyncStream.makeStream(of: (UInt64, Bool).self)
        try loop.register(fd: fd) {
            var value: UInt64 = 0
            if read(fd, &value, 8) == 8 { sink.yield((value, loop.inLoop)) }
        }
        var three: UInt64 = 3
        #expect(write(fd, &three, 8) == 8)
        var it = stream.makeAsyncIterator()
        let got = await it.next()
        #expect(got?.0 == 3)
        #expect(got?.1 == true)
        #expect(!loop.inLoop)
        loop.executeAndWait { loop.unregister(fd: fd) }
    }

    @Test func executeRunsTasksInOrder() {
        let loop = EventLoop(name: "test-loop-order")
        let seen = Mutex<[Int]>([])
        for i in 0..<100 { loop.execute { seen.withLock { $0.append(i) } } }
        loop.executeAndWait {}
        #expect(seen.withLock { $0 } == Array(0..<100))
    }

    @Test func registeringABadDescriptorFails() {
        let loop = EventLoop(name: "test-loop-bad")
        #expect(throws: VerbsError.self) { try loop.register(fd: -1) {} }
    }

    @Test func aTaskPreferringTheLoopRunsOnItAndResumesThereFromAHandler() async throws {
        let loop = EventLoop(name: "test-loop-executor")
        let fd = eventfd(0, Int32(EFD_NONBLOCK))
        defer { close(fd) }
        let waiter = Mutex<CheckedContinuation<Bool, Never>?>(nil)
        try loop.register(fd: fd) {
            var value: UInt64 = 0
            guard read(fd, &value, 8) == 8 else { return }
            waiter.withLock { $0.take() }?.resume(returning: loop.inLoop)
        }
        let seen = await Task(executorPreference: loop) { () async -> [Bool] in
            let before = loop.inLoop
            let handlerInLoop = await withCheckedContinuation { (cont: CheckedContinuation<Bool, Never>) in
                waiter.withLock { $0 = cont }
                var one: UInt64 = 1
                _ = write(fd, &one, 8)
            }
            return [before, handlerInLoop, loop.inLoop]
        }.value
        #expect(seen == [true, true, true])
        loop.executeAndWait { loop.unregister(fd: fd) }
    }

    @Test func aBusyPollingLoopPollsEveryTurnUntilThePollerGoesThenSleepsAndStillWakes() async throws {
        let loop = EventLoop(name: "test-loop-busy", waiting: .busyPolling)
        let turns = Atomic<Int>(0)
        loop.addPoller(key: 7) { turns.add(1, ordering: .relaxed) }
        while turns.load(ordering: .relaxed) < 1000 { await Task.yield() }
        loop.executeAndWait { loop.removePoller(key: 7) }
        let after = turns.load(ordering: .relaxed)
        // Without a poller the loop sleeps in epoll_wait; queued work must still wake it.
        try await Task.sleep(for: .milliseconds(20))
        #expect(turns.load(ordering: .relaxed) == after)
        let ran = await Task(executorPreference: loop) { loop.inLoop }.value
        #expect(ran)
        loop.executeAndWait {}
    }

    /// Work queued while the loop runs its queue is run in the same turn (no epoll_wait between),
    /// but in a bounded number of rounds: work that keeps queueing more cannot keep a readable
    /// descriptor's handler from running.
    @Test(.timeLimit(.minutes(1))) func workThatRequeuesItselfForeverDoesNotStarveADescriptor() async throws {
        let loop = EventLoop(name: "test-loop-fair")
        let fd = eventfd(0, Int32(EFD_NONBLOCK))
        defer { close(fd) }
        let rounds = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        @Sendable func again() {
            rounds.add(1, ordering: .relaxed)
            if !stop.load(ordering: .relaxed) { loop.execute(again) }
        }
        let (stream, sink) = AsyncStream.makeStream(of: Int.self)
        try loop.register(fd: fd) {
            var value: UInt64 = 0
            if read(fd, &value, 8) == 8 { sink.yield(rounds.load(ordering: .relaxed)) }
        }
        loop.execute(again)
        while rounds.load(ordering: .relaxed) < 100 { await Task.yield() }
        var one: UInt64 = 1
        #expect(write(fd, &one, 8) == 8)
        var it = stream.makeAsyncIterator()
        let seenAt = await it.next()
        stop.store(true, ordering: .relaxed)
        #expect((seenAt ?? 0) >= 100)
        loop.executeAndWait { loop.unregister(fd: fd) }
    }
}
