@testable import DaxshareClient
import DaxshareWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The one-sided path end to end against the fake server, whose layout "memory regions" are
/// heap buffers the fake RDMA copies to and from (checking rkeys, bounds and modes as a NIC
/// would): layouts per file, pipelined work requests, LAYOUTCOMMIT with the new size,
/// LAYOUTRETURN, recalls, refusals and revocation.
@Suite("One-sided data path over a fake server")
struct LayoutDataPathTests {
    func commands(_ h: Harness) -> [Command] { h.transport.sent.withLock { $0.map(\.command) } }
    func count(_ h: Harness, _ c: Command) -> Int { commands(h).filter { $0 == c }.count }

    @Test func putAndGetMoveEveryByteOneSided() async throws {
        let h = try await Harness.make(oneSided: true)
        #expect(h.session.dataPath is LayoutDataPath)
        let sent = h.transport.sent.withLock { $0.first }
        guard case let .request(.negotiate(n))? = sent?.body else { Issue.record("no NEGOTIATE"); return }
        #expect(n.capabilities.isSuperset(of: [.layouts, .callbacks, .odp]))

        let data = patternBytes(5 << 20 + 123, seed: 7)
        let src = temporaryPath("src"), back = temporaryPath("back")
        defer { _ = unlink(src); _ = unlink(back) }
        try writeLocal(src, data)
        let put = try await h.session.put(try LocalFile.openForReading(src), to: "f")
        #expect(put.dataPath == "one-sided via layout")
        #expect(h.server.file("f") == data)
        #expect(count(h, .write) == 0)
        // Everything went one-sided: the LAYOUTCOMMIT is the durability point, no FLUSH.
        #expect(count(h, .flush) == 0)
        // One RW layout sized by the put, committed with the new size, returned on close.
        let gets = h.server.layoutState.withLock { $0.gets }
        #expect(gets.count == 1)
        #expect(gets.first?.iomode == .readWrite)
        #expect(gets.first?.length == LayoutPlan.roundUp(UInt64(data.count), 4096))
        let commits = h.server.layoutState.withLock { $0.commits }
        #expect(commits.count == 1)
        #expect(commits.first?.newSize == UInt64(data.count))
        #expect(commits.first?.ranges == [ByteRange(offset: 0, length: UInt64(data.count))])
        #expect(h.server.layoutState.withLock { $0.returns.map(\.recallId) } == [0])
        #expect(h.server.liveLayouts.isEmpty)

        let get = try await h.session.get("f", toPath: back)
        #expect(get.dataPath == "one-sided via layout")
        #expect(get.sha256 == put.sha256)
        #expect(try readLocal(back) == data)
        #expect(count(h, .read) == 1)  // only the probe past the end of file, which moves nothing
        #expect(h.server.layoutState.withLock { ($0.gets.last?.iomode, $0.bytesRead) } == (.read, data.count))
        #expect(h.server.liveLayouts.isEmpty)
        #expect(h.server.state.withLock { $0.open.isEmpty })
        // put and get register their two batch buffers and move every byte from and into them
        // (zero-copy): the staging slots and the two-sided bounce buffer are never needed.
        #expect(h.registrations == 0)
        #expect(h.callerRegistrations == 4)
        #expect((h.access?.direct.withLock { $0 } ?? 0) > 0)
        #expect(h.session.callerBuffers.isEmpty)
        await h.session.close()
    }

    /// A registered buffer is the local side of every one-sided operation into or out of it; an
    /// unregistered one goes through the staging slots (copies), with the same bytes.
    @Test func aRegisteredBufferIsTheLocalSideOfTheRDMA() async throws {
        let h = try await Harness.make(oneSided: true) { $0.layouts.maxWorkRequest = 64 << 10 }
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        let data = patternBytes(300_000, seed: 3)
        let buffer = pageAlignedCopy(of: data)
        defer { buffer.deallocate() }
        let registration = try h.session.register(buffer)
        try await file.write(from: UnsafeRawBufferPointer(buffer), at: 0)
        let direct = h.access!.direct.withLock { $0 }
        // One work request for the extent: registered memory is not cut to the staging slots'
        // 64 KiB (which would take five).
        #expect(direct == 1)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(try await file.read(at: 0, into: buffer) == data.count)
        #expect(Array(buffer) == data)
        #expect(h.access!.direct.withLock { $0 } == 2 * direct)

        h.session.deregister(registration)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(try await file.read(at: 0, into: buffer) == data.count)
        #expect(Array(buffer) == data)
        #expect(h.access!.direct.withLock { $0 } == 2 * direct)
        try await file.close()  // commits
        #expect(h.server.file("f") == data)
        await h.session.close()
    }

