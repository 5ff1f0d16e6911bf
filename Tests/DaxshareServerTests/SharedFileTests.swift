import DaxsharePmem
@testable import DaxshareServer
import Foundation
import Glibc
import Synchronization
import SystemPackage
import Testing

/// Layouts' side of the shared file: allocation, the visible size past end of
/// file (PROTOCOL.md §5.7), and what LAYOUTCOMMIT and write-through make durable.
@Suite struct SharedFileTests {
    let page = PmemMapping.pageSize

    /// Blocks the file really holds (st_blocks × 512).
    private func allocated(_ file: OpenFile) throws -> Int64 { Int64(try file.shared.file.status().sizeAllocated) }

    /// An RW layout far past end of file allocates its own range only (issue
    /// 13: one at 512 MiB allocated 512 MiB; one at 1 TiB failed NO_SPACE).
    @Test(arguments: fileSystemsUnderTest, [512 << 20, 1 << 40])
    func layoutFarPastEndAllocatesOnlyItsOwnRange(base: String, offset: Int) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        if base != "/tmp" { #expect(file.shared.isPmem, "the fsdax mount maps MAP_SYNC") }
        try file.write("head", at: 0)
        let (mapping, pastEnd) = try file.shared.prepareLayout(start: offset, end: offset + 4 * page, writable: true)
        #expect(pastEnd)
        #expect(mapping.length >= offset + 4 * page)
        #expect(try file.shared.file.size() == offset + 4 * page)  // extended sparsely to the layout's end
        #expect(try allocated(file) <= Int64(64 * page))  // the layout's 4 pages plus the head, not its offset
        #expect(try file.status().size == 4)  // the visible size stays
        var zeros = [UInt8](repeating: 0xAA, count: 4 * page)
        #expect(try zeros.withUnsafeMutableBytes { try file.shared.file.read(at: offset, into: $0) } == 4 * page)
        #expect(zeros.allSatisfy { $0 == 0 })
        file.shared.layoutEnded(pastEnd: true)
        #expect(try file.shared.file.size() == 4)  // trimmed back
        #expect(try file.readString(at: 0, count: 10) == "head")
    }

