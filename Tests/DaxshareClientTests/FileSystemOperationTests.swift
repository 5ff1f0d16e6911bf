@testable import DaxshareClient
import DaxshareWire
import Testing

/// `makeDirectory`, `setAttributes`, `fileSystemStatistics`, `RemoteFile.allocate` and
/// `punchHole` against the fake server: the requests they send, what they keep of the answer,
/// and an older server that answers NOT_SUPPORTED.
@Suite("MKDIR, SET_ATTRIBUTES, STATFS, ALLOCATE, PUNCH_HOLE from the client")
struct FileSystemOperationTests {
    func sent(_ h: Harness, _ command: Command) -> [Request] {
        h.transport.sent.withLock { $0.compactMap { m in
            guard m.command == command, case let .request(r) = m.body else { return nil }
            return r
        } }
    }

    @Test func makeDirectorySendsTheModeAndReturnsTheAttributes() async throws {
        let h = try await Harness.make()
        let a = try await h.session.makeDirectory("d", mode: 0o750)
        #expect(a.type == .directory && a.mode == 0o750)
        #expect(sent(h, .mkdir) == [.mkdir(MkdirRequest(treeId: 3, mode: 0o750, path: "d"))])
        #expect(try await h.session.makeDirectory("d/e").mode == 0o755)  // the default
        await #expect(throws: ClientError.status(.exists, .mkdir)) { try await h.session.makeDirectory("d") }
        await #expect(throws: ClientError.status(.notFound, .mkdir)) { try await h.session.makeDirectory("x/y") }
        // A mode that is not permission bits is refused before anything is sent.
        await #expect {
            try await h.session.makeDirectory("z", mode: 0o10000)
        } throws: { error in
            guard case .invalidArgument = error as? ClientError else { return false }
            return true
        }
        #expect(sent(h, .mkdir).count == 4)
        await h.session.close()
    }

    @Test func setAttributesByPathAndThroughAnOpenFile() async throws {
        let h = try await Harness.make()
        h.server.addFile("f", [1, 2, 3])
        let change = AttributeChange(mode: 0o600, accessTime: .now, modificationTime: .at(nanosecondsSinceEpoch: -1))
        let a = try await h.session.setAttributes("f", change)
        #expect(a.mode == 0o600 && a.mtimeNs == -1)
        let file = try await h.session.open("f", flags: [.read])
        let b = try await file.setAttributes(AttributeChange(modificationTime: .now))
        #expect(b.size == 3)
        #expect(h.server.state.withLock { $0.attributeChanges } == [
            SetAttributesRequest(.path(treeId: 3, path: "f"), change),
            SetAttributesRequest(.fileId(file.fileId), AttributeChange(modificationTime: .now)),
        ])
        await #expect(throws: ClientError.status(.notFound, .setAttributes)) {
            try await h.session.setAttributes("missing", AttributeChange(accessTime: .now))
        }
        await #expect {
            try await h.session.setAttributes("f", AttributeChange(mode: 0o20000))
        } throws: { error in
            guard case .invalidArgument = error as? ClientError else { return false }
            return true
        }
        try await file.close()
        await #expect(throws: ClientError.self) { try await file.setAttributes(AttributeChange(accessTime: .now)) }
        await h.session.close()
    }

    @Test func fileSystemStatisticsAreTheServersAnswer() async throws {
        let h = try await Harness.make()
        let s = try await h.session.fileSystemStatistics()
        #expect(s.blockSize == 4096 && s.totalBlocks == 1000 && s.availableBlocks == 500 && s.freeFiles == 90)
        #expect(sent(h, .statfs) == [.statfs(StatfsRequest(treeId: 3))])
        await h.session.close()
    }

    @Test func allocateKeepsTheClientsSizeRight() async throws {
        let h = try await Harness.make()
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        try await file.write(at: 0, [7, 7, 7])
        let kept = try await file.allocate(offset: 0, length: 1 << 20, keepSize: true)
        #expect(kept.size == 3 && file.size == 3)
        let grown = try await file.allocate(offset: 4096, length: 4096, keepSize: false)
        #expect(grown.size == 8192 && file.size == 8192)
        #expect(try await file.read(at: 0, count: 10_000).count == 8192)  // reads reach the new end
        #expect(h.server.state.withLock { $0.allocations } == [
            AllocateRequest(fileId: file.fileId, range: ByteRange(offset: 0, length: 1 << 20), flags: .keepSize),
            AllocateRequest(fileId: file.fileId, range: ByteRange(offset: 4096, length: 4096)),
        ])
        await #expect(throws: ClientError.status(.fileTooLarge, .allocate)) {
            try await file.allocate(offset: 1 << 63, length: 1, keepSize: false)
        }
        for (offset, length) in [(UInt64(0), UInt64(0)), (UInt64.max, UInt64(1))] {  // what the codec refuses
            await #expect {
                _ = try await file.allocate(offset: offset, length: length, keepSize: false)
            } throws: { error in
                guard case .invalidArgument = error as? ClientError else { return false }
                return true
            }
        }
        #expect(h.server.state.withLock { $0.allocations.count } == 2)
        try await file.close()
        await h.session.close()
    }

    @Test func punchHoleZeroesTheRange() async throws {
        let h = try await Harness.make()
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        try await file.write(at: 0, [UInt8](repeating: 9, count: 8192))
        try await file.punchHole(offset: 1000, length: 2000)
        #expect(h.server.file("f") == [UInt8](repeating: 9, count: 1000) + [UInt8](repeating: 0, count: 2000)
                + [UInt8](repeating: 9, count: 5192))
        #expect(file.size == 8192)
        #expect(h.server.state.withLock { $0.holes } == [PunchHoleRequest(fileId: file.fileId, range: ByteRange(offset: 1000, length: 2000))])
        try await file.close()
        await h.session.close()
    }

    /// One-sided: what was written through a layout is committed before the PUNCH_HOLE (the
    /// server ends the session's layouts on the file without a commit), and the layouts are
    /// forgotten, so the next write asks for a new one instead of writing into a region gone.
    @Test func punchHoleCommitsFirstAndForgetsTheLayouts() async throws {
        let h = try await Harness.make(oneSided: true)
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        let data = patternBytes(64 << 10, seed: 5)
        try await file.write(at: 0, data)
        let layouts = h.session.dataPath as! LayoutDataPath
        #expect(!layouts.held(fileId: file.fileId).isEmpty)
        try await file.punchHole(offset: 4096, length: 4096)
        let commands = h.transport.sent.withLock { $0.map(\.command) }
        let commit = try #require(commands.lastIndex(of: .layoutCommit))
        #expect(commit < commands.lastIndex(of: .punchHole)!)
        #expect(layouts.held(fileId: file.fileId).isEmpty)
        #expect(h.server.liveLayouts.isEmpty)
        #expect(h.server.file("f") == Array(data[0..<4096]) + [UInt8](repeating: 0, count: 4096) + Array(data[8192...]))
        try await file.write(at: 0, [1, 2, 3])
        #expect(h.server.layoutState.withLock { $0.gets.count } == 2)
        try await file.close()
        #expect(h.server.file("f")?.prefix(3) == [1, 2, 3])
        await h.session.close()
    }

    /// One-sided writes are committed before ALLOCATE, so the size it answers counts them.
    @Test func allocateCommitsOneSidedWritesFirst() async throws {
        let h = try await Harness.make(oneSided: true)
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        try await file.write(at: 0, patternBytes(10_000))
        let a = try await file.allocate(offset: 0, length: 4096, keepSize: false)
        #expect(a.size == 10_000 && file.size == 10_000)
        #expect(try await file.read(at: 0, count: 20_000) == patternBytes(10_000))
        try await file.close()
        await h.session.close()
    }

    /// A server that predates the commands answers NOT_SUPPORTED and keeps the connection.
    @Test func anOlderServerSaysNotSupported() async throws {
        var options = FakeServer.Options()
        options.predatesFileSystemCommands = true
        let h = try await Harness.make(options)
        await #expect(throws: ClientError.status(.notSupported, .mkdir)) { try await h.session.makeDirectory("d") }
        await #expect(throws: ClientError.status(.notSupported, .statfs)) { try await h.session.fileSystemStatistics() }
        await #expect(throws: ClientError.status(.notSupported, .setAttributes)) {
            try await h.session.setAttributes("", AttributeChange(accessTime: .now))
        }
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        await #expect(throws: ClientError.status(.notSupported, .allocate)) {
            try await file.allocate(offset: 0, length: 1, keepSize: false)
        }
        #expect("\(ClientError.status(.notSupported, .mkdir))" == "MKDIR is not supported by this server")
        #expect(CommandExitCode(for: .status(.notSupported, .allocate)) == .server)
        #expect(try await h.session.echo([1]) == [1])  // the connection carries on
        try await file.close()
        await h.session.close()
    }
}