    @Test func largeIOKeepsManyWorkRequestsInFlightAcrossExtents() async throws {
        let h = try await Harness.make(oneSided: true) { c in
            c.layouts.queueDepth = 8
            c.layouts.maxWorkRequest = 64 << 10
        }
        h.server.layoutState.withLock { $0.extentSize = 300 << 10 }  // extents not aligned to work requests
        let file = try await h.session.open("big", flags: [.read, .write, .create])
        let data = patternBytes(3 << 20, seed: 3)
        file.expectWrites(upTo: UInt64(data.count))
        try await file.write(at: 0, data)
        let inFlight = h.server.layoutState.withLock { $0.maxInFlight }
        #expect(inFlight > 1 && inFlight <= 8, "max in flight \(inFlight)")
        // Read back before the commit: the client's own RW layout serves it.
        #expect(try await file.read(at: 0, count: data.count) == data)
        #expect(h.server.file("big") == [])  // nothing visible on the server before LAYOUTCOMMIT
        try await file.flush()
        #expect(h.server.file("big") == data)
        #expect(count(h, .write) == 0 && count(h, .read) <= 1)
        try await file.close()
        await h.session.close()
    }

    @Test func aRefusedLayoutFallsBackTwoSidedForTheFile() async throws {
        let h = try await Harness.make(oneSided: true)
        h.server.layoutState.withLock { $0.refusals = [.notSupported] }
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        try await file.write(at: 0, patternBytes(100_000))
        try await file.write(at: 100_000, patternBytes(100_000, seed: 2))
        try await file.flush()
        #expect(h.server.file("f") == patternBytes(100_000) + patternBytes(100_000, seed: 2))
        // Written two-sided: the flush FLUSHes, once; a second flush has nothing to add.
        #expect(count(h, .flush) == 1)
        try await file.flush()
        #expect(count(h, .flush) == 1)
        #expect(h.server.layoutState.withLock { $0.gets.count } == 1)  // not asked again
        let usage = file.usage
        #expect(usage.oneSidedBytes == 0 && usage.twoSidedBytes == 200_000)
        #expect(usage.description.hasPrefix("two-sided (fell back to two-sided: LAYOUTGET: "))
        try await file.close()
        await h.session.close()
    }

    @Test func tryLaterIsRetriedThenGranted() async throws {
        let h = try await Harness.make(oneSided: true)
        h.server.layoutState.withLock { $0.refusals = [.tryLater, .tryLater] }
        let file = try await h.session.open("f", flags: [.write, .create])
        try await file.write(at: 0, patternBytes(8192))
        #expect(h.server.layoutState.withLock { $0.gets.count } == 3)
        #expect(file.usage.description == "one-sided via layout")
        try await file.close()  // commits
        #expect(h.server.file("f") == patternBytes(8192))
        await h.session.close()
    }

    @Test func tryLaterPastTheBudgetGoesTwoSidedForNow() async throws {
        let h = try await Harness.make(oneSided: true)
        h.server.layoutState.withLock { $0.refusals = [.tryLater, .tryLater, .tryLater] }
        let file = try await h.session.open("f", flags: [.write, .create])
        try await file.write(at: 0, patternBytes(8192))
        #expect(h.server.layoutState.withLock { $0.gets.count } == 3)
        #expect(count(h, .write) == 1)
        try await file.flush()
        #expect(h.server.file("f") == patternBytes(8192))
        try await file.close()
        await h.session.close()
    }

