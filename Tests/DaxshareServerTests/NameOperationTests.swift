import DaxshareServer
import Foundation
import Glibc
import Testing

@Suite struct NameOperationTests {
    @Test func listPagesThroughSortedEntries() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        for i in (0..<10).reversed() { fixture.put("dir/file\(i)", String(repeating: "x", count: i)) }
        fixture.mkdir("dir/sub")
        let export = try fixture.export()

        var names: [String] = []
        var cookie: UInt64 = 0
        var pages = 0
        while true {
            let page = try export.list("dir", cookie: cookie, maxEntries: 4)
            #expect(page.entries.count <= 4)
            names += page.entries.map(\.name)
            pages += 1
            guard let next = page.nextCookie else { break }
            #expect(!page.entries.isEmpty)
            #expect(next != 0)
            cookie = next
        }
        #expect(pages == 3)
        #expect(names.sorted() == (0..<10).map { "file\($0)" } + ["sub"])  // each exactly once

        let all = try export.list("dir", maxEntries: 100)
        #expect(all.nextCookie == nil)
        let file3 = try #require(all.entries.first { $0.name == "file3" })
        #expect(file3.status.kind == .regular && file3.status.size == 3)
        #expect(all.entries.first { $0.name == "sub" }?.status.kind == .directory)
        #expect(try export.list("", maxEntries: 10).entries.map(\.name) == ["dir"])
        #expect(failure { try export.list("dir", maxEntries: 0) } == .invalidArgument)
        #expect(failure { try export.list("dir/file1", maxEntries: 1) } == .notDir)
        #expect(failure { try export.list("nope", maxEntries: 1) } == .notFound)
    }

    @Test func listPagingMissesNothingWhenEntriesComeAndGo() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        for i in 0..<40 { fixture.put("d/keep\(i)") }
        for i in 0..<10 { fixture.put("d/gone\(i)") }
        let export = try fixture.export()
        var seen: [String] = []
        var cookie: UInt64 = 0
        var pages = 0
        while true {
            let page = try export.list("d", cookie: cookie, maxEntries: 7)
            seen += page.entries.map(\.name)
            pages += 1
            if pages == 2 {  // churn between pages
                for i in 0..<10 { try export.unlink("d/gone\(i)") }
                for i in 0..<10 { fixture.put("d/new\(i)") }
            }
            guard let next = page.nextCookie else { break }
            cookie = next
        }
        let kept = Set(seen.filter { $0.hasPrefix("keep") })
        #expect(kept.count == 40)  // every entry present throughout was listed
        #expect(seen.filter { $0.hasPrefix("keep") }.count == 40)  // once
    }

    @Test func listPageStopsWhenTheNextEntryDoesNotFit() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        for i in 0..<5 { fixture.put("d/f\(i)") }
        let export = try fixture.export()
        var calls = 0
        let page = try export.list("d", maxEntries: 100) { _ in
            calls += 1
            return calls < 2  // room for two entries
        }
        #expect(page.entries.count == 2)
        #expect(page.nextCookie != nil)
        let none = try export.list("d", maxEntries: 100) { _ in false }
        #expect(none.entries.count == 1)  // a page always makes progress
        let rest = try export.list("d", cookie: page.nextCookie!, maxEntries: 100)
        #expect(Set(page.entries.map(\.name) + rest.entries.map(\.name)).count == 5)
        #expect(rest.nextCookie == nil)
    }

    @Test func renameMovesAndMapsRenameatErrors() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("a", "A")
        fixture.put("b", "B")
        fixture.put("full/x", "x")
        fixture.mkdir("empty")
        fixture.mkdir("other")
        let export = try fixture.export()

        try export.rename("a", to: "other/a2")
        #expect(!fixture.exists("a"))
        #expect(fixture.contents("other/a2") == "A")
        try export.rename("other/a2", to: "b")  // replaces a file, as rename(2) does
        #expect(fixture.contents("b") == "A")

        #expect(failure { try export.rename("b", to: "empty") } == .isDir)  // file over directory
        #expect(failure { try export.rename("empty", to: "b") } == .notDir)  // directory over file
        #expect(failure { try export.rename("other", to: "full") } == .notEmpty)
        #expect(failure { try export.rename("missing", to: "c") } == .notFound)
        #expect(failure { try export.rename("other", to: "other/inside") } == .invalidArgument)
        #expect(failure { try export.rename("", to: "c") } == .accessDenied)
        #expect(failure { try export.rename("b", to: "") } == .accessDenied)
        fixture.put("c", "C")
        #expect(failure { try export.rename("b", to: "c", noReplace: true) } == .exists)
        #expect(fixture.contents("c") == "C")
        try export.rename("b", to: "d", noReplace: true)
        #expect(fixture.contents("d") == "A")
        try export.rename("empty", to: "other")  // a directory over an empty directory
        #expect(!fixture.exists("empty"))
    }

    @Test func renameOfAnOpenFileKeepsItsEntry() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("a", "A")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let handle = try table.open("a", in: export)
        try export.rename("a", to: "b")
        let again = try table.open("b", in: export)
        #expect(again.shared === handle.shared)
        handle.close()
        again.close()
    }

    @Test func unlinkRemovesFilesAndEmptyDirectories() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "x")
        fixture.put("full/x", "x")
        fixture.mkdir("empty")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let handle = try table.open("f", in: export)

        try export.unlink("f")
        #expect(!fixture.exists("f"))
        #expect(try handle.readString(at: 0, count: 1) == "x")  // open handles keep the data
        handle.close()
        #expect(failure { try export.unlink("empty") } == .isDir)  // a directory needs the flag
        try export.unlink("empty", directory: true)
        #expect(!fixture.exists("empty"))
        #expect(failure { try export.unlink("full", directory: true) } == .notEmpty)
        #expect(failure { try export.unlink("full/x", directory: true) } == .notDir)
        #expect(failure { try export.unlink("missing") } == .notFound)
        #expect(failure { try export.unlink("") } == .accessDenied)
        #expect(failure { try export.unlink("", directory: true) } == .accessDenied)
        #expect(fixture.exists("full/x"))
    }

    @Test func makeDirectory() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        let export = try fixture.export()
        try export.makeDirectory("d")
        try export.makeDirectory("d/e")
        #expect(try export.status(of: "d/e").kind == .directory)
        #expect(failure { try export.makeDirectory("d") } == .exists)
        #expect(failure { try export.makeDirectory("x/y") } == .notFound)
        #expect(failure { try export.makeDirectory("") } == .accessDenied)
    }

    @Test func makeDirectoryCreatesWithTheModeAndReturnsItsStatus() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "x")
        let export = try fixture.export()
        let d = try export.makeDirectory("d", permissions: FilePermissions(rawValue: 0o750))
        #expect(d.kind == .directory)
        #expect(d.permissions.rawValue == 0o750 & ~processUmask)  // the umask applies, as to a created file
        #expect(fixture.lstatus("d").st_mode & 0o7777 == 0o750 & ~processUmask)
        #expect(d.inode == UInt64(fixture.lstatus("d").st_ino))
        #expect(d.linkCount == 2)
        // The sticky bit is kept (a shared scratch directory).
        #expect(try export.makeDirectory("t", permissions: FilePermissions(rawValue: 0o1777)).permissions.rawValue
                == 0o1777 & ~processUmask)
        #expect(failure { try export.makeDirectory("d") } == .exists)
        #expect(failure { try export.makeDirectory("f") } == .exists)
        #expect(failure { try export.makeDirectory("missing/x") } == .notFound)
        #expect(failure { try export.makeDirectory("f/x") } == .notDir)
        #expect(failure { try export.makeDirectory(String(repeating: "n", count: 256)) } == .nameTooLong)
        #expect(failure { try fixture.export(readOnly: true).makeDirectory("e") } == .readOnly)
        #expect(!fixture.exists("e"))
    }

    @Test func setAttributesByNameChangesModeAndTimes() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("f", "abc")
        fixture.mkdir("d")
        let export = try fixture.export()
        let mtime: Int64 = 1_500_000_000_123_456_789
        let atime: Int64 = -1_000_000_001  // before the epoch: tv_sec -2, tv_nsec 999999999
        let before = fixture.lstatus("f")
        let s = try export.setAttributes(
            "f", FileAttributeChange(permissions: FilePermissions(rawValue: 0o4600), accessTime: .at(nanosecondsSinceEpoch: atime),
                                     modificationTime: .at(nanosecondsSinceEpoch: mtime)))
        #expect(s.permissions.rawValue == 0o600)  // chmod: no umask; the set-user-ID bit dropped
        #expect(s.modificationTime == mtime)
        #expect(s.size == 3)
        let after = fixture.lstatus("f")
        #expect(after.st_mode & 0o7777 == 0o600)
        #expect(nanoseconds(after.st_mtim) == mtime)
        #expect(nanoseconds(after.st_atim) == atime)
        #expect(nanoseconds(after.st_ctim) >= nanoseconds(before.st_ctim))

        // Only what is asked for changes.
        let modeOnly = try export.setAttributes("f", FileAttributeChange(permissions: FilePermissions(rawValue: 0o644)))
        #expect(modeOnly.permissions.rawValue == 0o644 && modeOnly.modificationTime == mtime)
        #expect(nanoseconds(fixture.lstatus("f").st_atim) == atime)
        // NOW is the server's clock.
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        let touched = try export.setAttributes("f", FileAttributeChange(modificationTime: .now))
        #expect(abs(touched.modificationTime - now) < 60_000_000_000)
        #expect(nanoseconds(fixture.lstatus("f").st_atim) == atime)
        let accessed = try export.setAttributes("f", FileAttributeChange(accessTime: .now))
        #expect(accessed.modificationTime == touched.modificationTime)
        #expect(abs(nanoseconds(fixture.lstatus("f").st_atim) - now) < 60_000_000_000)
        // An empty change changes nothing and answers the status.
        #expect(try export.setAttributes("f", FileAttributeChange()).modificationTime == touched.modificationTime)

        // A directory, and the export root.
        #expect(try export.setAttributes("d", FileAttributeChange(permissions: FilePermissions(rawValue: 0o711))).permissions.rawValue
                == 0o711)
        #expect(try export.setAttributes("", FileAttributeChange(modificationTime: .at(nanosecondsSinceEpoch: mtime)))
            .modificationTime == mtime)
        #expect(try export.status(of: "").modificationTime == mtime)

        #expect(fixture.contents("f") == "abc")  // (a read, which may move the access time: last)
        #expect(failure { try export.setAttributes("missing", FileAttributeChange(accessTime: .now)) } == .notFound)
        #expect(failure { try export.setAttributes("f/x", FileAttributeChange(accessTime: .now)) } == .notDir)
        let readOnly = try fixture.export(readOnly: true)
        #expect(failure { try readOnly.setAttributes("f", FileAttributeChange(permissions: FilePermissions(rawValue: 0o600))) }
                == .readOnly)
        #expect(failure { try readOnly.setAttributes("", FileAttributeChange(accessTime: .now)) } == .readOnly)
        #expect(fixture.lstatus("f").st_mode & 0o7777 == 0o644)
    }

    @Test func setAttributesOfASymlinkChangeTheLinkItselfNeverItsTarget() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("target", "x")
        fixture.symlink("link", to: "target")
        let export = try fixture.export()
        let targetBefore = fixture.lstatus("target")
        let mtime: Int64 = 1_400_000_000_000_000_000
        let s = try export.setAttributes("link", FileAttributeChange(modificationTime: .at(nanosecondsSinceEpoch: mtime)))
        #expect(s.kind == .symbolicLink && s.modificationTime == mtime)
        #expect(nanoseconds(fixture.lstatus("link").st_mtim) == mtime)
        #expect(nanoseconds(fixture.lstatus("target").st_mtim) == nanoseconds(targetBefore.st_mtim))
        // A symlink has no mode of its own on Linux.
        #expect(failure { try export.setAttributes("link", FileAttributeChange(permissions: FilePermissions(rawValue: 0o600))) }
                == .notSupported)
        #expect(fixture.lstatus("target").st_mode & 0o7777 == targetBefore.st_mode & 0o7777)
    }

    @Test func fileSystemSpaceIsTheExportsStatvfs() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        let space = try fixture.export().space()
        var expected = statvfs()
        #expect(statvfs(fixture.exportPath, &expected) == 0)
        #expect(space.blockSize == UInt64(expected.f_frsize) && space.blockSize >= 512)
        #expect(space.totalBlocks == UInt64(expected.f_blocks) && space.totalBlocks > 0)
        #expect(space.freeBlocks <= space.totalBlocks)
        #expect(space.availableBlocks <= space.freeBlocks)
        #expect(space.totalFiles == UInt64(expected.f_files))
        #expect(space.freeFiles <= space.totalFiles || space.totalFiles == 0)
        #expect(space.maxNameLength == 255)
        // A read-only export has space too.
        #expect(try fixture.export(readOnly: true).space().totalBlocks == space.totalBlocks)
    }

    @Test func exportOfAMissingDirectoryFails() {
        #expect(failure { try Export(name: "x", root: "/tmp/daxshare-no-such-dir", logger: quietLogger) } == .notFound)
    }

    @Test func errnoClassification() {
        let cases: [(Errno, FileSystemError.Code)] = [
            (.noSuchFileOrDirectory, .notFound), (.fileExists, .exists), (.permissionDenied, .accessDenied),
            (.improperLink, .accessDenied), (.tooManySymbolicLinkLevels, .accessDenied), (.notDirectory, .notDir),
            (.isDirectory, .isDir), (.readOnlyFileSystem, .readOnly), (.noSpace, .noSpace),
            (.diskQuotaExceeded, .noSpace), (.invalidArgument, .invalidArgument), (.ioError, .ioError),
            (.tooManyOpenFiles, .tooMany), (.directoryNotEmpty, .notEmpty), (.fileNameTooLong, .nameTooLong),
            (.fileTooLarge, .fileTooLarge), (.notSupported, .notSupported), (.notSupportedOnSocket, .notSupported),
        ]
        for (errno, code) in cases {
            let error = FileSystemError(errno: errno, operation: "test")
            #expect(error.code == code, "\(errno)")
            #expect(error.errno == errno)
        }
    }
}

import SystemPackage
