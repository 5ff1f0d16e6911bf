import DaxshareServer
import Foundation
import Glibc
import SystemPackage
import Testing

@Suite struct FileTableTests {
    @Test func twoOpensShareOneEntryAndTheLastCloseReleasesIt() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "data")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let first = try table.open("f", in: export, options: readWrite)
        let second = try table.open("f", in: export)
        #expect(first.shared === second.shared)
        #expect(first.shared.descriptor == second.shared.descriptor)
        #expect(first.shared.mapping === second.shared.mapping)
        #expect(table.count == 1)
        #expect(table.handleCount(for: first.shared.key) == 2)
        #expect(table.sharedFile(descriptor: first.shared.descriptor) === first.shared)

        // A write through one handle is seen through the other at once.
        try first.write("DATA", at: 0)
        #expect(try second.readString(at: 0, count: 4) == "DATA")

        let shared = first.shared
        first.close()
        first.close()  // idempotent: must not drop the other handle's share
        #expect(table.count == 1)
        #expect(table.handleCount(for: shared.key) == 1)
        #expect(shared.mapping.baseAddress != nil)
        #expect(failure { try first.read(at: 0, count: 1) } == .staleFile)

        second.close()
        #expect(table.count == 0)
        #expect(table.sharedFile(for: shared.key) == nil)
        #expect(shared.mapping.baseAddress == nil)  // unmapped with the last handle

        // Opening again makes a fresh entry.
        let third = try table.open("f", in: export)
        #expect(third.shared !== shared)
        #expect(try third.readString(at: 0, count: 4) == "DATA")
        third.close()
    }

    @Test func sessionsMapTheirOwnIdsToSharedEntries() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "x")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let alice = SessionFiles(), bob = SessionFiles()
        let a1 = try alice.insert(table.open("f", in: export))
        let a2 = try alice.insert(table.open("f", in: export))
        let b1 = try bob.insert(table.open("f", in: export, options: readWrite))
        #expect(a1 != a2)
        #expect(try alice.file(a1).shared === bob.file(b1).shared)
        #expect(table.handleCount(for: try alice.file(a1).shared.key) == 3)
        #expect(failure { try bob.file(a2) } == .staleFile)  // another session's id

        try alice.close(a1)
        #expect(failure { try alice.file(a1) } == .staleFile)
        #expect(failure { try alice.close(a1) } == .staleFile)
        alice.closeAll()
        #expect(alice.count == 0)
        #expect(table.count == 1)
        bob.closeAll()
        #expect(table.count == 0)
        // Ids are not reused within a session.
        #expect(try alice.insert(table.open("f", in: export)).rawValue > a2.rawValue)
        alice.closeAll()
    }

    @Test func sessionLimitOnOpenFiles() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "x")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let session = SessionFiles(maxOpenFiles: 2)
        _ = try session.insert(table.open("f", in: export))
        #expect(!session.isFull)
        _ = try session.insert(table.open("f", in: export))
        #expect(session.isFull)
        let extra = try table.open("f", in: export)
        #expect(failure { try session.insert(extra) } == .tooMany)
        #expect(extra.isClosed)
        #expect(table.handleCount(for: extra.shared.key) == 2)
        session.closeAll()
        #expect(table.count == 0)
    }

    @Test func openAndCreateSemantics() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("existing", "12345")
        fixture.mkdir("dir")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)

        #expect(failure { try table.open("missing", in: export) } == .notFound)
        #expect(failure { try table.open("missing/child", in: export, options: createNew) } == .notFound)
        #expect(failure { try table.open("dir", in: export) } == .isDir)
        #expect(failure { try table.open("", in: export) } == .isDir)
        #expect(failure { try table.open("existing/x", in: export) } == .notDir)
        let exclusive = FileOpenOptions(write: true, create: true, exclusive: true)
        #expect(failure { try table.open("existing", in: export, options: exclusive) } == .exists)
        #expect(failure { try table.open("existing", in: export, options: FileOpenOptions(truncate: true)) } == .invalidArgument)
        #expect(failure { try table.open("existing", in: export, options: FileOpenOptions(read: false)) } == .invalidArgument)
        #expect(failure { try table.open("existing", in: export, options: FileOpenOptions(exclusive: true)) } == .invalidArgument)
        #expect(mkfifo(fixture.exportPath + "/fifo", 0o644) == 0)
        #expect(failure { try table.open("fifo", in: export) } == .accessDenied)  // and did not block

        let created = try table.open("new", in: export, options: exclusive)
        #expect(try created.status().size == 0)
        #expect(try created.status().permissions == [.ownerReadWrite, .groupRead, .otherRead])
        created.close()
        #expect(fixture.exists("new"))

        let reopened = try table.open("existing", in: export, options: createNew)  // create, not exclusive: opens it
        #expect(try reopened.readString(at: 0, count: 5) == "12345")
        reopened.close()

        let truncated = try table.open("existing", in: export, options: FileOpenOptions(write: true, truncate: true))
        #expect(try truncated.status().size == 0)
        truncated.close()
        #expect(fixture.contents("existing") == "")
        #expect(table.count == 0)
    }

    @Test func readOnlyHandleRefusesMutation() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "abc")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let handle = try table.open("f", in: export)
        #expect(failure { try handle.write("x", at: 0) } == .accessDenied)
        #expect(failure { try handle.setSize(0) } == .accessDenied)
        #expect(failure { try handle.punchHole(offset: 0, length: 1) } == .accessDenied)
        try handle.flush()
        handle.close()
        #expect(fixture.contents("f") == "abc")

        let writeOnly = try table.open("f", in: export, options: FileOpenOptions(read: false, write: true))
        #expect(failure { try writeOnly.read(at: 0, count: 1) } == .accessDenied)
        try writeOnly.write("A", at: 0)
        writeOnly.close()
        #expect(fixture.contents("f") == "Abc")
    }

    @Test func readOnlyExportRefusesEveryMutation() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "abc")
        fixture.mkdir("d")
        let export = try fixture.export(readOnly: true)
        let table = FileTable(logger: quietLogger)
        #expect(failure { try table.open("f", in: export, options: readWrite) } == .readOnly)
        #expect(failure { try table.open("new", in: export, options: createNew) } == .readOnly)
        #expect(failure { try table.open("f", in: export, options: FileOpenOptions(write: true, truncate: true)) } == .readOnly)
        #expect(failure { try export.unlink("f") } == .readOnly)
        #expect(failure { try export.unlink("d") } == .readOnly)
        #expect(failure { try export.rename("f", to: "g") } == .readOnly)
        #expect(failure { try export.makeDirectory("e") } == .readOnly)
        let chmod = FileAttributeChange(permissions: FilePermissions(rawValue: 0o600))
        #expect(failure { try export.setAttributes("f", chmod) } == .readOnly)
        #expect(failure { try table.setAttributes(of: "f", in: export, chmod) } == .readOnly)

        // Reading works; a read handle still can't write, even if the file table's descriptor could.
        let handle = try table.open("f", in: export)
        #expect(try handle.readString(at: 0, count: 3) == "abc")
        #expect(failure { try handle.write("x", at: 0) } == .readOnly)
        #expect(failure { try handle.setSize(10) } == .readOnly)
        #expect(failure { try handle.punchHole(offset: 0, length: 3) } == .readOnly)
        #expect(failure { try handle.allocate(offset: 0, length: 4096) } == .readOnly)
        #expect(failure { try handle.setAttributes(chmod) } == .readOnly)
        #expect(failure { try table.setAttributes(of: "f", in: export, chmod) } == .readOnly)  // open here, still refused
        #expect(try export.status(of: "f").size == 3)
        #expect(try export.list("", maxEntries: 10).entries.map(\.name).sorted() == ["d", "f"])
        handle.close()
        #expect(fixture.contents("f") == "abc")
        #expect(fixture.exists("d") && !fixture.exists("e") && !fixture.exists("g") && !fixture.exists("new"))
    }

    @Test func aFileSharedWithAWritableExportStaysReadOnlyThroughTheReadOnlyOne() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "abc")
        let writable = try fixture.export()
        let readOnly = try fixture.export(readOnly: true)
        let table = FileTable(logger: quietLogger)
        let w = try table.open("f", in: writable, options: readWrite)
        let r = try table.open("f", in: readOnly)
        #expect(w.shared === r.shared)
        #expect(failure { try r.write("x", at: 0) } == .readOnly)
        try w.write("X", at: 0)
        #expect(try r.readString(at: 0, count: 3) == "Xbc")
        w.close()
        r.close()
    }
}