    @Test func aLongTryLaterHintIsHonouredWithoutWaiting() async throws {
        let h = try await Harness.make(oneSided: true)
        h.server.layoutState.withLock { s in
            s.refusals = [.tryLater]
            s.retryAfterMs = 60_000
        }
        let file = try await h.session.open("f", flags: [.write, .create])
        try await file.write(at: 0, patternBytes(8192))
        try await file.write(at: 8192, patternBytes(8192, seed: 4))  // within the hint: not asked again
        #expect(h.server.layoutState.withLock { $0.gets.count } == 1)
        #expect(count(h, .write) == 2)
        try await file.flush()
        #expect(h.server.file("f") == patternBytes(8192) + patternBytes(8192, seed: 4))
        #expect(file.usage.description.contains("retry after 60000 ms"))
        try await file.close()
        await h.session.close()
    }

    /// A recall that arrives right behind the LAYOUTGET reply, before the reply is applied,
    /// is held until it is, then answered OK and the layout returned; the write goes two-sided.
    /// (It used to find no layout and answer BAD_STATEID, and the server fenced the session.)
    @Test(arguments: 0..<5)
    func aRecallRightBehindTheGrantIsHonoured(run: Int) async throws {
        let h = try await Harness.make(oneSided: true) { $0.layouts.recallBackoffMs = 60_000 }
        h.server.layoutState.withLock { $0.recallBehindNextGrant = 41 }
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        let data = patternBytes(64 << 10, seed: UInt64(run + 9))
        try await file.write(at: 0, data)
        try await waitFor { h.server.layoutState.withLock { $0.returns.contains { $0.recallId == 41 } } }
        let acks = h.transport.sent.withLock { $0.filter { $0.command == .cbLayoutRecall } }
        #expect(acks.map(\.status) == [.ok])
        #expect(h.server.liveLayouts.isEmpty)
        try await file.flush()
        #expect(h.server.file("f") == data)
        try await file.close()
        await h.session.close()
    }

    @Test func aRecallIsAcknowledgedCommittedAndReturned() async throws {
        let h = try await Harness.make(oneSided: true) { $0.layouts.recallBackoffMs = 60_000 }
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        let first = patternBytes(1 << 20, seed: 1)
        try await file.write(at: 0, first)
        let layout = try #require(h.server.liveLayouts.first)
        h.transport.inject(try #require(h.server.recall(layoutId: layout, recallId: 31)))
        // Acknowledged OK, dirty bytes committed, returned with the recall id.
        try await waitFor { h.server.layoutState.withLock { $0.returns.contains { $0.recallId == 31 } } }
        let acks = h.transport.sent.withLock { $0.filter { $0.command == .cbLayoutRecall } }
        #expect(acks.map(\.status) == [.ok])
        let commits = h.server.layoutState.withLock { $0.commits }
        #expect(commits.count == 1)
        #expect(commits.first?.stateid.seqid == 2)  // the seqid the recall carried
        #expect(h.server.file("f") == first)  // durable through the recall's commit
        #expect(h.server.liveLayouts.isEmpty)
        // Carries on two-sided.
        let second = patternBytes(4096, seed: 2)
        try await file.write(at: UInt64(first.count), second)
        #expect(count(h, .write) == 1)
        try await file.flush()
        #expect(h.server.file("f") == first + second)
        #expect(file.usage.recalls == 1)
        try await file.close()
        await h.session.close()
    }

    @Test func aRecallOfAnUnknownLayoutIsBadStateid() async throws {
        let h = try await Harness.make(oneSided: true)
        let recall = LayoutRecall(stateid: LayoutStateid(id: 555, seqid: 2), fileId: 9, range: ByteRange(offset: 0, length: 1),
                                  recallId: 8, deadlineMs: 100, reason: .administrative)
        h.transport.inject(Message(messageId: 1, sessionId: 0x42, body: .callback(.layoutRecall(recall))))
        try await waitFor { h.transport.sent.withLock { $0.contains { $0.command == .cbLayoutRecall } } }
        #expect(h.transport.sent.withLock { $0.last?.status } == .badStateid)
        await h.session.close()
    }

    @Test func ignoringRecallsForTestingKeepsTheLayout() async throws {
        let h = try await Harness.make(oneSided: true) { $0.layouts.ignoreRecallsForTesting = true }
        let file = try await h.session.open("f", flags: [.write, .create])
        try await file.write(at: 0, patternBytes(4096))
        let layout = try #require(h.server.liveLayouts.first)
        h.transport.inject(try #require(h.server.recall(layoutId: layout)))
        try await waitFor { h.transport.sent.withLock { $0.contains { $0.command == .cbLayoutRecall } } }
        try await Task.sleep(for: .milliseconds(50))
        #expect(h.server.layoutState.withLock { $0.returns.isEmpty && $0.commits.isEmpty })
        try await file.write(at: 4096, patternBytes(4096, seed: 9))  // still one-sided
        #expect(count(h, .write) == 0)
        try await file.close()
        await h.session.close()
    }

    @Test func aLayoutRevokedBeforeItsCommitIsReportedNotWritten() async throws {
        let h = try await Harness.make(oneSided: true)
        let file = try await h.session.open("f", flags: [.write, .create])
        try await file.write(at: 0, patternBytes(10_000))
        h.server.layoutState.withLock { $0.revokeOnNextCommit = true }
        await #expect(throws: ClientError.layoutLost(reason: "\(ClientError.status(.layoutRevoked, .layoutCommit))",
                                                     unwrittenBytes: 10_000)) {
            try await file.flush()
        }
        #expect(h.server.file("f") == [])
        // The revoked stateid was returned (the server forgets it) and the file carries on.
        #expect(h.server.liveLayouts.isEmpty)
        try await file.close()
        await h.session.close()
    }

