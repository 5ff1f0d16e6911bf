import DaxshareVerbs
import Foundation
import Synchronization
import Testing
@testable import DaxshareClient

@Suite struct InlineStartExecutorTests {
    /// What the tests' tasks report, from whichever thread they run on.
    final class Seen: Sendable {
        let loop: EventLoop
        let executor: InlineStartExecutor
        let log = Mutex<[String]>([])
        let parked = Mutex<CheckedContinuation<Void, Never>?>(nil)

        init(_ name: String) {
            loop = EventLoop(name: name)
            executor = InlineStartExecutor(loop: loop)
        }

        func note(_ s: String) { log.withLock { $0.append(s) } }

        /// A task that says where its first stretch ran, parks, and says whether it went on on the loop.
        func startParking(reader: pthread_t) -> Task<Bool, Never> {
            Task(executorPreference: executor) { [self] () async -> Bool in
                note("first stretch on the reader: \(pthread_equal(pthread_self(), reader) != 0)")
                await withCheckedContinuation { c in parked.withLock { $0 = c } }
                return loop.inLoop
            }
        }

        /// A task that starts another, each noting its steps.
        func startNested() {
            Task(executorPreference: executor) { [self] in
                note("1")
                Task(executorPreference: executor) { [self] in note("3") }
                note("2")
            }
        }
    }

    /// What FUSE's reader threads do: a task started inside `startingInline` runs on the
    /// starting thread once the body has returned and before `startingInline` does, up to its
    /// first suspension; resumed from elsewhere, it goes on on the event loop.
    @Test func aTaskStartsOnItsCallersThreadThenGoesOnOnTheLoop() async {
        let seen = Seen("test-inline")
        let started = AsyncStream.makeStream(of: Task<Bool, Never>.self)
        Thread {
            let reader = pthread_self()
            seen.executor.startingInline {
                started.continuation.yield(seen.startParking(reader: reader))
                seen.note("body returned")
            }
            seen.note("startingInline returned")
        }.start()
        var tasks = started.stream.makeAsyncIterator()
        let task = await tasks.next()!
        while seen.log.withLock({ $0.count }) < 3 { await Task.yield() }
        #expect(seen.log.withLock { $0 } == ["body returned", "first stretch on the reader: true", "startingInline returned"])
        seen.parked.withLock { $0.take() }!.resume()
        #expect(await task.value)
    }

    /// Outside `startingInline` a task runs on the loop.
    @Test func aTaskStartedElsewhereRunsOnTheLoop() async {
        let seen = Seen("test-inline-2")
        let onLoop = await Task(executorPreference: seen.executor) { seen.loop.inLoop }.value
        #expect(onLoop)
    }

    /// Tasks a first stretch starts run on the reader too, in order, before it goes back.
    @Test func nestedTasksStartedInlineRunInOrderBeforeItReturns() {
        let seen = Seen("test-inline-3")
        let done = DispatchSemaphore(value: 0)
        Thread {
            seen.executor.startingInline { seen.startNested() }
            seen.note("4")
            done.signal()
        }.start()
        done.wait()
        #expect(seen.log.withLock { $0 } == ["1", "2", "3", "4"])
    }
}