    /// A large two-sided READ's bytes in the mapping (`mappedRange`): on pmem, the file's bytes
    /// at their address, clipped to end of file, the mapping grown in place when the file grew
    /// under it (pwrite does not grow it) and to the visible size under a past-end layout; off
    /// pmem none (pread then); past end of file nothing to send, and end of file.
    @Test(arguments: fileSystemsUnderTest)
    func mappedRangeHoldsTheFilesBytesUpToItsEnd(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        let bytes = (0..<(3 * page + 100)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        try bytes.withUnsafeBytes { try file.write($0, at: 0) }
        let past = try #require(try file.mappedRange(at: UInt64(4 * page), count: page))
        #expect(past.count == 0 && past.endOfFile && past.address == nil)
        guard file.shared.isPmem else {
            #expect(try file.mappedRange(at: 0, count: page) == nil, "a page-cache mapping is not offered")
            return
        }
        let generation = file.shared.mappingGeneration
        let range = try #require(try file.mappedRange(at: UInt64(page + 1), count: 8 * page))
        #expect(range.count == 2 * page + 99 && range.endOfFile)
        #expect(range.mapping.length >= 3 * page + 100, "grown to the file's size")
        #expect(file.shared.mappingGeneration == generation, "in place: layouts' regions keep their addresses")
        let seen = Array(UnsafeRawBufferPointer(start: try #require(range.address), count: range.count))
        #expect(seen == Array(bytes[(page + 1)...]))
        let middle = try #require(try file.mappedRange(at: 10, count: page))
        #expect(middle.count == page && !middle.endOfFile)

        // Under a past-end layout the file is longer than its visible size, which READ honours.
        _ = try file.shared.prepareLayout(start: 4 * page, end: 6 * page, writable: true)
        let visible = try #require(try file.mappedRange(at: UInt64(3 * page), count: 8 * page))
        #expect(visible.count == 100 && visible.endOfFile)
        file.shared.layoutEnded(pastEnd: true)
    }

    /// A hole, or a preallocated (unwritten) range, is never offered to the NIC: its fault
    /// would map the zero page, which ext4 DAX may keep mapped after a write fills the page.
    @Test(arguments: fileSystemsUnderTest)
    func mappedRangeStopsAtHolesAndPreallocatedRanges(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        guard file.shared.isPmem else { return }
        try file.write(String(repeating: "a", count: page), at: 0)
        try file.write("tail", at: 3 * page)  // [page, 3 × page) a hole
        let head = try #require(try file.mappedRange(at: 0, count: 4 * page))
        #expect(head.count == page && !head.endOfFile, "up to the hole")
        #expect(try file.mappedRange(at: UInt64(page + 5), count: page) == nil, "inside the hole: pread")
        let tail = try #require(try file.mappedRange(at: UInt64(3 * page), count: page))
        #expect(tail.count == 4 && tail.endOfFile)

        try file.allocate(offset: 4 * page, length: 2 * page)  // unwritten blocks
        try file.write("end", at: 6 * page)
        #expect(try file.mappedRange(at: UInt64(4 * page), count: page) == nil, "preallocated: pread")
        let last = try #require(try file.mappedRange(at: UInt64(6 * page), count: page))
        #expect(last.count == 3 && last.endOfFile)
    }

    /// SET_SIZE acts on the visible size while a layout reaches past it.
    @Test(arguments: fileSystemsUnderTest)
    func setSizeMovesTheVisibleSizeUnderAPastEndLayout(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        let ones = [UInt8](repeating: 1, count: 2 * page)
        try ones.withUnsafeBytes { try file.write($0, at: 0) }
        _ = try file.shared.prepareLayout(start: 2 * page, end: 4 * page, writable: true)
        #expect(try file.status().size == Int64(2 * page))

        try file.setSize(page)  // shrink below the visible size
        #expect(try file.status().size == Int64(page))
        #expect(try file.shared.file.size() == 4 * page)  // the layout stays backed
        #expect(try file.read(at: page, count: 1) == [])
        #expect(fixture.savedVisibleSize("f") == page)

        try file.setSize(3 * page)  // grow: the bytes cut off come back as zeros
        #expect(try file.status().size == Int64(3 * page))
        #expect(try file.read(at: 0, count: page).allSatisfy { $0 == 1 })
        #expect(try file.read(at: page, count: 2 * page) == [UInt8](repeating: 0, count: 2 * page))
        #expect(fixture.savedVisibleSize("f") == 3 * page)

        try file.setSize(6 * page)  // past the file itself
        #expect(try file.status().size == Int64(6 * page))
        #expect(try file.shared.file.size() == 6 * page)
        file.shared.layoutEnded(pastEnd: true)
        #expect(try file.status().size == Int64(6 * page))
        #expect(try file.shared.file.size() == 6 * page)
        #expect(fixture.savedVisibleSize("f") == nil)
    }

    /// The visible size past end of file lives in an extended attribute, which
    /// fdatasync does not write: a write-through or a LAYOUTCOMMIT that moves
    /// it must fsync.
    @Test(arguments: fileSystemsUnderTest)
    func writeThroughPastTheVisibleSizeFsyncs(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        try file.write("abc", at: 0)
        _ = try file.shared.prepareLayout(start: 0, end: 4 * page, writable: true)
        try file.flush()  // nothing pending from the layout's own bookkeeping
        let before = file.shared.fullSynchronizations.load(ordering: .relaxed)
        try file.write("ab", at: 1, writeThrough: true)  // inside the visible size: fdatasync is enough
        #expect(file.shared.fullSynchronizations.load(ordering: .relaxed) == before)
        try file.write("def", at: page, writeThrough: true)
        #expect(try file.status().size == Int64(page + 3))
        #expect(fixture.savedVisibleSize("f") == page + 3)
        #expect(file.shared.fullSynchronizations.load(ordering: .relaxed) == before + 1)

        let size = try file.shared.commitLayout(ranges: [], newSize: 2 * page)
        #expect(size == 2 * page)
        #expect(file.shared.fullSynchronizations.load(ordering: .relaxed) == before + 2)
        file.shared.layoutEnded(pastEnd: true)
    }

    /// LAYOUTCOMMIT sets mtime and ctime (PROTOCOL.md §5.3): a NIC's stores don't.
    @Test(arguments: fileSystemsUnderTest)
    func layoutCommitUpdatesModificationTime(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        try file.write(String(repeating: "x", count: page), at: 0)
        _ = try file.shared.prepareLayout(start: 0, end: page, writable: true)
        var past = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(futimens(file.shared.descriptor.rawValue, &past) == 0)
        let stale = try file.status()
        #expect(stale.modificationTime == 1_000_000_000 * 1_000_000_000)

        _ = try file.shared.commitLayout(ranges: [(offset: 0, length: 100)], newSize: nil)
        let after = try file.status()
        #expect(after.modificationTime > 1_700_000_000 * 1_000_000_000)
        #expect(after.changeTime >= after.modificationTime)

        // Nothing written, nothing grown: the times stay.
        #expect(futimens(file.shared.descriptor.rawValue, &past) == 0)
        _ = try file.shared.commitLayout(ranges: [], newSize: 10)
        #expect(try file.status().modificationTime == 1_000_000_000 * 1_000_000_000)
    }

    /// FLUSH and LAYOUTCOMMIT flush CPU caches through the mapping (on pmem) only up to
    /// the size fstat reports: a page another process cut off must not be touched.
    @Test(arguments: fileSystemsUnderTest)
    func flushAndCommitAfterALocalTruncateStayInsideTheFile(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        let ones = [UInt8](repeating: 1, count: 8 * page)
        try ones.withUnsafeBytes { try file.write($0, at: 0) }
        let (mapping, pastEnd) = try file.shared.prepareLayout(start: 0, end: 8 * page, writable: true)
        #expect(!pastEnd)
        #expect(mapping.length == 8 * page)
        #expect(truncate(fixture.exportPath + "/f", off_t(page)) == 0)
        try file.flush()
        try file.flush(offset: 0, length: UInt64(8 * page))
        #expect(try file.shared.commitLayout(ranges: [(offset: 0, length: 8 * page)], newSize: nil) == page)
        #expect(try file.read(at: 0, count: 8 * page) == [UInt8](repeating: 1, count: page))
    }

    /// A layout that stays inside the file allocates nothing and is not past end.
    @Test(arguments: fileSystemsUnderTest)
    func layoutInsideTheFileIsNotPastEnd(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        try file.setSize(8 * page)
        let (_, pastEnd) = try file.shared.prepareLayout(start: 2 * page, end: 4 * page, writable: true)
        #expect(!pastEnd)
        #expect(failure { try file.shared.prepareLayout(start: 4 * page, end: 2 * page, writable: true) } == .invalidArgument)
        #expect(failure { try file.shared.prepareLayout(start: -1, end: 2 * page, writable: true) } == .invalidArgument)
    }

    /// ALLOCATE acts on the visible size while a layout reaches past it, as SET_SIZE does: the
    /// file is already long enough for the layout, and only what passes the visible size moves it.
    @Test(arguments: fileSystemsUnderTest)
    func allocateMovesTheVisibleSizeUnderAPastEndLayout(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        let ones = [UInt8](repeating: 1, count: 2 * page)
        try ones.withUnsafeBytes { try file.write($0, at: 0) }
        _ = try file.shared.prepareLayout(start: 2 * page, end: 4 * page, writable: true)
        #expect(try file.shared.file.size() == 4 * page)

        try file.allocate(offset: 0, length: page)  // inside the visible size
        try file.allocate(offset: 2 * page, length: page, keepSize: true)  // past it, kept
        #expect(try file.status().size == Int64(2 * page))
        #expect(fixture.savedVisibleSize("f") == 2 * page)

        try file.allocate(offset: 2 * page, length: page)  // past it: the visible size grows
        #expect(try file.status().size == Int64(3 * page))
        #expect(try file.shared.file.size() == 4 * page)  // the file itself was long enough
        #expect(fixture.savedVisibleSize("f") == 3 * page)
        #expect(try file.read(at: 0, count: 2 * page) == ones)

        try file.allocate(offset: 5 * page, length: page)  // past the file itself
        #expect(try file.status().size == Int64(6 * page))
        #expect(try file.shared.file.size() == 6 * page)
        file.shared.layoutEnded(pastEnd: true)
        #expect(try file.status().size == Int64(6 * page))
        #expect(fixture.savedVisibleSize("f") == nil)
    }

    /// Counts the server's own changes routed to the file's layout state.
    final class CountingOwnChanges: OwnMetadataChanges {
        let count = Mutex(0)
        func ownChange<T, E: Error>(expectingUnlink: Bool, _ change: () throws(E) -> T) throws(E) -> T {
            count.withLock { $0 += 1 }
            return try change()
        }
    }

    /// SET_ATTRIBUTES of an open file, by file id or by a path naming it, goes through the
    /// shared descriptor as the server's own change (a delegation is given up around it, so its
    /// layouts are not recalled) and is fsync'd; ALLOCATE needs no such care (fallocate breaks
    /// neither a lease nor a delegation).
    @Test func setAttributesOfAnOpenFileAreTheServersOwnChangeThroughItsDescriptor() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "abc")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let handle = try table.open("f", in: export, options: readWrite)
        defer { handle.close() }
        let changes = CountingOwnChanges()
        handle.shared.routeOwnChanges(through: changes)
        let syncs = handle.shared.fullSynchronizations.load(ordering: .relaxed)

        let byId = try handle.setAttributes(FileAttributeChange(permissions: FilePermissions(rawValue: 0o604)))
        #expect(byId.permissions.rawValue == 0o604)
        let mtime: Int64 = 1_234_567_890_000_000_000
        let byPath = try table.setAttributes(of: "f", in: export, FileAttributeChange(modificationTime: .at(nanosecondsSinceEpoch: mtime)))
        #expect(byPath.modificationTime == mtime && byPath.permissions.rawValue == 0o604)
        #expect(changes.count.withLock { $0 } == 2)
        #expect(handle.shared.fullSynchronizations.load(ordering: .relaxed) == syncs + 2)
        #expect(table.handleCount(for: handle.shared.key) == 1)  // the path's share was given back

        try handle.allocate(offset: 0, length: 4096)
        #expect(changes.count.withLock { $0 } == 2)
        #expect(try handle.status().size == 4096)
    }
}

extension ExportFixture {
    /// The visible size the server saved in the file's extended attribute, if any.
    func savedVisibleSize(_ path: String) -> Int? {
        guard let fd = try? FileDescriptor.open(FilePath(exportPath + "/" + path), .readOnly) else { return nil }
        defer { try? fd.close() }
        return SharedFile.savedVisibleSize(fd)
    }
}
