import DaxshareServer
import Testing

@Suite struct ClientPathTests {
    @Test(arguments: ["../x", "/etc/passwd", "a/../../x", "a/..", "..", "a\0b", "/", "\0",
                      "a//b", "a/", ".", "./a", "a/./b"])
    func escapesAndMalformedPathsAreDenied(path: String) {
        #expect(failure { try ClientPath(validating: path) } == .accessDenied)
    }

    @Test(arguments: [String(repeating: "n", count: 256), String(repeating: "a/", count: 2047) + "ab"])
    func overlongPathsAreNameTooLong(path: String) {
        #expect(failure { try ClientPath(validating: path) } == .nameTooLong)
    }

    @Test func acceptsOrdinaryPaths() throws {
        #expect(try ClientPath(validating: "").isRoot)
        #expect(try ClientPath(validating: "a/b c/..d/é.txt").components == ["a", "b c", "..d", "é.txt"])
        #expect(try ClientPath(validating: String(repeating: "n", count: 255)).components.count == 1)
        #expect(try ClientPath(validating: String(repeating: "a/", count: 2047) + "a").components.count == 2048)
    }
}

/// Every way out of the export, tried through every kind of operation.
@Suite struct PathEscapeTests {
    @Test func lexicalEscapesAreDeniedEverywhere() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        for path in ["../outside/secret", "/etc/passwd", "a/../../outside/secret", "secret\0", "../export/x"] {
            #expect(failure { try table.open(path, in: export) } == .accessDenied, "open \(path)")
            #expect(failure { try table.open(path, in: export, options: createNew) } == .accessDenied, "create \(path)")
            #expect(failure { try export.status(of: path) } == .accessDenied, "stat \(path)")
            #expect(failure { try export.list(path, maxEntries: 10) } == .accessDenied, "list \(path)")
            #expect(failure { try export.unlink(path) } == .accessDenied, "unlink \(path)")
            #expect(failure { try export.makeDirectory(path) } == .accessDenied, "mkdir \(path)")
            #expect(failure { try export.rename(path, to: "x") } == .accessDenied, "rename from \(path)")
            let chmod = FileAttributeChange(permissions: FilePermissions(rawValue: 0o777), accessTime: .now)
            #expect(failure { try export.setAttributes(path, chmod) } == .accessDenied, "setattr \(path)")
            #expect(failure { try table.setAttributes(of: path, in: export, chmod) } == .accessDenied, "setattr \(path)")
        }
        #expect(table.count == 0)
        #expect(FileManagerCheck.exists(fixture.outsidePath + "/secret"))
    }

    @Test func symlinksLeadingOutsideAreDenied() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("file", "inside")
        fixture.symlink("etc", to: "/etc")  // absolute, to a directory outside
        fixture.symlink("passwd", to: "/etc/passwd")  // absolute, to a file outside
        fixture.symlink("up", to: "..")  // relative, to the export's parent
        fixture.symlink("outdir", to: fixture.outsidePath)  // a symlinked directory pointing outside
        fixture.symlink("reloutdir", to: "../outside")
        fixture.symlink("secretlink", to: "../outside/secret")
        fixture.mkdir("sub")
        fixture.symlink("sub/deep", to: "../../outside/secret")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)

        for path in ["etc/passwd", "passwd", "up/outside/secret", "outdir/secret", "reloutdir/secret",
                     "secretlink", "sub/deep"] {
            #expect(failure { try table.open(path, in: export) } == .accessDenied, "open \(path)")
            #expect(failure { try table.open(path, in: export, options: readWrite) } == .accessDenied, "open rw \(path)")
        }
        // Creating through a symlinked directory that leads outside.
        #expect(failure { try table.open("outdir/planted", in: export, options: createNew) } == .accessDenied)
        #expect(failure { try table.open("etc/planted", in: export, options: createNew) } == .accessDenied)
        // Name operations resolve the parent beneath the export.
        #expect(failure { try export.status(of: "outdir/secret") } == .accessDenied)
        #expect(failure { try export.status(of: "up/outside") } == .accessDenied)
        #expect(failure { try export.unlink("outdir/secret") } == .accessDenied)
        #expect(failure { try export.unlink("reloutdir/secret") } == .accessDenied)
        #expect(failure { try export.makeDirectory("outdir/new") } == .accessDenied)
        #expect(failure { try export.rename("file", to: "outdir/stolen") } == .accessDenied)
        #expect(failure { try export.rename("outdir/secret", to: "mine") } == .accessDenied)
        #expect(failure { try export.list("etc", maxEntries: 10) } == .accessDenied)
        #expect(failure { try export.list("up", maxEntries: 10) } == .accessDenied)
        #expect(failure { try export.list("outdir", maxEntries: 10) } == .accessDenied)
        // SET_ATTRIBUTES: through a directory symlink leading out, refused; on a final symlink
        // leading out, the link itself is changed (times) or refused (mode), never its target.
        let secretBefore = secretStatus(fixture)
        let chmod = FileAttributeChange(permissions: FilePermissions(rawValue: 0o777))
        let touch = FileAttributeChange(modificationTime: .at(nanosecondsSinceEpoch: 1_000_000_000))
        for path in ["outdir/secret", "reloutdir/secret", "up/outside/secret", "etc/passwd"] {
            #expect(failure { try export.setAttributes(path, chmod) } == .accessDenied, "setattr \(path)")
            #expect(failure { try table.setAttributes(of: path, in: export, touch) } == .accessDenied, "setattr \(path)")
        }
        for path in ["secretlink", "sub/deep", "passwd"] {
            #expect(failure { try export.setAttributes(path, chmod) } == .notSupported, "chmod \(path)")
            #expect(try table.setAttributes(of: path, in: export, touch).kind == .symbolicLink, "touch \(path)")
        }
        #expect(secretStatus(fixture) == secretBefore)
        var passwd = stat()
        #expect(lstat("/etc/passwd", &passwd) == 0 && nanoseconds(passwd.st_mtim) != 1_000_000_000)

        #expect(table.count == 0)
        #expect(FileManagerCheck.exists(fixture.outsidePath + "/secret"))
        #expect(!FileManagerCheck.exists(fixture.outsidePath + "/new"))
        #expect(!FileManagerCheck.exists(fixture.outsidePath + "/stolen"))
        #expect(!FileManagerCheck.exists(fixture.outsidePath + "/planted"))
        #expect(fixture.contents("file") == "inside")
    }

    @Test func creatingThroughADanglingSymlinkCreatesNothing() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.symlink("escape", to: fixture.outsidePath + "/planted")  // dangling, outside
        fixture.symlink("dangling", to: "nowhere")  // dangling, inside
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        #expect(failure { try table.open("escape", in: export, options: createNew) } == .accessDenied)
        #expect(failure { try table.open("dangling", in: export, options: createNew) } == .exists)
        let exclusive = FileOpenOptions(write: true, create: true, exclusive: true)
        #expect(failure { try table.open("dangling", in: export, options: exclusive) } == .exists)
        #expect(!FileManagerCheck.exists(fixture.outsidePath + "/planted"))
        #expect(!fixture.exists("nowhere"))
        #expect(table.count == 0)
    }

    @Test func symlinksAreThemselvesVisibleAndRemovableButNeverFollowedOut() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.symlink("etc", to: "/etc")
        let export = try fixture.export()
        // stat reports the link itself (AT_SYMLINK_NOFOLLOW), not /etc.
        #expect(try export.status(of: "etc").kind == .symbolicLink)
        // unlink removes the link, not what it points to.
        try export.unlink("etc")
        #expect(FileManagerCheck.exists("/etc/passwd"))
    }

    @Test func symlinksThatStayInsideWork() throws {
        let fixture = ExportFixture()
        defer { fixture.remove() }
        fixture.put("sub/file", "hello")
        fixture.symlink("alias", to: "sub/file")
        fixture.symlink("sub/back", to: "../sub/file")
        let export = try fixture.export()
        let table = FileTable(logger: quietLogger)
        let a = try table.open("alias", in: export)
        let b = try table.open("sub/back", in: export)
        #expect(try a.readString(at: 0, count: 5) == "hello")
        #expect(a.shared === b.shared)  // the same file, whatever name reached it
        a.close()
        b.close()
    }
}

import Foundation
import Glibc
import SystemPackage

/// The outside secret's mode and times, to see that nothing reached it.
private func secretStatus(_ fixture: ExportFixture) -> [Int64] {
    var st = stat()
    precondition(lstat(fixture.outsidePath + "/secret", &st) == 0)
    return [Int64(st.st_mode), nanoseconds(st.st_mtim), nanoseconds(st.st_ctim)]
}

enum FileManagerCheck {
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
}
