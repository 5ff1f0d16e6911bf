import DaxsharePmem
import Foundation
import SystemPackage
import Testing

@Suite struct PmemMappingTests {
    let page = PmemMapping.pageSize

    @Test func fallsBackToPageCacheWhereThereIsNoDAXAndLogsWhy() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let logs = CapturedLogs()
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: 3 * page)
        let mapping = try file.map(length: 3 * page, logger: logs.logger())
        #expect(!mapping.isPmem)
        #expect(mapping.fallbackReason == .notSupported)
        #expect(logs.all.count == 1)
        #expect(logs.all.first?.contains("MAP_SYNC refused") == true)
        #expect(logs.all.first?.contains("errno \(Errno.notSupported.rawValue)") == true)
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["DAXSHARE_PMEM"] != nil))
    func mapsWithMapSyncOnDAX() throws {
        let dir = TemporaryDirectory(under: ProcessInfo.processInfo.environment["DAXSHARE_PMEM"]!)
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: page)
        let mapping = try file.map(length: page, capacity: 16 * page)
        #expect(mapping.isPmem)
        #expect(mapping.fallbackReason == nil)
        try write("durable", to: mapping, at: 10, persist: true)
        try file.allocate(offset: page, length: page)
        try mapping.resize(to: 2 * page)
        try write("grown", to: mapping, at: page + 1, persist: true)
        #expect(try read(mapping, at: page + 1, count: 5) == Array("grown".utf8))
    }

    @Test func copiesInAndOutAndPersists() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("f")
        let file = try PmemFile.open(path, .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: 2 * page)
        let mapping = try file.map(length: 2 * page)
        try write("hello", to: mapping, at: page - 2)
        try mapping.persist(offset: page - 2, length: 5)
        try write("world", to: mapping, at: 100, persist: true)
        #expect(try read(mapping, at: page - 2, count: 5) == Array("hello".utf8))
        // The bytes are in the file, seen through read(2) on another descriptor.
        let contents = try Data(contentsOf: URL(fileURLWithPath: path.string))
        #expect(Array(contents[(page - 2)..<(page + 3)]) == Array("hello".utf8))
        #expect(Array(contents[100..<105]) == Array("world".utf8))
    }

    @Test func rejectsOutOfBoundsAndMisalignedRanges() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: 100)
        let mapping = try file.map(length: 100)
        #expect(mapping.length == 100)
        #expect(throws: PmemError.outOfBounds(offset: 98, length: 3, bound: 100)) {
            _ = try read(mapping, at: 98, count: 3)
        }
        #expect(throws: PmemError.outOfBounds(offset: -1, length: 1, bound: 100)) {
            try write("x", to: mapping, at: -1)
        }
        #expect(throws: PmemError.outOfBounds(offset: 0, length: 101, bound: 100)) {
            try mapping.persist(offset: 0, length: 101)
        }
        #expect(throws: PmemError.misaligned(offset: 1, alignment: page)) {
            _ = try file.map(offset: 1, length: 10)
        }
        #expect(throws: PmemError.capacityExceeded(requested: 200, capacity: 100)) {
            _ = try file.map(length: 200, capacity: 100)
        }
    }

    @Test func growsInPlaceWithinCapacityAndShrinks() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        let mapping = try file.map(length: 0, capacity: 8 * page)
        #expect(mapping.length == 0)
        #expect(mapping.capacity == 8 * page)
        let base = try #require(mapping.baseAddress)

        try file.allocate(offset: 0, length: 3 * page + 5)
        try mapping.resize(to: 3 * page + 5)
        #expect(mapping.baseAddress == base)
        try write("end", to: mapping, at: 3 * page + 2)
        #expect(try read(mapping, at: 3 * page + 2, count: 3) == Array("end".utf8))
        #expect(try read(mapping, at: 2 * page, count: 4) == [0, 0, 0, 0])

        try mapping.resize(to: page)
        try file.setSize(page)
        #expect(mapping.baseAddress == base)
        #expect(throws: PmemError.outOfBounds(offset: page, length: 1, bound: page)) {
            _ = try read(mapping, at: page, count: 1)
        }
        #expect(throws: PmemError.capacityExceeded(requested: 9 * page, capacity: 8 * page)) {
            try mapping.resize(to: 9 * page)
        }
    }

    @Test func mapsFromAPageAlignedFileOffset() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: 2 * page)
        let whole = try file.map(length: 2 * page)
        try write("second page", to: whole, at: page)
        let tail = try file.map(offset: page, length: page)
        #expect(try read(tail, at: 0, count: 11) == Array("second page".utf8))
    }

    /// Placed as PMDK places its mappings, so that fsdax can map 2 MiB-aligned extents with one
    /// PMD entry: the address minus the file offset is a multiple of 2 MiB, whatever the offset.
    @Test(arguments: [0, 1, 3, 512])
    func baseAddressIsCongruentToTheFileOffsetModulo2MiB(pages: Int) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: (pages + 2) * page)
        let offset = pages * page
        let mappings = try (0..<4).map { _ in try file.map(offset: offset, length: page, capacity: 3 << 20) }
        for m in mappings {
            let base = UInt(bitPattern: m.baseAddress)
            #expect(base != 0)
            #expect((base &- UInt(offset)) % UInt(2 << 20) == 0)
        }
        try write("still usable", to: mappings[0], at: 0)
        #expect(try read(mappings[3], at: 0, count: 12) == Array("still usable".utf8))
    }

    @Test func readOnlyFileMapsReadOnly() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("f")
        try Data("abc".utf8).write(to: URL(fileURLWithPath: path.string))
        let file = try PmemFile.open(path, .readOnly)
        #expect(!file.isWritable)
        let mapping = try file.map(length: 3)
        #expect(try read(mapping, at: 0, count: 3) == Array("abc".utf8))
        #expect(throws: PmemError.notWritable) { try write("x", to: mapping, at: 0) }
    }

    @Test func unmapIsIdempotentAndLaterUseFails() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: page)
        let mapping = try file.map(length: page)
        mapping.unmap()
        mapping.unmap()
        #expect(mapping.baseAddress == nil)
        #expect(throws: PmemError.closed) { _ = try read(mapping, at: 0, count: 1) }
        #expect(throws: PmemError.closed) { try mapping.resize(to: 0) }
    }

    @Test func withUnsafeMutableBytesIsBoundsChecked() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        try file.allocate(offset: 0, length: 64)
        let mapping = try file.map(length: 64)
        try mapping.withUnsafeMutableBytes(offset: 8, length: 4) { $0.copyBytes(from: [1, 2, 3, 4]) }
        #expect(try read(mapping, at: 8, count: 4) == [1, 2, 3, 4])
        #expect(throws: PmemError.outOfBounds(offset: 60, length: 8, bound: 64)) {
            try mapping.withUnsafeMutableBytes(offset: 60, length: 8) { _ in }
        }
    }
}

func write(_ text: String, to mapping: PmemMapping, at offset: Int, persist: Bool = false) throws {
    let bytes = Array(text.utf8)
    try bytes.withUnsafeBytes { try mapping.copyIn($0, at: offset, persist: persist) }
}

func read(_ mapping: PmemMapping, at offset: Int, count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0xAA, count: count)
    try bytes.withUnsafeMutableBytes { try mapping.copyOut(at: offset, into: $0) }
    return bytes
}
