@testable import DaxshareClient
import DaxshareWire
import Testing

/// The pure arithmetic of the one-sided path: windows, LAYOUTGET ranges, extents to work
/// requests, dirty ranges, commit requests, and what a refusal leads to.
@Suite("Layout plan")
struct LayoutPlanTests {
    let MiB: UInt64 = 1 << 20

    @Test func windowsAreAlignedAndCapped() {
        #expect(LayoutPlan.window(containing: 0, window: 64 * MiB) == 0..<(64 * MiB))
        #expect(LayoutPlan.window(containing: 64 * MiB - 1, window: 64 * MiB) == 0..<(64 * MiB))
        #expect(LayoutPlan.window(containing: 64 * MiB, window: 64 * MiB) == (64 * MiB)..<(128 * MiB))
        let top = LayoutPlan.window(containing: UInt64(Int64.max) - 5, window: 64 * MiB)
        #expect(top.upperBound == UInt64(Int64.max))
    }

    @Test func readLayoutsAskForTheWholeWindowAndNeedOnlyTheIO() {
        let r = LayoutPlan.request(window: (64 * MiB)..<(128 * MiB), ioStart: 70 * MiB, ioEnd: 80 * MiB, iomode: .read,
                                   expectedEnd: nil)
        #expect(r == LayoutRequestRange(offset: 64 * MiB, length: 64 * MiB, minLength: 16 * MiB))
    }

    @Test func writeLayoutsStopAtTheExpectedEndRoundedToAPage() {
        // A 4 KiB put asks for one page, not a 64 MiB window past the end of file.
        let small = LayoutPlan.request(window: 0..<(64 * MiB), ioStart: 0, ioEnd: 4096, iomode: .readWrite, expectedEnd: 4096)
        #expect(small == LayoutRequestRange(offset: 0, length: 4096, minLength: 4096))
        let odd = LayoutPlan.request(window: 0..<(64 * MiB), ioStart: 0, ioEnd: 100, iomode: .readWrite, expectedEnd: 5000)
        #expect(odd == LayoutRequestRange(offset: 0, length: 8192, minLength: 100))
        // A 100 MiB put: the first window whole, then the rest of the second.
        let first = LayoutPlan.request(window: 0..<(64 * MiB), ioStart: 0, ioEnd: 16 * MiB, iomode: .readWrite, expectedEnd: 100 * MiB)
        #expect(first == LayoutRequestRange(offset: 0, length: 64 * MiB, minLength: 16 * MiB))
        let second = LayoutPlan.request(window: (64 * MiB)..<(128 * MiB), ioStart: 64 * MiB, ioEnd: 80 * MiB, iomode: .readWrite,
                                        expectedEnd: 100 * MiB)
        #expect(second == LayoutRequestRange(offset: 64 * MiB, length: 36 * MiB, minLength: 16 * MiB))
        // Writing past the hint still covers the I/O; no hint: the window.
        let past = LayoutPlan.request(window: 0..<(64 * MiB), ioStart: 8192, ioEnd: 12288, iomode: .readWrite, expectedEnd: 4096)
        #expect(past == LayoutRequestRange(offset: 0, length: 12288, minLength: 12288))
        let none = LayoutPlan.request(window: 0..<(64 * MiB), ioStart: 0, ioEnd: 1, iomode: .readWrite, expectedEnd: nil)
        #expect(none.length == 64 * MiB)
    }

    func extent(_ offset: UInt64, _ length: UInt64, _ address: UInt64, _ rkey: UInt32) -> LayoutExtent {
        LayoutExtent(fileOffset: offset, length: length, remoteAddress: address, rkey: rkey)
    }

