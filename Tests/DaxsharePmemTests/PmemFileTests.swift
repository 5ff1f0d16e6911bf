import DaxsharePmem
import Foundation
import SystemPackage
import Testing

@Suite struct PmemFileTests {
    let page = PmemMapping.pageSize

    @Test func openReportsErrnoTyped() {
        #expect(throws: PmemError.system(call: "open", errno: .noSuchFileOrDirectory)) {
            _ = try PmemFile.open("/tmp/daxshare-does-not-exist/x", .readOnly)
        }
    }

    @Test func allocateExtendsWithZeroedBlocks() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: 4 * page)
        let status = try file.status()
        #expect(status.size == Int64(4 * page))
        #expect(status.sizeAllocated >= Int64(4 * page))
        let mapping = try file.map(length: 4 * page)
        #expect(try read(mapping, at: 0, count: 4 * page).allSatisfy { $0 == 0 })
        // Allocating over existing data keeps it.
        try write("keep", to: mapping, at: page)
        try file.allocate(offset: 0, length: 2 * page)
        #expect(try read(mapping, at: page, count: 4) == Array("keep".utf8))
        try file.allocate(offset: 0, length: 0)
    }

    @Test func punchHoleReadsBackZerosAndKeepsSize() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: 4 * page)
        let mapping = try file.map(length: 4 * page)
        let ones = [UInt8](repeating: 1, count: 4 * page)
        try ones.withUnsafeBytes { try mapping.copyIn($0, at: 0, persist: true) }
        let before = try file.status().sizeAllocated
        try file.punchHole(offset: page, length: 2 * page)
        #expect(try file.size() == 4 * page)
        #expect(try file.status().sizeAllocated <= before - Int64(2 * page))
        #expect(try read(mapping, at: page, count: 2 * page).allSatisfy { $0 == 0 })
        #expect(try read(mapping, at: 0, count: page).allSatisfy { $0 == 1 })
        #expect(try read(mapping, at: 3 * page, count: page).allSatisfy { $0 == 1 })
        // A partial block is zeroed rather than freed.
        try file.punchHole(offset: 10, length: 5)
        #expect(try read(mapping, at: 8, count: 9) == [1, 1, 0, 0, 0, 0, 0, 1, 1])
    }

    @Test func preadAndPwriteStopAtEndOfFileInsteadOfFaulting() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try Array("hello world".utf8).withUnsafeBytes { try file.write($0, at: 3) }
        #expect(try file.size() == 14)
        var buffer = [UInt8](repeating: 0xAA, count: 32)
        #expect(try buffer.withUnsafeMutableBytes { try file.read(at: 0, into: $0) } == 14)
        #expect(Array(buffer[0..<14]) == [0, 0, 0] + Array("hello world".utf8))
        #expect(try buffer.withUnsafeMutableBytes { try file.read(at: 100, into: $0) } == 0)
        // Cut under it by a path, as another process would: a short count, no signal.
        #expect(truncate(dir.file("f").string, 5) == 0)
        #expect(try buffer.withUnsafeMutableBytes { try file.read(at: 3, into: $0) } == 2)
        #expect(throws: PmemError.outOfBounds(offset: -1, length: 32, bound: Int.max)) {
            _ = try buffer.withUnsafeMutableBytes { try file.read(at: -1, into: $0) }
        }
        try file.close()
        #expect(throws: PmemError.closed) { _ = try buffer.withUnsafeMutableBytes { try file.read(at: 0, into: $0) } }
    }

    @Test func touchModificationTimeSetsMtimeToNow() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        var past = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(futimens(file.descriptor.rawValue, &past) == 0)
        #expect(try file.status().st_mtim.tv_sec == 1_000_000_000)
        try file.touchModificationTime()
        let status = try file.status()
        #expect(status.st_mtim.tv_sec > 1_700_000_000)
        #expect(status.st_atim.tv_sec == 1_000_000_000)  // atime left alone
    }

    /// On DAX, `synchronizeMetadataAndTimes` (fsync of a range past the end, through io_uring)
    /// leaves the pages written through a MAP_SYNC mapping writable, where `fsync(2)` writes
    /// them back and write-protects them: the next store to each faults again, and so would
    /// an RDMA WRITE through an on-demand region over the mapping (a layout). The same for
    /// `synchronizeSizeAndBlocks` against `fdatasync(2)`, after a size change. Counted as the
    /// thread's minor faults; the test is synchronous, so it stays on one thread.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DAXSHARE_PMEM"] != nil), arguments: [false, true])
    func rangedSyncsLeaveTheMappingsPagesWritable(dataSync: Bool) throws {
        let dir = TemporaryDirectory(under: ProcessInfo.processInfo.environment["DAXSHARE_PMEM"]!)
        defer { dir.remove() }
        let pages = 64
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: pages * page)
        let mapping = try file.map(length: pages * page, capacity: 2 * pages * page)
        #expect(mapping.isPmem)
        let base = try #require(mapping.baseAddress)
        func storeToEveryPage(_ value: UInt8) -> Int {
            let before = threadMinorFaults()
            for p in 0..<pages { base.storeBytes(of: value, toByteOffset: p * page + 7, as: UInt8.self) }
            return threadMinorFaults() - before
        }
        _ = storeToEveryPage(1)  // mapped and dirty
        if dataSync { try file.synchronizeMetadata() } else { try file.synchronize() }
        let afterWholeFileSync = storeToEveryPage(2)
        #expect(afterWholeFileSync >= pages / 2, "the whole-file sync left \(pages - afterWholeFileSync) of \(pages) pages writable")
        // Something for the ranged sync to commit: the size (fdatasync's share) and the times.
        try file.allocate(offset: pages * page, length: page)
        try file.touchModificationTime()
        let ranged = dataSync ? try file.synchronizeSizeAndBlocks() : try file.synchronizeMetadataAndTimes()
        #expect(ranged, "io_uring unavailable: fell back to the whole-file sync")
        let afterRangedSync = storeToEveryPage(3)
        #expect(afterRangedSync == 0, "\(afterRangedSync) of \(pages) pages faulted again")
        try mapping.persist(offset: 0, length: pages * page)
        var byte: [UInt8] = [0]
        #expect(try byte.withUnsafeMutableBytes { try file.read(at: 7, into: $0) } == 1)
        #expect(byte == [3])
        mapping.unmap()
    }

    @Test func allocateWithKeepSizeLeavesTheSize() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.setSize(10)
        try file.allocate(offset: 0, length: 4 * page, keepSize: true)
        let status = try file.status()
        #expect(status.size == 10)
        #expect(status.sizeAllocated >= Int64(4 * page))
        try file.allocate(offset: 4 * page, length: page, keepSize: false)
        #expect(try file.size() == 5 * page)
    }

    @Test func setPermissionsAndTimesThroughTheDescriptor() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.setPermissions(FilePermissions(rawValue: 0o640))
        try file.setTimes(access: timespec(tv_sec: 1_000_000_000, tv_nsec: 5), modification: timespec(tv_sec: -2, tv_nsec: 999_999_999))
        let status = try file.status()
        #expect(status.permissions.rawValue == 0o640)
        #expect(status.st_atim.tv_sec == 1_000_000_000 && status.st_atim.tv_nsec == 5)
        #expect(status.st_mtim.tv_sec == -2 && status.st_mtim.tv_nsec == 999_999_999)
        try file.close()
        #expect(throws: PmemError.closed) { try file.setPermissions(.ownerReadWrite) }
    }

    @Test func setSizeAndClose() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.setSize(12345)
        #expect(try file.size() == 12345)
        try file.setSize(7)
        #expect(try file.size() == 7)
        try file.synchronizeMetadata()
        try file.close()
        try file.close()
        // Not EBADF: after close the number may already name another file.
        #expect(throws: PmemError.closed) { try file.setSize(1) }
        #expect(throws: PmemError.closed) { _ = try file.map(length: 0) }
    }

    @Test func adoptsADescriptorAndReadsItsAccessMode() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let fd = try FileDescriptor.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        let file = try PmemFile(adopting: fd)
        #expect(file.isWritable)
        let readOnly = try PmemFile(adopting: FileDescriptor.open(dir.file("f"), .readOnly))
        #expect(!readOnly.isWritable)
    }
}

/// The calling thread's minor page faults so far (`minflt`, the 10th field of
/// /proc/thread-self/stat, counted after the command name's closing parenthesis).
func threadMinorFaults() -> Int {
    guard let stat = try? String(contentsOfFile: "/proc/thread-self/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")")
    else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return fields.count > 7 ? Int(fields[7]) ?? 0 : 0
}