    @Test func putSendsAgainTwoSidedWhenItsLayoutIsRevoked() async throws {
        let h = try await Harness.make(oneSided: true)
        h.server.layoutState.withLock { $0.revokeOnNextCommit = true }
        let data = patternBytes(3 << 20, seed: 11)
        let src = temporaryPath("src")
        defer { _ = unlink(src) }
        try writeLocal(src, data)
        let put = try await h.session.put(try LocalFile.openForReading(src), to: "f")
        #expect(h.server.file("f") == data)
        #expect(put.bytes == UInt64(data.count))
        #expect(put.dataPath.contains("two-sided") && put.dataPath.contains("revoked"))
        #expect(count(h, .write) > 0 && count(h, .flush) >= 1)
        await h.session.close()
    }

    @Test func aFencedLayoutFailsTheWriteAndBreaksTheConnection() async throws {
        let h = try await Harness.make(oneSided: true)
        let file = try await h.session.open("f", flags: [.write, .create])
        try await file.write(at: 0, patternBytes(4096))
        h.server.fence(layoutId: try #require(h.server.liveLayouts.first))
        do {
            try await file.write(at: 4096, patternBytes(4096))
            Issue.record("a write through a fenced layout succeeded")
        } catch {
            guard case let .layoutLost(reason, unwritten) = error else { Issue.record("\(error)"); return }
            #expect(reason.contains("remote access error"))
            #expect(unwritten == 4096)  // the first write, never committed
        }
        #expect(!h.session.isConnected)
        #expect(h.transport.closedReason.withLock { $0 } != nil)
        await h.session.close()
    }

    @Test func twoSidedWhenAskedOrWhenTheServerHasNoLayouts() async throws {
        let h = try await Harness.make(oneSided: true) { $0.useLayouts = false }
        #expect(h.session.dataPath is TwoSidedDataPath)
        guard case let .request(.negotiate(n))? = h.transport.sent.withLock({ $0.first?.body }) else { return }
        #expect(n.capabilities.isDisjoint(with: [.layouts, .callbacks, .odp]))
        let file = try await h.session.open("f", flags: [.write, .create])
        try await file.write(at: 0, patternBytes(4096))
        #expect(file.usage.description == "two-sided")
        try await file.close()
        #expect(h.server.layoutState.withLock { $0.gets.isEmpty })
        await h.session.close()
        // No RDMA access (as over a transport that cannot post one-sided work): two-sided.
        let plain = try await Harness.make()
        #expect(plain.session.dataPath is TwoSidedDataPath)
        await plain.session.close()
    }

    @Test func writeThroughCommitsEveryWrite() async throws {
        let h = try await Harness.make(oneSided: true)
        let file = try await h.session.open("f", flags: [.write, .create])
        try await file.write(at: 0, patternBytes(4096), writeThrough: true)
        #expect(h.server.file("f") == patternBytes(4096))
        #expect(h.server.layoutState.withLock { $0.commits.count } == 1)
        try await file.close()
        #expect(h.server.layoutState.withLock { $0.commits.count } == 1)  // nothing left to commit
        await h.session.close()
    }

    @Test func shrinkingCommitsFirstAndForgetsLayoutsPastTheNewSize() async throws {
        let h = try await Harness.make(oneSided: true)
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        try await file.write(at: 0, patternBytes(8192))
        _ = try await file.setSize(100)
        #expect(h.server.layoutState.withLock { $0.commits.count } == 1)
        #expect((h.session.dataPath as! LayoutDataPath).held(fileId: file.fileId).isEmpty)
        #expect(try await file.read(at: 0, count: 200) == Array(patternBytes(8192)[0..<100]))
        try await file.close()
        await h.session.close()
    }
}

/// Polls `condition` until it holds (or fails the test after ~2 s).
func waitFor(_ condition: @Sendable () -> Bool) async throws {
    for _ in 0..<400 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("condition not met in time")
}

/// Commits by RDMA FLUSH (PROTOCOL.md §5.8) against the fake server: the dirty pages are FLUSHed,
/// LAYOUTCOMMIT only carries a grown size, write-through chains its FLUSH, and without the
/// capability everything is as before.
@Suite("Commits by RDMA FLUSH over a fake server")
struct FlushCommitTests {
    func flushOptions() -> FakeServer.Options {
        var o = FakeServer.Options()
        o.rdmaFlush = true
        return o
    }

