@testable import DaxshareServer
import DaxshareWire
import Glibc
import SystemPackage
import Testing

/// MKDIR, SET_ATTRIBUTES, STATFS and ALLOCATE (PROTOCOL.md §4.21–4.24) as a client sends them,
/// over a fake channel to a real connection and a scratch export: the statuses, the access
/// rules (read-only exports, trees and handles, identities), and that nothing else moves.
@Suite("MKDIR, SET_ATTRIBUTES, STATFS, ALLOCATE")
struct ClientConnectionFileSystemTests {
    typealias Spec = ServerConfiguration.ExportSpec

    func attributes(_ m: Message) throws -> FileAttributes {
        switch try m.succeeded() {
        case let .mkdir(a), let .setAttributes(a), let .allocate(a): return a
        case let r: throw Unexpected(r)
        }
    }

    @Test func mkdirCreatesWithTheModeAndAnswersItsAttributes() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            let a = try attributes(try await c.call(.mkdir(MkdirRequest(treeId: tree, mode: 0o750, path: "d"))))
            #expect(a.type == .directory && a.mode == 0o750 & ~processUmask && a.nlink == 2)
            #expect(c.fixture.lstatus("d").st_mode & 0o7777 == 0o750 & ~processUmask)
            #expect(a.fileIndex == UInt64(c.fixture.lstatus("d").st_ino))
            _ = try attributes(try await c.call(.mkdir(MkdirRequest(treeId: tree, path: "d/e"))))
            #expect(try await c.call(.mkdir(MkdirRequest(treeId: tree, path: "d"))).status == .exists)
            #expect(try await c.call(.mkdir(MkdirRequest(treeId: tree, path: "x/y"))).status == .notFound)
            #expect(try await c.call(.mkdir(MkdirRequest(treeId: tree, path: ""))).status == .accessDenied)
            #expect(try await c.call(.mkdir(MkdirRequest(treeId: tree, path: "../escape"))).status == .accessDenied)
            #expect(try await c.call(.mkdir(MkdirRequest(treeId: tree + 1, path: "z"))).status == .staleFile)
            #expect(!c.fixture.exists("z"))
            #expect(!c.channel.isClosed)
        }
    }

    /// daxshared may run as root: no client makes a set-user-ID or set-group-ID file through it.
    @Test func setIdBitsAreDroppedTheStickyBitKept() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            c.fixture.put("p", "path")
            let a = try attributes(try await c.call(.setAttributes(SetAttributesRequest(
                .path(treeId: tree, path: "p"), AttributeChange(mode: 0o6755)))))
            #expect(a.mode == 0o755)
            #expect(c.fixture.lstatus("p").st_mode & 0o7777 == 0o755)
            let d = try attributes(try await c.call(.mkdir(MkdirRequest(treeId: tree, mode: 0o3777, path: "d"))))
            #expect(d.mode & 0o7000 == 0o1000)
            #expect(c.fixture.lstatus("d").st_mode & 0o6000 == 0)
        }
    }

    @Test func setAttributesByPathAndByFileId() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            c.fixture.put("p", "path")
            let mtime: Int64 = 1_500_000_000_000_000_001
            let byPath = try attributes(try await c.call(.setAttributes(SetAttributesRequest(
                .path(treeId: tree, path: "p"), AttributeChange(mode: 0o600, modificationTime: .at(nanosecondsSinceEpoch: mtime))))))
            #expect(byPath.mode == 0o600 && byPath.mtimeNs == mtime && byPath.size == 4 && byPath.flags == [])
            #expect(c.fixture.lstatus("p").st_mode & 0o7777 == 0o600)

            let file = try await c.open("f", tree: tree)
            let atime: Int64 = 1_000_000_000_000_000_000
            let byId = try attributes(try await c.call(.setAttributes(SetAttributesRequest(
                .fileId(file), AttributeChange(mode: 0o640, accessTime: .at(nanosecondsSinceEpoch: atime), modificationTime: .now)))))
            #expect(byId.mode == 0o640)
            #expect(nanoseconds(c.fixture.lstatus("f").st_atim) == atime)
            #expect(abs(byId.mtimeNs - nanoseconds(c.fixture.lstatus("f").st_mtim)) == 0)
            // By the path of the open file: the same file, through its descriptor.
            let again = try attributes(try await c.call(.setAttributes(SetAttributesRequest(
                .path(treeId: tree, path: "f"), AttributeChange(modificationTime: .at(nanosecondsSinceEpoch: mtime))))))
            #expect(again.mtimeNs == mtime && again.fileIndex == byId.fileIndex)
            // The export root.
            let root = try attributes(try await c.call(.setAttributes(SetAttributesRequest(
                .path(treeId: tree, path: ""), AttributeChange(modificationTime: .at(nanosecondsSinceEpoch: mtime))))))
            #expect(root.type == .directory && root.mtimeNs == mtime)

            #expect(try await c.call(.setAttributes(SetAttributesRequest(.fileId(file + 100), AttributeChange(accessTime: .now))))
                .status == .staleFile)
            #expect(try await c.call(.setAttributes(SetAttributesRequest(.path(treeId: tree, path: "nope"), AttributeChange(accessTime: .now))))
                .status == .notFound)
            #expect(try await c.call(.setAttributes(SetAttributesRequest(.path(treeId: tree, path: "../outside/secret"),
                                                                         AttributeChange(mode: 0o777)))).status == .accessDenied)
            c.fixture.symlink("link", to: "p")
            #expect(try await c.call(.setAttributes(SetAttributesRequest(.path(treeId: tree, path: "link"), AttributeChange(mode: 0o777))))
                .status == .notSupported)
            #expect(!c.channel.isClosed)
        }
    }

    @Test func statfsAnswersTheExportsFileSystem() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            guard case let .statfs(s) = try await c.ok(.statfs(StatfsRequest(treeId: tree))) else { throw Unexpected("STATFS") }
            var expected = statvfs()
            #expect(statvfs(c.fixture.exportPath, &expected) == 0)
            #expect(s.blockSize == UInt32(expected.f_frsize) && s.totalBlocks == UInt64(expected.f_blocks))
            #expect(s.freeBlocks <= s.totalBlocks && s.availableBlocks <= s.freeBlocks && s.maxNameLength == 255)
            #expect(try await c.call(.statfs(StatfsRequest(treeId: tree + 1))).status == .staleFile)
        }
    }

    @Test func allocateGrowsTheFileOrKeepsItsSize() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            let file = try await c.open("f", tree: tree)
            let kept = try attributes(try await c.call(.allocate(AllocateRequest(
                fileId: file, range: ByteRange(offset: 0, length: 1 << 20), flags: .keepSize))))
            #expect(kept.size == 0 && kept.allocatedSize >= 1 << 20)
            let grown = try attributes(try await c.call(.allocate(AllocateRequest(fileId: file, range: ByteRange(offset: 8192, length: 4096)))))
            #expect(grown.size == 12288)
            #expect(c.fixture.lstatus("f").st_size == 12288)
            #expect(try await c.call(.allocate(AllocateRequest(fileId: file, range: ByteRange(offset: 1 << 63, length: 1)))).status
                    == .fileTooLarge)
            #expect(try await c.call(.allocate(AllocateRequest(fileId: file + 100, range: ByteRange(offset: 0, length: 1)))).status
                    == .staleFile)
            // A file id opened for reading only may not allocate.
            guard case let .open(reader) = try await c.ok(.open(OpenRequest(treeId: tree, flags: [.read], path: "f"))) else {
                throw Unexpected("OPEN")
            }
            #expect(try await c.call(.allocate(AllocateRequest(fileId: reader.fileId, range: ByteRange(offset: 0, length: 1)))).status
                    == .accessDenied)
            #expect(c.fixture.lstatus("f").st_size == 12288)
        }
    }

    /// A read-only export refuses the three that change something with READ_ONLY, by tree and
    /// by file id, from the next request after a reload made it so; STATFS still answers.
    @Test func aReadOnlyExportRefusesMkdirSetAttributesAndAllocate() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            c.fixture.put("p", "x")
            let file = try await c.open("f", tree: tree)
            try await c.context.reload(
                exports: [Spec(name: ConnectionUnderTest.exportName, path: FilePath(c.fixture.exportPath), readOnly: true)],
                secret: ConnectionUnderTest.secret, secrets: [:])
            let mode = c.fixture.lstatus("p").st_mode
            #expect(try await c.call(.mkdir(MkdirRequest(treeId: tree, path: "d"))).status == .readOnly)
            #expect(try await c.call(.setAttributes(SetAttributesRequest(.path(treeId: tree, path: "p"), AttributeChange(mode: 0o777))))
                .status == .readOnly)
            #expect(try await c.call(.setAttributes(SetAttributesRequest(.fileId(file), AttributeChange(mode: 0o777)))).status == .readOnly)
            #expect(try await c.call(.allocate(AllocateRequest(fileId: file, range: ByteRange(offset: 0, length: 4096)))).status == .readOnly)
            guard case .statfs = try await c.ok(.statfs(StatfsRequest(treeId: tree))) else { throw Unexpected("STATFS") }
            #expect(!c.fixture.exists("d"))
            #expect(c.fixture.lstatus("p").st_mode == mode)
            #expect(c.fixture.lstatus("f").st_size == 0)
        }
    }

    /// An identity the export no longer allows is refused all four (§4.6), STATFS included.
    @Test func anIdentityNoLongerAllowedIsDenied() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            let file = try await c.open("f", tree: tree)
            try await c.context.reload(
                exports: [Spec(name: ConnectionUnderTest.exportName, path: FilePath(c.fixture.exportPath), identities: ["someone"])],
                secret: ConnectionUnderTest.secret, secrets: [:])
            #expect(try await c.call(.mkdir(MkdirRequest(treeId: tree, path: "d"))).status == .accessDenied)
            #expect(try await c.call(.setAttributes(SetAttributesRequest(.fileId(file), AttributeChange(accessTime: .now)))).status
                    == .accessDenied)
            #expect(try await c.call(.statfs(StatfsRequest(treeId: tree))).status == .accessDenied)
            #expect(try await c.call(.allocate(AllocateRequest(fileId: file, range: ByteRange(offset: 0, length: 1)))).status
                    == .accessDenied)
        }
    }

    /// A malformed one is BAD_MESSAGE and closes the connection, as any malformed request.
    @Test func aMalformedSetAttributesIsBadMessage() async throws {
        try await withConnection { c in
            _ = try await c.establish()
            var bytes = try Message.request(
                .setAttributes(SetAttributesRequest(.fileId(1), AttributeChange(accessTime: .now))), messageId: 50, sessionId: c.sessionId
            ).encode()
            bytes[Limits.headerSize + 16] |= 0x02  // ATIME beside ATIME_NOW
            c.channel.push(bytes: bytes)
            #expect(try await c.channel.response(to: 50).status == .badMessage)
            _ = try await c.channel.closed()
        }
    }
}
