import DaxsharePmem
import DaxshareServer
import Foundation
import SystemPackage
import Testing

@Suite struct FileOperationTests {
    let page = PmemMapping.pageSize

    @Test(arguments: fileSystemsUnderTest)
    func writeThenReadBack(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }

        try file.write("hello", at: 0)
        try file.write(" world", at: 5, writeThrough: true)
        #expect(try file.readString(at: 0, count: 100) == "hello world")  // short read at end of file
        #expect(try file.read(at: 11, count: 10) == [])  // at end of file
        #expect(try file.read(at: 1000, count: 10) == [])  // past it
        #expect(try file.readString(at: 6, count: 5) == "world")

        // A write past the end grows the file; the gap reads as zeros.
        try file.write("far", at: 3 * page + 1)
        #expect(try file.status().size == Int64(3 * page + 4))
        #expect(try file.read(at: 11, count: 3 * page - 10).allSatisfy { $0 == 0 })
        #expect(try file.readString(at: 3 * page + 1, count: 3) == "far")
        try file.flush()
        try file.flush(offset: 5, length: 3)
        try file.flush(offset: 100 * page, length: 0)  // past the end: nothing to do
        #expect(fixture.contents("f")?.hasPrefix("hello world") == true)
        var buffer = [UInt8](repeating: 0, count: 4)
        let result = try buffer.withUnsafeMutableBytes { try file.read(at: 3 * page, into: $0) }
        #expect(result == ReadResult(count: 4, endOfFile: true))
        let middle = try buffer.withUnsafeMutableBytes { try file.read(at: 0, into: $0) }
        #expect(middle == ReadResult(count: 4, endOfFile: false))
        #expect(failure { try file.write("x", at: -1) } == .invalidArgument)
        #expect(failure { try file.read(at: -1, count: 1) } == .invalidArgument)
    }

    /// A READ into a buffer with a byte to spare learns end of file from that byte (no fstat):
    /// the same answers as the exact-size read, at every place in the file, and after another
    /// process truncated it.
    @Test(arguments: fileSystemsUnderTest)
    func aReadWithAByteToSpareAnswersAsTheExactRead(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        let size = 2 * page + 100
        try [UInt8](repeating: 9, count: size).withUnsafeBytes { try file.write($0, at: 0) }
        var spare = [UInt8](repeating: 0, count: page + 1)
        var exact = [UInt8](repeating: 0, count: page)
        func both(_ offset: Int, _ count: Int) throws -> ReadResult {
            let withSpare = try spare.withUnsafeMutableBytes { try file.read(at: UInt64(offset), count: count, into: $0) }
            let exactly = try exact.withUnsafeMutableBytes {
                try file.read(at: UInt64(offset), into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]))
            }
            #expect(withSpare == exactly, "at \(offset), \(count) bytes")
            #expect(spare[0..<withSpare.count] == exact[0..<exactly.count])
            return withSpare
        }
        #expect(try both(0, page) == ReadResult(count: page, endOfFile: false))
        #expect(try both(size - page, page) == ReadResult(count: page, endOfFile: true))  // ends at end of file
        #expect(try both(size - 10, page) == ReadResult(count: 10, endOfFile: true))  // cut short there
        #expect(try both(size, page) == ReadResult(count: 0, endOfFile: true))
        #expect(try both(size + page, page) == ReadResult(count: 0, endOfFile: true))
        #expect(try both(5, 0) == ReadResult(count: 0, endOfFile: false))
        #expect(truncate(fixture.exportPath + "/f", page) == 0)
        #expect(try both(page - 1, page) == ReadResult(count: 1, endOfFile: true))
        #expect(try both(page / 2, page / 2) == ReadResult(count: page / 2, endOfFile: true))
        // Offsets near 2^64 (a client's to choose): nothing read, no trap, with a byte to spare too.
        for offset in [UInt64(Int.max) - UInt64(page), UInt64(Int.max), 1 << 63, UInt64.max] {
            let result = try spare.withUnsafeMutableBytes { try file.read(at: offset, count: page, into: $0) }
            #expect(result == ReadResult(count: 0, endOfFile: true), "at \(offset)")
        }
    }

    @Test func writeThroughHandleMakesEveryWriteDurable() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let file = try table.open("f", in: export, options: FileOpenOptions(write: true, create: true, writeThrough: true))
        defer { file.close() }
        #expect(file.writeThrough)
        try file.write("durable", at: 10)
        #expect(fixture.contents("f") == String(repeating: "\0", count: 10) + "durable")
    }

    @Test(arguments: fileSystemsUnderTest)
    func largeWriteSpanningPagesRoundTrips(base: String) throws {
        let (fixture, file) = try newFile("big", under: base)
        defer { file.close(); fixture.remove() }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(5 * page + 123)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try bytes.withUnsafeBytes { try file.write($0, at: 77, writeThrough: true) }
        #expect(try file.read(at: 77, count: bytes.count) == bytes)
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: fixture.exportPath + "/big"))
        #expect(Array(onDisk[77...]) == bytes)
    }

    @Test func growingPastTheReservationRemapsAndKeepsData() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        let export = try fixture.export()
        let table = FileTable(minimumReservation: 2 * page, logger: quietLogger)
        let file = try table.open("f", in: export, options: createNew)
        defer { file.close() }
        try file.write("start", at: 0)
        let generation = file.shared.mappingGeneration
        // Two-sided writes no longer go through the mapping; layouts grow it.
        try file.write("end", at: 10 * page)
        #expect(file.shared.mappingGeneration == generation)
        let (mapping, pastEnd) = try file.shared.prepareLayout(start: 0, end: 11 * page, writable: false)
        #expect(!pastEnd)
        #expect(file.shared.mappingGeneration == generation + 1)
        #expect(mapping.length == 10 * page + 3)
        #expect(try file.readString(at: 0, count: 5) == "start")
        #expect(try file.readString(at: 10 * page, count: 3) == "end")
        #expect(file.shared.mapping.capacity >= 20 * page)
    }

    @Test(arguments: fileSystemsUnderTest)
    func setSizeGrowReadsZerosEvenWhereDataWas(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        let ones = [UInt8](repeating: 1, count: 2 * page)
        try ones.withUnsafeBytes { try file.write($0, at: 0) }
        try file.setSize(10)
        try file.setSize(4 * page)
        let status = try file.status()
        #expect(status.size == Int64(4 * page))
        #expect(status.allocatedSize >= Int64(4 * page))  // backed by blocks, not a hole
        #expect(try file.read(at: 0, count: 10).allSatisfy { $0 == 1 })
        #expect(try file.read(at: 10, count: 4 * page - 10).allSatisfy { $0 == 0 })
    }

    @Test(arguments: fileSystemsUnderTest)
    func setSizeShrinks(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        try file.write(String(repeating: "z", count: 3 * page), at: 0)
        try file.setSize(page + 1)
        #expect(try file.status().size == Int64(page + 1))
        #expect(try file.read(at: 0, count: 3 * page).count == page + 1)
        #expect(try file.read(at: 2 * page, count: 1) == [])
        try file.flush()
        try file.setSize(0)
        #expect(try file.read(at: 0, count: 1) == [])
        #expect(fixture.contents("f") == "")
        #expect(failure { try file.setSize(-1) } == .invalidArgument)
    }

    @Test(arguments: fileSystemsUnderTest)
    func punchHoleReadsZerosAndKeepsSize(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        let ones = [UInt8](repeating: 1, count: 4 * page)
        try ones.withUnsafeBytes { try file.write($0, at: 0) }
        try file.punchHole(offset: page, length: 2 * page)
        #expect(try file.status().size == Int64(4 * page))
        #expect(try file.read(at: page, count: 2 * page).allSatisfy { $0 == 0 })
        #expect(try file.read(at: 0, count: page).allSatisfy { $0 == 1 })
        #expect(try file.read(at: 3 * page, count: page).allSatisfy { $0 == 1 })
        #expect(try file.status().allocatedSize <= Int64(2 * page))
        try file.flush()
        #expect(failure { try file.punchHole(offset: -1, length: 1) } == .invalidArgument)
    }

    @Test func concurrentWritersGrowingTheFileLoseNothing() async throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        let export = try fixture.export()
        let table = FileTable(minimumReservation: 4 * page, logger: quietLogger)
        let file = try table.open("f", in: export, options: createNew)
        defer { file.close() }
        let writers = 8, blocksEach = 16
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for block in 0..<blocksEach {
                        let index = block * writers + writer
                        let bytes = [UInt8](repeating: UInt8(index % 251 + 1), count: page)
                        try! bytes.withUnsafeBytes { try file.write($0, at: index * page) }
                    }
                }
            }
        }
        #expect(try file.status().size == Int64(writers * blocksEach * page))
        for index in 0..<(writers * blocksEach) {
            #expect(try file.read(at: index * page, count: page).allSatisfy { $0 == UInt8(index % 251 + 1) })
        }
    }

    /// ALLOCATE: zeroed blocks; without KEEP_SIZE a range past the end grows the file.
    @Test(arguments: fileSystemsUnderTest)
    func allocateGrowsTheFileAndKeepSizeDoesNot(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        try file.write("head", at: 0)
        let allocated = { Int64(try file.status().allocatedSize) }

        try file.allocate(offset: 0, length: 4 * page, keepSize: true)
        #expect(try file.status().size == 4)  // the size stays
        #expect(try allocated() >= Int64(4 * page))
        #expect(try file.read(at: 4, count: 10) == [])

        try file.allocate(offset: 2 * page, length: 2 * page)  // past the end: grows
        #expect(try file.status().size == Int64(4 * page))
        #expect(try file.readString(at: 0, count: 4) == "head")  // what was there stays
        #expect(try file.read(at: 4, count: 4 * page - 4).allSatisfy { $0 == 0 })

        try file.allocate(offset: page, length: page)  // inside: nothing moves
        #expect(try file.status().size == Int64(4 * page))

        try file.allocate(offset: 8 * page, length: 4 * page, keepSize: true)  // past the end, kept
        #expect(try file.status().size == Int64(4 * page))
        #expect(try allocated() >= Int64(8 * page))
        #expect(try file.read(at: 4 * page, count: 10) == [])

        try file.allocate(offset: 0, length: 0)  // empty: nothing
        #expect(try file.status().size == Int64(4 * page))
        #expect(try Data(contentsOf: URL(fileURLWithPath: fixture.exportPath + "/f")).count == 4 * page)

        let half: UInt64 = 1 << 63
        #expect(failure { try file.allocate(offset: UInt64.max, length: 1, keepSize: false) } == .invalidArgument)  // wraps
        #expect(failure { try file.allocate(offset: half, length: 1, keepSize: false) } == .fileTooLarge)
        #expect(failure { try file.allocate(offset: half - 1, length: 2, keepSize: true) } == .fileTooLarge)
        #expect(failure { try file.allocate(offset: -1, length: 1) } == .invalidArgument)
        #expect(try file.status().size == Int64(4 * page))
    }

    @Test func allocateNeedsWriteAccess() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "abc")
        let table = FileTable(logger: quietLogger)
        let reader = try table.open("f", in: try fixture.export())
        defer { reader.close() }
        #expect(failure { try reader.allocate(offset: 0, length: 4096) } == .accessDenied)
        #expect(try reader.status().size == 3)
    }

    /// SET_ATTRIBUTES by file id: through the shared descriptor, also on a handle opened for
    /// reading only (chmod and utimes need no write access).
    @Test func setAttributesOfAnOpenFile() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "abc")
        let table = FileTable(logger: quietLogger)
        let reader = try table.open("f", in: try fixture.export())
        defer { reader.close() }
        let mtime: Int64 = 1_600_000_000_000_000_007
        let s = try reader.setAttributes(FileAttributeChange(
            permissions: FilePermissions(rawValue: 0o640), accessTime: .now, modificationTime: .at(nanosecondsSinceEpoch: mtime)))
        #expect(s.permissions.rawValue == 0o640 && s.modificationTime == mtime && s.size == 3)
        #expect(fixture.lstatus("f").st_mode & 0o7777 == 0o640)
        #expect(nanoseconds(fixture.lstatus("f").st_mtim) == mtime)
        reader.close()
        #expect(failure { try reader.setAttributes(FileAttributeChange(accessTime: .now)) } == .staleFile)
    }

    @Test func statReportsAttributes() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("d/f", "12345")
        let export = try fixture.export()
        let file = try export.status(of: "d/f")
        #expect(file.kind == .regular)
        #expect(file.size == 5)
        #expect(file.linkCount == 1)
        #expect(file.modificationTime > 1_600_000_000 * 1_000_000_000)
        #expect(file.changeTime >= file.modificationTime)
        let dir = try export.status(of: "d")
        #expect(dir.kind == .directory)
        #expect(try export.status(of: "").kind == .directory)
        #expect(failure { try export.status(of: "d/missing") } == .notFound)
        #expect(failure { try export.status(of: "d/f/x") } == .notDir)
    }
    // MARK: - Issue 13: a local truncate, and any UInt64 a client can send

    /// Another process truncates an open file (no layout, so no lease): the
    /// old write copied through the stale mapping and died of SIGBUS.
    @Test(arguments: fileSystemsUnderTest)
    func localTruncateUnderAnOpenFileNeverFaults(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        let ones = [UInt8](repeating: 1, count: 4 * page)
        try ones.withUnsafeBytes { try file.write($0, at: 0) }
        #expect(truncate(fixture.exportPath + "/f", 0) == 0)

        // Write first: the old read remapped to the new size and so hid the fault.
        try file.write("abc", at: 2 * page)  // inside the old mapping, past the new end
        var buffer = [UInt8](repeating: 0, count: page)
        let cut = try buffer.withUnsafeMutableBytes { try file.read(at: 3 * page, into: $0) }
        #expect(cut == ReadResult(count: 0, endOfFile: true))
        #expect(try file.read(at: 0, count: 3 * page) == [UInt8](repeating: 0, count: 2 * page) + Array("abc".utf8))
        try file.write("far", at: 1 << 20, writeThrough: true)
        #expect(try file.status().size == Int64((1 << 20) + 3))
        #expect(try file.readString(at: 1 << 20, count: 10) == "far")
        try file.flush()
        try file.flush(offset: 0, length: 64 * page)
    }

    /// The four FLUSH ranges that killed the server (issue 13), and the same
    /// kind of values for every other operation: clipped or refused, never a trap.
    @Test(arguments: fileSystemsUnderTest)
    func anyUInt64RangeIsClippedOrRefused(base: String) throws {
        let (fixture, file) = try newFile(under: base)
        defer { file.close(); fixture.remove() }
        try file.write(String(repeating: "x", count: 2 * page), at: 0)
        // Typed: an untyped literal would pick the Int overloads.
        let half: UInt64 = 1 << 63
        let huge: [(UInt64, UInt64)] = [(0, UInt64.max - 4095), (half + 4096, 4096), (UInt64.max, 0), (0, half)]
        for (offset, length) in huge {
            try file.flush(offset: offset, length: length)  // clipped to the file
            #expect(failure { try file.punchHole(offset: offset, length: length) } == nil, "\(offset)+\(length)")
        }
        #expect(try file.status().size == Int64(2 * page))  // (0, 2^64-4096) punched it all

        var buffer = [UInt8](repeating: 0xAA, count: 16)
        for offset in [UInt64(Int.max), half, half + 4096, UInt64.max - 4095, UInt64.max] {
            let result = try buffer.withUnsafeMutableBytes { try file.read(at: offset, into: $0) }
            #expect(result == ReadResult(count: 0, endOfFile: true))
        }
        let one: [UInt8] = [7]
        try one.withUnsafeBytes { bytes in
            #expect(failure { try file.write(bytes, at: UInt64.max) } == .invalidArgument)  // wraps
            #expect(failure { try file.write(bytes, at: UInt64(Int.max)) } == .fileTooLarge)
            #expect(failure { try file.write(bytes, at: half + 4096) } == .fileTooLarge)
            #expect(failure { try file.write(bytes, at: UInt64.max - 4095) } == .fileTooLarge)
        }
        #expect(failure { try file.punchHole(offset: UInt64.max, length: 1) } == .invalidArgument)
        #expect(failure { try file.punchHole(offset: half, length: half) } == .invalidArgument)
        for size in [half, half + 4096, UInt64.max - 4095, UInt64.max] {
            #expect(failure { try file.setSize(size) } == .fileTooLarge)
        }
        #expect(try file.status().size == Int64(2 * page))
        #expect(failure { try file.flush(offset: -1, length: 0) } == .invalidArgument)
        #expect(failure { try file.punchHole(offset: 0, length: -1) } == .invalidArgument)
    }
}