    @Test func aCommitFlushesTheDirtyPagesAndSendsOnlyTheGrownSize() async throws {
        let h = try await Harness.make(flushOptions(), oneSided: true)
        #expect(h.session.server.capabilities.contains(.rdmaFlush))
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        let data = patternBytes(3 << 20, seed: 3)
        try await file.write(at: 0, data)
        try await file.flush()
        #expect(h.server.file("f") == data)
        var commits = h.server.layoutState.withLock { $0.commits }
        #expect(commits.count == 1 && commits[0].ranges.isEmpty && commits[0].newSize == UInt64(data.count), "\(commits)")
        #expect(file.usage.flushCommits == 1)

        // An overwrite inside the size: FLUSH only, no message to the server.
        let patch = patternBytes(5000, seed: 4)
        try await file.write(at: 4096 * 3, patch)
        let flushesBefore = h.server.layoutState.withLock { $0.flushes.count }
        try await file.flush()
        commits = h.server.layoutState.withLock { $0.commits }
        #expect(commits.count == 1)
        let flushes = h.server.layoutState.withLock { Array($0.flushes.dropFirst(flushesBefore)) }
        #expect(flushes.count == 1)
        // Widened to whole pages: [12288, 12288 + 5000) is two pages.
        #expect(flushes.first?.length == 8192, "\(flushes)")
        var expected = data
        expected.replaceSubrange((4096 * 3)..<(4096 * 3 + patch.count), with: patch)
        #expect(h.server.file("f") == expected)
        // The FLUSH moved no time: before the layout goes back, a LAYOUTCOMMIT with TOUCH does.
        try await file.close()
        commits = h.server.layoutState.withLock { $0.commits }
        #expect(commits.count == 2 && commits[1].touch && commits[1].ranges.isEmpty && commits[1].newSize == nil, "\(commits)")
        await h.session.close()
    }

