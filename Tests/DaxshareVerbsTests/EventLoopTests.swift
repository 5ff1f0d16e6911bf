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
}
