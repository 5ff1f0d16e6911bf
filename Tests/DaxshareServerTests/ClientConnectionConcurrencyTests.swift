@testable import DaxshareServer
import DaxshareWire
import Foundation
import Testing

/// §3.4's concurrency, with requests that really wait: a SET_SIZE that cuts a file another
/// client holds a layout on waits for that layout's recall, and the other client (a fake
/// `LayoutHolder` in the same layout registry) answers only when the test says so.
extension ClientConnectionTests {
    /// A layout on `path` held by another client that does not answer recalls, granted through
    /// the server's own file table and layout registry (what a second connection's LAYOUTGET
    /// does, without the memory region).
    struct HeldLayout {
        static let id: UInt64 = 1 << 40
        let file: OpenFile
        let layouts: FileLayouts
        let holder: FileLayoutsTests.FakeHolder

        init(_ path: String, on c: ConnectionUnderTest) throws {
            let file = try c.context.files.open(path, in: c.export, options: readWrite)
            let layouts = c.context.layouts.layouts(of: file.shared)
            let holder = FileLayoutsTests.FakeHolder("another client", answers: false)
            holder.state.withLock { $0.file = layouts }
            try layouts.reserve(Self.id, holder: holder, range: ByteRange(offset: 0, length: 4096), writable: true)
            #expect(layouts.confirm(Self.id))
            (self.file, self.layouts, self.holder) = (file, layouts, holder)
        }

        /// The other client returns its layout (its LAYOUTRETURN), then closes the file.
        func giveBack() {
            layouts.release(Self.id)
            file.close()
        }

        /// Waits until `count` recalls of the layout were sent.
        func recalled(_ count: Int, within timeout: Duration = .seconds(10)) async throws {
            let deadline = ContinuousClock.now + timeout
            while holder.recalled.count < count {
                guard ContinuousClock.now < deadline else {
                    throw Unexpected("\(holder.recalled.count) of \(count) recalls within \(timeout)")
                }
                try await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    /// A deadline no test waits for: a recall ends only when the test returns the layout.
    static func noDeadline(_ configuration: inout ServerConfiguration) { configuration.recallDeadlineMs = 600_000 }

    @Test func aRequestWaitingForARecallHoldsUpNothingElseOnTheConnection() async throws {
        try await withConnection(configure: Self.noDeadline) { c in
            let tree = try await c.establish()
            c.fixture.put("held", "sixteen bytes...")
            let file = try await c.open("held", tree: tree)
            let held = try HeldLayout("held", on: c)

            let cut = c.send(.setSize(SetSizeRequest(fileId: file, size: 0)))
            try await held.recalled(1)
            // Served meanwhile: unrelated requests, on this file and on others.
            #expect(try await c.ok(.echo(EchoMessage(data: [7]))) == .echo(EchoMessage(data: [7])))
            guard case let .stat(before) = try await c.ok(.stat(.fileId(file))) else { throw Unexpected("STAT") }
            #expect(before.size == 16, "the cut waits for the recall")
            let other = try await c.open("other", tree: tree)
            #expect(try await c.ok(.close(CloseRequest(fileId: other))) == .close)
            #expect(!c.channel.sent.contains { $0.messageId == cut }, "SET_SIZE is still waiting")

            held.giveBack()
            guard case let .setSize(after) = try await c.channel.response(to: cut).succeeded() else { throw Unexpected("SET_SIZE") }
            #expect(after.size == 0)
            #expect(c.fixture.contents("held") == "")
            #expect(c.counter(ServerCounter.layoutsRecalled) == 1)
        }
    }

    @Test func beyondMaxOutstandingRequestsOneMoreIsTooManyWhileLayoutReturnIsStillServed() async throws {
        try await withConnection(configure: Self.noDeadline) { c in
            let tree = try await c.establish()
            let file = try await c.open("held", tree: tree)
            let held = try HeldLayout("held", on: c)
            let limit = c.context.maxOutstandingRequests

            // `limit` requests that each wait for the recall of the other client's layout.
            let waiting = (0..<limit).map { _ in c.send(.setSize(SetSizeRequest(fileId: file, size: 0))) }
            try await held.recalled(limit)

            let tooMany = try await c.call(.echo(EchoMessage()))
            #expect(tooMany.status == .tooMany)
            // LAYOUTRETURN is never refused for the limit nor waits behind it (§3.4): answered
            // on its merits (this session holds no such layout), and so are session commands.
            let ret = try await c.call(.layoutReturn(LayoutReturnRequest(stateid: LayoutStateid(id: 99, seqid: 1))))
            #expect(ret.status == .badStateid)
            let tree2 = try await c.call(.treeConnect(TreeConnectRequest(exportName: ConnectionUnderTest.exportName)))
            #expect(tree2.status == .ok)
            #expect(!c.channel.isClosed)
            #expect(c.channel.sent.isEmpty, "none of the waiting requests was answered")

            held.giveBack()
            for id in waiting {
                #expect(try await c.channel.response(to: id).status == .ok)
            }
            // Their slots are free again.
            #expect(try await c.ok(.echo(EchoMessage())) == .echo(EchoMessage()))
        }
    }

    @Test func aHolderThatNeverAnswersIsFencedAtTheDeadlineAndTheWaitingRequestGoesOn() async throws {
        try await withConnection(configure: { $0.recallDeadlineMs = 200 }) { c in
            let tree = try await c.establish()
            c.fixture.put("held", "sixteen bytes...")
            let file = try await c.open("held", tree: tree)
            let held = try HeldLayout("held", on: c)
            let started = ContinuousClock.now
            let answer = try await c.call(.punchHole(PunchHoleRequest(fileId: file, range: ByteRange(offset: 0, length: 4096))))
            #expect(answer.status == .ok)
            #expect(ContinuousClock.now - started >= .milliseconds(200))
            #expect(held.holder.recalled == [HeldLayout.id])
            #expect(held.holder.fenced == [HeldLayout.id])
            #expect(held.layouts.count == 0)
            held.file.close()
        }
    }
}