    @Test func anExplicitModificationTimeIsNotMovedByALaterTouch() async throws {
        let h = try await Harness.make(flushOptions(), oneSided: true)
        let file = try await h.session.open("t", flags: [.read, .write, .create])
        try await file.write(at: 0, patternBytes(8192, seed: 1))
        try await file.flush()
        try await file.write(at: 0, patternBytes(4096, seed: 2))
        var change = AttributeChange()
        change.modificationTime = .at(nanosecondsSinceEpoch: 981_173_106_000_000_000)
        _ = try await file.setAttributes(change)  // commits (by FLUSH) first, then sets the time
        try await file.close()
        #expect(!h.server.layoutState.withLock { $0.commits.contains { $0.touch } })
        await h.session.close()
    }

    @Test func writeThroughChainsItsFlushAndCommitsOnlyTheSize() async throws {
        let h = try await Harness.make(flushOptions(), oneSided: true)
        let file = try await h.session.open("w", flags: [.read, .write, .create])
        let data = patternBytes(64 << 10, seed: 8)
        try await file.write(at: 0, data, writeThrough: true)
        // Durable at return: the bytes and the size, by a FLUSH and a size-only LAYOUTCOMMIT.
        #expect(h.server.file("w") == data)
        let commits = h.server.layoutState.withLock { $0.commits }
        #expect(commits.count == 1 && commits[0].ranges.isEmpty && commits[0].newSize == UInt64(data.count), "\(commits)")
        #expect(h.server.layoutState.withLock { $0.flushes.count } == 1)
        // Nothing left to commit.
        try await file.flush()
        #expect(h.server.layoutState.withLock { ($0.commits.count, $0.flushes.count) } == (1, 1))
        try await file.close()
        await h.session.close()
    }

    /// A durable write from registered memory of 1 MiB is four WRITE + FLUSH chains of 256 KiB
    /// in flight (LayoutPlan.directPieceLimit), each FLUSH covering its own piece; a write that
    /// need not be durable stays one WRITE.
    @Test func aDurableDirectWriteIsAFewChainsInFlight() async throws {
        let h = try await Harness.make(flushOptions(), oneSided: true)
        let file = try await h.session.open("d", flags: [.read, .write, .create])
        let data = patternBytes(1 << 20, seed: 12)
        let buffer = pageAlignedCopy(of: data)
        defer { buffer.deallocate() }
        let registration = try h.session.register(buffer)
        try await file.write(from: UnsafeRawBufferPointer(buffer), at: 0, writeThrough: true)
        #expect(h.server.file("d") == data)
        #expect(h.access!.direct.withLock { $0 } == 4)
        let flushes = h.server.layoutState.withLock { $0.flushes }
        #expect(flushes.map(\.length) == [UInt64](repeating: 256 << 10, count: 4), "\(flushes)")
        #expect(Set(flushes.map(\.address)).count == 4)
        try await file.write(from: UnsafeRawBufferPointer(buffer), at: 0)
        #expect(h.access!.direct.withLock { $0 } == 5)
        try await file.close()
        h.session.deregister(registration)
        await h.session.close()
    }

    /// While other I/O of the file is in flight, a durable write stays one WRITE + FLUSH chain:
    /// the queue is busy already.
    @Test func aDurableDirectWriteBesideAnotherStaysOneChain() async throws {
        let h = try await Harness.make(flushOptions(), oneSided: true, rdmaDelayMicroseconds: 100_000)
        let file = try await h.session.open("b", flags: [.read, .write, .create])
        let data = patternBytes(2 << 20, seed: 13)
        let buffer = pageAlignedCopy(of: data)
        defer { buffer.deallocate() }
        let registration = try h.session.register(buffer)
        nonisolated(unsafe) let half = UnsafeRawBufferPointer(rebasing: buffer[0..<(1 << 20)])  // lives past the task
        let first = Task { try await file.write(from: half, at: 0, writeThrough: true) }
        // The first write's pieces are at the fake NIC (each takes 100 ms) before the second starts.
        while h.server.layoutState.withLock({ $0.inFlight }) == 0 { await Task.yield() }
        try await file.write(from: UnsafeRawBufferPointer(rebasing: buffer[(1 << 20)...]), at: 1 << 20, writeThrough: true)
        try await first.value
        #expect(h.server.file("b") == data)
        let flushes = h.server.layoutState.withLock { $0.flushes }.map(\.length).sorted()
        #expect(flushes == [UInt64](repeating: 256 << 10, count: 4) + [1 << 20], "\(flushes)")
        try await file.close()
        h.session.deregister(registration)
        await h.session.close()
    }