    @Test func anIOSplitsAtExtentsAndWorkRequestSize() {
        let extents = [extent(0, 3000, 0x10000, 1), extent(3000, 5000, 0x90000, 2)]
        let s = LayoutPlan.split(offset: 1000, length: 6000, bufferOffset: 100, extents: extents, maxPiece: 1500)
        #expect(s.gaps.isEmpty)
        #expect(s.pieces == [
            OneSidedPiece(fileOffset: 1000, bufferOffset: 100, length: 1500, remoteAddress: 0x10000 + 1000, rkey: 1),
            OneSidedPiece(fileOffset: 2500, bufferOffset: 1600, length: 500, remoteAddress: 0x10000 + 2500, rkey: 1),
            OneSidedPiece(fileOffset: 3000, bufferOffset: 2100, length: 1500, remoteAddress: 0x90000, rkey: 2),
            OneSidedPiece(fileOffset: 4500, bufferOffset: 3600, length: 1500, remoteAddress: 0x90000 + 1500, rkey: 2),
            OneSidedPiece(fileOffset: 6000, bufferOffset: 5100, length: 1000, remoteAddress: 0x90000 + 3000, rkey: 2),
        ])
        #expect(s.pieces.reduce(0) { $0 + $1.length } == 6000)
    }

    @Test func durableAndVeryLargeDirectIOsAreAFewWorkRequestsInFlight() {
        let K = 1 << 10, M = 1 << 20
        func limit(_ n: Int, depth: Int = 16, durable: Bool = false) -> Int {
            LayoutPlan.directPieceLimit(length: n, queueDepth: depth, maxPiece: M, durable: durable)
        }
        // Up to 4 MiB, an I/O that need not be durable is one work request (rounded up to a
        // page: split() rounds limits down to its alignment).
        #expect(limit(4 * K) == 4 * K)
        #expect(limit(300_000) == 303_104)
        #expect(limit(M) == M)
        #expect(limit(4 * M) == 4 * M)
        // Larger: 1 MiB pieces, pipelined.
        #expect(limit(4 * M + 4096) == M)
        #expect(limit(16 * M) == M)
        // Durable (WRITE + FLUSH chains) from twice 256 KiB: about four pieces, none under
        // 256 KiB or over 1 MiB, whole pages.
        #expect(limit(256 * K, durable: true) == 256 * K)
        #expect(limit(512 * K - 4096, durable: true) == 512 * K - 4096)
        #expect(limit(512 * K, durable: true) == 256 * K)
        #expect(limit(M, durable: true) == 256 * K)
        #expect(limit(M + 1, durable: true) == 260 * K)  // four pieces, not a fifth of one byte
        #expect(limit(3 * M / 2, durable: true) == 384 * K)
        #expect(limit(4 * M, durable: true) == M)
        // A queue depth of 1 asks for one at a time: one work request; of 2, two pieces.
        #expect(limit(16 * M, depth: 1) == 16 * M)
        #expect(limit(3 << 30, depth: 1) == 1 << 30)  // one work request stays under rxe's 2 GiB
        #expect(limit(4 * M, depth: 1, durable: true) == 4 * M)
        #expect(limit(M, depth: 2, durable: true) == 512 * K)
        // The pieces split() then makes: a durable 1 MiB write inside one extent is four
        // 256 KiB WRITE + FLUSH chains.
        let e = LayoutExtent(fileOffset: 0, length: UInt64(8 * M), remoteAddress: 1 << 30, rkey: 7)
        let pieces = LayoutPlan.split(offset: 0, length: M, extents: [e], maxPiece: limit(M, durable: true), alignment: 4096).pieces
        #expect(pieces.map(\.length) == [256 * K, 256 * K, 256 * K, 256 * K])
        #expect(pieces.map(\.bufferOffset) == [0, 256 * K, 512 * K, 768 * K])
    }

    @Test func gapsBetweenAndAroundExtentsGoTwoSided() {
        let extents = [extent(4096, 4096, 0xA000, 5), extent(12288, 4096, 0xB000, 6)]
        let s = LayoutPlan.split(offset: 0, length: 20000, extents: extents, maxPiece: 1 << 20)
        #expect(s.pieces.map(\.fileOffset) == [4096, 12288])
        #expect(s.gaps == [Chunk(fileOffset: 0, bufferOffset: 0, length: 4096),
                           Chunk(fileOffset: 8192, bufferOffset: 8192, length: 4096),
                           Chunk(fileOffset: 16384, bufferOffset: 16384, length: 20000 - 16384)])
        let none = LayoutPlan.split(offset: 100, length: 50, bufferOffset: 7, extents: [], maxPiece: 10)
        #expect(none.pieces.isEmpty && none.gaps == [Chunk(fileOffset: 100, bufferOffset: 7, length: 50)])
        #expect(LayoutPlan.covers(extents, 4096, 8192))
        #expect(!LayoutPlan.covers(extents, 4096, 8193))
        #expect(LayoutPlan.covers([extent(0, 10, 1, 1), extent(10, 10, 2, 2)], 5, 20))
        #expect(!LayoutPlan.covers([], 0, 1))
    }

    @Test func coalesceJoinsOnlyContinuousChunks() {
        let chunks = [Chunk(fileOffset: 10, bufferOffset: 10, length: 5), Chunk(fileOffset: 0, bufferOffset: 0, length: 10),
                      Chunk(fileOffset: 20, bufferOffset: 20, length: 5), Chunk(fileOffset: 25, bufferOffset: 99, length: 1)]
        #expect(LayoutPlan.coalesce(chunks) == [Chunk(fileOffset: 0, bufferOffset: 0, length: 15),
                                                Chunk(fileOffset: 20, bufferOffset: 20, length: 5),
                                                Chunk(fileOffset: 25, bufferOffset: 99, length: 1)])
    }

    @Test func dirtyRangesMergeOverlappingAndTouching() {
        var d = DirtyRanges()
        #expect(d.isEmpty && d.end == 0)
        d.insert(offset: 100, length: 50)
        d.insert(offset: 0, length: 10)
        d.insert(offset: 300, length: 10)
        #expect(d.ranges == [ByteRange(offset: 0, length: 10), ByteRange(offset: 100, length: 50), ByteRange(offset: 300, length: 10)])
        d.insert(offset: 10, length: 90)  // touches both neighbours
        #expect(d.ranges == [ByteRange(offset: 0, length: 150), ByteRange(offset: 300, length: 10)])
        d.insert(offset: 140, length: 200)  // overlaps into the last
        #expect(d.ranges == [ByteRange(offset: 0, length: 340)])
        d.insert(offset: 5, length: 0)
        #expect(d.byteCount == 340 && d.end == 340)
        let taken = d.removeAll()
        #expect(d.isEmpty && taken.byteCount == 340)
        // Many out-of-order pieces of a pipelined write end as one range.
        var p = DirtyRanges()
        for i in [3, 0, 2, 5, 1, 4] { p.insert(offset: UInt64(i) << 20, length: 1 << 20) }
        #expect(p.ranges == [ByteRange(offset: 0, length: 6 << 20)])
    }

    @Test func commitRequestsCarryTheNewSizeLastAndAtMost64Ranges() {
        let sid = LayoutStateid(id: 9, seqid: 2)
        #expect(CommitPlan.requests(stateid: sid, dirty: DirtyRanges(), knownSize: 0).isEmpty)
        let one = CommitPlan.requests(stateid: sid, dirty: DirtyRanges([ByteRange(offset: 0, length: 4096)]), knownSize: 0)
        #expect(one == [LayoutCommitRequest(stateid: sid, newSize: 4096, ranges: [ByteRange(offset: 0, length: 4096)])])
        // Inside the known size: no NEW_SIZE.
        let inside = CommitPlan.requests(stateid: sid, dirty: DirtyRanges([ByteRange(offset: 0, length: 10)]), knownSize: 100)
        #expect(inside.first?.newSize == nil)
        var many = DirtyRanges()
        for i in 0..<100 { many.insert(offset: UInt64(i) * 8192, length: 4096) }
        let batches = CommitPlan.requests(stateid: sid, dirty: many, knownSize: 0)
        #expect(batches.map(\.ranges.count) == [64, 36])
        #expect(batches.map(\.newSize) == [nil, 99 * 8192 + 4096])
        #expect(batches.flatMap(\.ranges) == many.ranges)
        // Every request encodes (ranges valid, count within the codec's limit).
        for b in batches { #expect(throws: Never.self) { _ = try Message.request(.layoutCommit(b), messageId: 1, sessionId: 1).encode() } }
    }

    @Test func refusalsDecideRetryOrFallback() {
        let tryLater = ClientError.status(.tryLater, .layoutGet, retryAfterMs: 20)
        #expect(LayoutRefusal.decide(tryLater, attempt: 0, maxAttempts: 3) == .retry(afterMilliseconds: 20))
        #expect(LayoutRefusal.decide(tryLater, attempt: 1, maxAttempts: 3) == .retry(afterMilliseconds: 20))
        #expect(LayoutRefusal.decide(tryLater, attempt: 2, maxAttempts: 3) == .twoSidedFor(milliseconds: 100))
        let slow = ClientError.status(.tryLater, .layoutGet, retryAfterMs: 5000)
        #expect(LayoutRefusal.decide(slow, attempt: 0, maxAttempts: 3) == .twoSidedFor(milliseconds: 5000))
        #expect(LayoutRefusal.decide(.status(.notSupported, .layoutGet), attempt: 0, maxAttempts: 3)
                == .twoSidedForFile(reason: "LAYOUTGET: \(Status.notSupported.summary)"))
        if case .twoSidedForFile = LayoutRefusal.decide(.status(.accessDenied, .layoutGet), attempt: 0, maxAttempts: 3) {} else {
            Issue.record("ACCESS_DENIED should disable layouts for the file")
        }
        if case .twoSidedForFile = LayoutRefusal.decide(.status(.readOnly, .layoutGet), attempt: 0, maxAttempts: 3) {} else {
            Issue.record("READ_ONLY should disable layouts for the file")
        }
        #expect(LayoutRefusal.decide(.status(.tooMany, .layoutGet), attempt: 0, maxAttempts: 3) == .twoSidedThisIO)
        #expect(LayoutRefusal.decide(.status(.invalidArgument, .layoutGet), attempt: 0, maxAttempts: 3) == .twoSidedThisIO)
        #expect(LayoutRefusal.decide(.status(.staleFile, .layoutGet), attempt: 0, maxAttempts: 3) == .fail)
        #expect(LayoutRefusal.decide(.transport("gone"), attempt: 0, maxAttempts: 3) == .fail)
    }

    @Test func usageNamesThePathUsed() {
        #expect(DataPathUsage(oneSidedBytes: 5, defaultPath: "x").description == "one-sided via layout")
        #expect(DataPathUsage(twoSidedBytes: 5, defaultPath: "x").description == "two-sided")
        #expect(DataPathUsage(defaultPath: "two-sided").description == "two-sided")
        let mixed = DataPathUsage(oneSidedBytes: 1, twoSidedBytes: 2, fallbackReason: "LAYOUTGET: try later", defaultPath: "x")
        #expect(mixed.description == "one-sided via layout (1 bytes) and two-sided (2 bytes) (fell back to two-sided: LAYOUTGET: try later)")
    }

    @Test func layoutLossIsAConnectionFailureThatSaysWhatWasLost() {
        let e = ClientError.layoutLost(reason: "the layout was revoked", unwrittenBytes: 4096)
        #expect(CommandExitCode(for: e) == .connection)
        #expect(e.description.contains("4096 bytes reported written were not written"))
    }

    @Test func alignedSplitMovesTheUnalignedHeadTwoSided() {
        let extents = [LayoutExtent(fileOffset: 0, length: 1 << 20, remoteAddress: 0x7000_0000, rkey: 9)]
        let s = LayoutPlan.split(offset: 5000, length: 20000, bufferOffset: 3, extents: extents, maxPiece: 10000, alignment: 4096)
        #expect(s.gaps == [Chunk(fileOffset: 5000, bufferOffset: 3, length: 8192 - 5000)])
        // maxPiece 10000 rounds down to 8192, so every piece stays aligned.
        #expect(s.pieces.map(\.fileOffset) == [8192, 16384, 24576])
        #expect(s.pieces.map(\.length) == [8192, 8192, 25000 - 24576])
        #expect(s.pieces.allSatisfy { $0.remoteAddress % 4096 == 0 })
        #expect(s.pieces[0].bufferOffset == 3 + 8192 - 5000)
        // Inside one page: all of it two-sided. Aligned already: no gap.
        let small = LayoutPlan.split(offset: 4100, length: 100, extents: extents, maxPiece: 1 << 20, alignment: 4096)
        #expect(small.pieces.isEmpty && small.gaps == [Chunk(fileOffset: 4100, bufferOffset: 0, length: 100)])
        let aligned = LayoutPlan.split(offset: 8192, length: 777, extents: extents, maxPiece: 1 << 20, alignment: 4096)
        #expect(aligned.gaps.isEmpty && aligned.pieces.map(\.length) == [777])
    }
}
