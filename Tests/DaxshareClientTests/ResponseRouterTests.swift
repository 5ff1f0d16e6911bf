@testable import DaxshareClient
import DaxshareWire
import Synchronization
import Testing

@Suite("Response matching")
struct ResponseRouterTests {
    func reply(_ id: UInt64, _ command: Command = .echo, status: Status = .ok) -> Message {
        let header = MessageHeader(command: command, messageId: id, sessionId: 5)
        if status != .ok { return Message.error(status, to: header) }
        return Message.response(.echo(EchoMessage(data: [UInt8(id)])), to: header)
    }

    @Test func idsCountUpFromOne() throws {
        let r = ResponseRouter()
        #expect(try r.allocate(command: .echo) == 1)
        #expect(try r.allocate(command: .echo) == 2)
        #expect(r.outstanding == 2)
    }

    @Test func responsesInAnyOrderReachTheirRequests() async throws {
        let r = ResponseRouter()
        let ids = try (0..<20).map { _ in try r.allocate(command: .echo) }
        async let waited: [(UInt64, Message)] = withTaskGroup(of: (UInt64, Message).self) { group in
            for id in ids { group.addTask { (id, try! await r.wait(id).get()) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for id in ids.reversed() { #expect(r.deliver(reply(id)) == nil) }
        let results = await waited
        #expect(results.count == 20)
        for (id, message) in results { #expect(message.messageId == id) }
        #expect(r.outstanding == 0)
    }

    @Test func aResponseMayArriveBeforeTheWait() async throws {
        let r = ResponseRouter()
        let id = try r.allocate(command: .echo)
        #expect(r.deliver(reply(id)) == nil)
        #expect(try await r.wait(id).get().messageId == id)
    }

    @Test func errorStatusesAreDeliveredToo() async throws {
        let r = ResponseRouter()
        let id = try r.allocate(command: .echo)
        #expect(r.deliver(reply(id, status: .notFound)) == nil)
        let m = try await r.wait(id).get()
        #expect(m.status == .notFound)
    }

    @Test func unmatchedDuplicateOrMismatchedResponsesAreViolations() throws {
        let r = ResponseRouter()
        #expect(r.deliver(reply(99)) != nil)
        let id = try r.allocate(command: .stat)
        #expect(r.deliver(reply(id, .echo))?.contains("STAT") == true)
        let id2 = try r.allocate(command: .echo)
        #expect(r.deliver(reply(id2)) == nil)
        #expect(r.deliver(reply(id2)) != nil)
    }

    @Test func closingFailsWaitingAndLaterRequests() async throws {
        let r = ResponseRouter()
        let a = try r.allocate(command: .echo)
        let b = try r.allocate(command: .echo)
        async let waitA = r.wait(a)
        try await Task.sleep(for: .milliseconds(20))
        r.close(.transport("gone"))
        r.close(.transport("second reason is ignored"))
        let resultA = await waitA
        #expect(throws: ClientError.transport("gone")) { try resultA.get() }
        // Allocated before the close, waited after it.
        await #expect(throws: ClientError.transport("gone")) { try await r.wait(b).get() }
        #expect(throws: ClientError.transport("gone")) { try r.allocate(command: .echo) }
        // Late responses after a close are ignored, not violations.
        #expect(r.deliver(reply(a)) == nil)
    }

    @Test func cancelForgetsARequestThatWasNotSent() throws {
        let r = ResponseRouter()
        let id = try r.allocate(command: .echo)
        r.cancel(id)
        #expect(r.outstanding == 0)
        #expect(r.deliver(reply(id)) != nil)
    }
}

@Suite("Pipelining")
struct PipelineTests {
    @Test func boundsConcurrencyAndKeepsOrder() async throws {
        let live = Mutex((now: 0, max: 0))
        let result = await runPipelined(count: 40, depth: 4) { i in
            live.withLock { $0.now += 1; $0.max = max($0.max, $0.now) }
            try? await Task.sleep(for: .microseconds(300 + (i % 3) * 200))
            live.withLock { $0.now -= 1 }
            return .success(i * 2)
        }
        #expect(try result.get() == (0..<40).map { $0 * 2 })
        let observed = live.withLock { $0.max }
        #expect(observed <= 4)
        #expect(observed >= 2)
    }

    @Test func theFirstFailureStopsNewSteps() async {
        let started = Mutex(0)
        let result: Result<[Int], ClientError> = await runPipelined(count: 100, depth: 2) { i in
            started.withLock { $0 += 1 }
            try? await Task.sleep(for: .microseconds(200))
            return i == 3 ? .failure(.protocol("step 3")) : .success(i)
        }
        #expect(throws: ClientError.protocol("step 3")) { try result.get() }
        #expect(started.withLock { $0 } < 10)
    }

    @Test func semaphoreLimitsAndGrows() async {
        let s = AsyncSemaphore(permits: 1)
        await s.acquire()
        let got = Mutex(false)
        let waiter = Task {
            await s.acquire()
            got.withLock { $0 = true }
        }
        try? await Task.sleep(for: .milliseconds(20))
        #expect(got.withLock { $0 } == false)
        s.setPermits(2)
        await waiter.value
        #expect(got.withLock { $0 })
        #expect(s.permits == 2)
    }
}