    @Test func withoutFlushCommitsOnTheClientSideLayoutCommitCarriesTheRanges() async throws {
        let h = try await Harness.make(flushOptions(), oneSided: true) { $0.layouts.flushCommits = false }
        #expect(!h.session.server.capabilities.contains(.rdmaFlush))
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        let data = patternBytes(1 << 20, seed: 5)
        try await file.write(at: 0, data)
        try await file.flush()
        #expect(h.server.file("f") == data)
        let commits = h.server.layoutState.withLock { $0.commits }
        #expect(commits.count == 1 && commits[0].ranges == [ByteRange(offset: 0, length: UInt64(data.count))])
        #expect(h.server.layoutState.withLock { $0.flushes.isEmpty })
        try await file.close()
        await h.session.close()
    }

    @Test func aFailedFlushReportsTheBytesUnwritten() async throws {
        let h = try await Harness.make(flushOptions(), oneSided: true)
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        try await file.write(at: 0, patternBytes(1 << 20, seed: 1))
        try await file.flush()
        try await file.write(at: 0, patternBytes(256 << 10, seed: 2))
        for id in h.server.liveLayouts { h.server.fence(layoutId: id) }
        await #expect {
            try await file.flush()
        } throws: { error in
            guard case let .layoutLost(_, unwritten) = error as? ClientError else { return false }
            return unwritten >= 256 << 10
        }
        await h.session.close()
    }
}

@Suite struct FlushPlanTests {
    let page: UInt64 = 4096

    @Test func spansAreWholePagesOfTheirExtentMerged() {
        let extents = [
            LayoutExtent(fileOffset: 0, length: 16384, remoteAddress: 0x10000, rkey: 1, flags: [.persistentFlush]),
            LayoutExtent(fileOffset: 16384, length: 8192, remoteAddress: 0x90000, rkey: 2, flags: [.persistentFlush]),
        ]
        var dirty = DirtyRanges()
        dirty.insert(offset: 100, length: 10)
        dirty.insert(offset: 5000, length: 10)       // same and next page: merged with the first
        dirty.insert(offset: 15000, length: 3000)    // crosses into the second extent
        let spans = FlushPlan.spans(dirty: dirty, extents: extents, pageSize: page)
        #expect(spans == [
            RemoteSpan(address: 0x10000, rkey: 1, length: 8192),
            RemoteSpan(address: 0x10000 + 12288, rkey: 1, length: 4096),
            RemoteSpan(address: 0x90000, rkey: 2, length: 4096),
        ])
    }

    @Test func anExtentWithoutFlushOrADirtyByteOutsideMeansLayoutCommit() {
        let plain = [LayoutExtent(fileOffset: 0, length: 8192, remoteAddress: 0x1000, rkey: 1)]
        var dirty = DirtyRanges()
        dirty.insert(offset: 0, length: 10)
        #expect(FlushPlan.spans(dirty: dirty, extents: plain) == nil)
        let flushable = [LayoutExtent(fileOffset: 0, length: 8192, remoteAddress: 0x1000, rkey: 1, flags: [.persistentFlush])]
        dirty.insert(offset: 9000, length: 10)
        #expect(FlushPlan.spans(dirty: dirty, extents: flushable) == nil)
    }

    @Test func onlyAGrownSizeIsCommitted() {
        let id = LayoutStateid(id: 1, seqid: 1)
        var dirty = DirtyRanges()
        dirty.insert(offset: 0, length: 100)
        #expect(FlushPlan.sizeCommit(stateid: id, dirty: dirty, knownSize: 100) == nil)
        let grown = FlushPlan.sizeCommit(stateid: id, dirty: dirty, knownSize: 50)
        #expect(grown?.newSize == 100 && grown?.ranges == [])
        #expect(FlushPlan.sizeCommit(stateid: id, dirty: DirtyRanges(), knownSize: 0) == nil)
    }
}
