import DaxsharePmem
import DaxshareVerbs
@testable import DaxshareServer
import Foundation
import Synchronization
import Testing

/// Size changes and the large READs the NIC takes from a file's mapping (`NICReads`,
/// `SharedFile.mappedRange`): on fsdax only (`DAXSHARE_PMEM`, run in the testbed). Serialized:
/// each test holds a wait to a deadline, which a neighbour's busy loop could starve.
@Suite(.serialized) struct NICReadsTests {
    let page = PmemMapping.pageSize

    /// A file of `pages` pages of `fill` under `base`, handed to `body` on fsdax only (elsewhere
    /// the mapping is not MAP_SYNC and the NIC takes nothing from it), removed after.
    private func onPmem(_ base: String, pages: Int, of fill: Character,
                        _ body: (OpenFile) async throws -> Void) async throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        guard file.shared.isPmem else { return }
        try file.write(String(repeating: fill, count: pages * page), at: 0)
        try await body(file)
    }

    /// A shrink waits for the large READs the NIC is taking from the mapping (it would cut
    /// the pages under them), and offers the mapping to no new READ while it waits.
    @Test(arguments: fileSystemsUnderTest)
    func aShrinkWaitsForTheReadsTheNICTakesFromTheMapping(base: String) async throws {
        try await onPmem(base, pages: 4, of: "b") { file in
            var held = try file.mappedRange(at: 0, count: 4 * page)
            #expect(held?.read != nil)
            final class Flag: Sendable { let raised = Atomic<Bool>(false) }
            let released = Flag(), shrunk = Flag()
            let shrink = Task.detached { () throws -> Bool in
                defer { shrunk.raised.store(true, ordering: .releasing) }
                try file.setSize(page)
                return released.raised.load(ordering: .acquiring)
            }
            // Until the shrink is seen waiting; a shrink that went ahead ends the loop too (its
            // wait is bounded), and the expectation below then fails instead of the test hanging.
            while try file.mappedRange(at: 0, count: page) != nil, !shrunk.raised.load(ordering: .acquiring) {
                await Task.yield()
            }
            released.raised.store(true, ordering: .releasing)
            held = nil  // the READ's WRITEs are done
            #expect(try await shrink.value, "the shrink went ahead before the READ was done")
            #expect(try file.status().size == Int64(page))
            #expect(try file.mappedRange(at: 0, count: 4 * page)?.count == page, "offered again after the shrink")
            _ = held
        }
    }

    /// A client's shrink (`afterNICReads`: SET_SIZE, OPEN+TRUNCATE) waits for the NIC's READs
    /// by suspending. On one event loop, which runs both the request and the completion that
    /// ends the READ, the completion still runs and the shrink goes on after it; a wait that
    /// blocked the loop's thread would sit out its whole deadline (`nicReadsWait`), stalling
    /// every connection on that loop, and then cut the pages from under the READ.
    @Test(arguments: fileSystemsUnderTest)
    func aClientsShrinkWaitsForTheNICsReadsWithoutBlockingItsLoop(base: String) async throws {
        try await onPmem(base, pages: 4, of: "c") { file in
            // @unchecked: touched by tasks of the one loop thread only, one after another.
            final class Held: @unchecked Sendable { var range: MappedRange? }
            let held = Held()
            held.range = try file.mappedRange(at: 0, count: 4 * page)
            #expect(held.range?.read != nil)
            let loop = EventLoop(name: "test-nicreads")
            let started = ContinuousClock.now
            let shrink = Task(executorPreference: loop) { () throws -> Bool in
                try await file.shared.afterNICReads { () throws(FileSystemError) in try file.setSize(page) }
                return held.range == nil  // the READ ended first
            }
            let completion = Task(executorPreference: loop) {
                // The READ's completion, polled by the same loop once the shrink is seen waiting
                // (or done: then the expectation below fails instead of the test hanging).
                while try file.mappedRange(at: 0, count: page) != nil, ContinuousClock.now - started < .seconds(5) {
                    await Task.yield()
                }
                held.range = nil
            }
            try await completion.value
            #expect(try await shrink.value, "the shrink went ahead before the READ was done: it sat out its deadline")
            #expect(try file.status().size == Int64(page))
        }
    }

    /// When the last layout past the visible size ends, the file is trimmed back to the visible
    /// size without waiting for the NIC's READs from the mapping: they never reach past the
    /// visible size, and the trim cuts only beyond it. (It used to wait for them, a whole
    /// second on the event loop that would poll their completions.) The READ's bytes stay.
    @Test(arguments: fileSystemsUnderTest)
    func aPastEndLayoutsEndTrimsWithoutWaitingForTheNICsReads(base: String) async throws {
        try await onPmem(base, pages: 2, of: "d") { file in
            _ = try file.shared.prepareLayout(start: 2 * page, end: 4 * page, writable: true)
            var held = try file.mappedRange(at: 0, count: 2 * page)
            #expect(held?.count == 2 * page)
            let started = ContinuousClock.now
            file.shared.layoutEnded(pastEnd: true)
            #expect(ContinuousClock.now - started < SharedFile.nicReadsWait / 2, "the trim waited for the READ")
            #expect(try file.shared.file.size() == 2 * page)  // trimmed back to the visible size
            #expect(try file.read(at: 0, count: 2 * page) == Array(repeating: UInt8(ascii: "d"), count: 2 * page))
            held = nil
            _ = held
        }
    }
}
