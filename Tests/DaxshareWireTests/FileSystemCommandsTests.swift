import DaxshareWire
import Testing

/// MKDIR, SET_ATTRIBUTES, STATFS and ALLOCATE (PROTOCOL.md §4.21–4.24): the vectors' values
/// land in the right Swift properties, and the encoders refuse what the decoders would.
@Suite("MKDIR, SET_ATTRIBUTES, STATFS, ALLOCATE")
struct FileSystemCommandsTests {
    func body(_ vector: String) throws -> MessageBody { try Message.decode(Vectors.named(vector).bytes).body }

    @Test func theCommandsHaveTheirCodesAndNames() {
        #expect([Command.mkdir, .setAttributes, .statfs, .allocate].map(\.rawValue) == [0x19, 0x1A, 0x1B, 0x1C])
        #expect([Command.mkdir, .setAttributes, .statfs, .allocate].map(\.name) == ["MKDIR", "SET_ATTRIBUTES", "STATFS", "ALLOCATE"])
        #expect([Command.mkdir, .setAttributes, .statfs, .allocate].allSatisfy { $0.isKnown })
        #expect(!Command(rawValue: 0x1D).isKnown && !Command(rawValue: 0x09).isKnown)
    }

    @Test func vectorsDecodeToTheirDescriptions() throws {
        #expect(try body("mkdir-request") == .request(.mkdir(MkdirRequest(treeId: 1, mode: 0o750, path: "data/new"))))
        guard case let .response(.mkdir(dir)) = try body("mkdir-response") else { Issue.record("not a MKDIR response"); return }
        #expect(dir.type == .directory && dir.mode == 0o750 && dir.nlink == 2)

        #expect(try body("set-attributes-by-path-request") == .request(.setAttributes(SetAttributesRequest(
            .path(treeId: 1, path: "data/f"),
            AttributeChange(mode: 0o640, accessTime: .now, modificationTime: .at(nanosecondsSinceEpoch: 1_700_000_000_123_456_789))))))
        #expect(try body("set-attributes-by-id-request") == .request(.setAttributes(SetAttributesRequest(
            .fileId(0x100), AttributeChange(accessTime: .at(nanosecondsSinceEpoch: -1_000_000_000), modificationTime: .now)))))
        guard case let .response(.setAttributes(a)) = try body("set-attributes-response") else { Issue.record("not SET_ATTRIBUTES"); return }
        #expect(a.mode == 0o640 && a.mtimeNs == 1_700_000_000_123_456_789)

        #expect(try body("statfs-request") == .request(.statfs(StatfsRequest(treeId: 1))))
        #expect(try body("statfs-response") == .response(.statfs(FileSystemStatistics(
            blockSize: 4096, maxNameLength: 255, totalBlocks: 4_194_304, freeBlocks: 3_145_728, availableBlocks: 2_883_584,
            totalFiles: 1_048_576, freeFiles: 1_048_000))))

        #expect(try body("allocate-request") == .request(.allocate(AllocateRequest(
            fileId: 0x100, range: ByteRange(offset: 131_072, length: 1 << 20)))))
        #expect(try body("allocate-request-keep-size") == .request(.allocate(AllocateRequest(
            fileId: 0x100, range: ByteRange(offset: 0, length: 4 << 20), flags: .keepSize))))
        guard case let .response(.allocate(grown)) = try body("allocate-response") else { Issue.record("not ALLOCATE"); return }
        #expect(grown.size == 1_179_648 && grown.flags == .dax)
    }

    @Test func anEmptyChangeIsAllZeros() throws {
        let bytes = try Message.request(.setAttributes(SetAttributesRequest(.fileId(7), AttributeChange())), messageId: 1, sessionId: 1)
            .encode()
        #expect(bytes.count == Limits.headerSize + SetAttributesRequest.fixedSize)
        #expect(bytes[(Limits.headerSize + 16)...].allSatisfy { $0 == 0 })  // which, mode, atimeNs, mtimeNs
        #expect(AttributeChange().isEmpty && !AttributeChange(accessTime: .now).isEmpty)
    }

    @Test func encodersRefuseWhatDecodersWould() {
        func encoding(_ r: Request) -> WireError? { wireError { _ = try Message.request(r, messageId: 1, sessionId: 1).encode() } }
        #expect(encoding(.mkdir(MkdirRequest(treeId: 0, path: "d"))) == .outOfRange(field: "treeId"))
        #expect(encoding(.mkdir(MkdirRequest(treeId: 1, mode: 0o10000, path: "d"))) == .outOfRange(field: "mode"))
        #expect(encoding(.mkdir(MkdirRequest(treeId: 1, path: String(repeating: "a", count: 4096)))) == .oversized(field: "path"))
        #expect(encoding(.setAttributes(SetAttributesRequest(.fileId(0), AttributeChange()))) == .outOfRange(field: "fileId"))
        #expect(encoding(.setAttributes(SetAttributesRequest(.path(treeId: 0, path: ""), AttributeChange()))) == .outOfRange(field: "treeId"))
        #expect(encoding(.setAttributes(SetAttributesRequest(.fileId(1), AttributeChange(mode: 0o17777)))) == .outOfRange(field: "mode"))
        #expect(encoding(.setAttributes(SetAttributesRequest(.path(treeId: 1, path: String(repeating: "a", count: 4096)), AttributeChange())))
                == .oversized(field: "path"))
        #expect(encoding(.statfs(StatfsRequest(treeId: 0))) == .outOfRange(field: "treeId"))
        #expect(encoding(.allocate(AllocateRequest(fileId: 0, range: ByteRange(offset: 0, length: 1)))) == .outOfRange(field: "fileId"))
        #expect(encoding(.allocate(AllocateRequest(fileId: 1, range: ByteRange(offset: 0, length: 0)))) == .outOfRange(field: "length"))
        #expect(encoding(.allocate(AllocateRequest(fileId: 1, range: ByteRange(offset: .max, length: 1)))) == .outOfRange(field: "length"))
        #expect(encoding(.allocate(AllocateRequest(fileId: 1, range: ByteRange(offset: 0, length: 1), flags: AllocateFlags(rawValue: 4))))
                == .unknownFlags(field: "allocateFlags", bits: 4))
        let zeroBlocks = wireError {
            _ = try Message(messageId: 1, sessionId: 1, body: .response(.statfs(FileSystemStatistics(
                blockSize: 0, maxNameLength: 255, totalBlocks: 0, freeBlocks: 0, availableBlocks: 0, totalFiles: 0, freeFiles: 0))))
                .encode()
        }
        #expect(zeroBlocks == .outOfRange(field: "blockSize"))
    }
}
