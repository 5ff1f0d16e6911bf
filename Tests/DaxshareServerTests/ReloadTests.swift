@testable import DaxshareServer
import DaxshareWire
import SystemPackage
import Testing

/// A configuration reload (`ServerContext.reload`, SIGHUP in daxshared) against an
/// established session over a fake channel: what stays, what each tree sees from its next
/// request on (PROTOCOL.md §4.6), and that a reload that cannot be applied changes nothing.
@Suite("Configuration reload")
struct ReloadTests {
    typealias Spec = ServerConfiguration.ExportSpec
    let secret = ConnectionUnderTest.secret

    func share(_ c: ConnectionUnderTest, readOnly: Bool = false, identities: Set<String>? = nil) -> Spec {
        Spec(name: ConnectionUnderTest.exportName, path: FilePath(c.fixture.exportPath), readOnly: readOnly, identities: identities)
    }

    func openStatus(_ c: ConnectionUnderTest, tree: UInt32, write: Bool = true) async throws -> Status {
        let flags: OpenFlags = write ? [.read, .write, .create] : [.read]
        return try await c.call(.open(OpenRequest(treeId: tree, flags: flags, path: "f"))).status
    }

    @Test func aRemovedExportAnswersExportRemovedAndTheSessionGoesOnWithAnAddedOne() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            let fileId = try await c.open("f", tree: tree)
            let other = ExportFixture()
            defer { other.remove() }
            let summary = try await c.context.reload(
                exports: [Spec(name: "other", path: FilePath(other.exportPath))], secret: secret, secrets: [:])
            #expect(summary.added == ["other"] && summary.removed == [ConnectionUnderTest.exportName])
            #expect(try await openStatus(c, tree: tree) == .exportRemoved)
            // A file opened through it is refused too, but may be closed.
            #expect(try await c.call(.stat(.fileId(fileId))).status == .exportRemoved)
            #expect(try await c.call(.close(CloseRequest(fileId: fileId))).status == .ok)
            #expect(try await c.call(.treeConnect(TreeConnectRequest(exportName: ConnectionUnderTest.exportName))).status == .notFound)
            // The same session, no new SESSION_SETUP: the added export serves it.
            guard case let .treeConnect(t) = try await c.ok(.treeConnect(TreeConnectRequest(exportName: "other"))) else {
                throw Unexpected("TREE_CONNECT")
            }
            #expect(try await openStatus(c, tree: t.treeId) == .ok)
            #expect(c.counter(ServerCounter.configReloads) == 1)
        }
    }

    @Test func anExportMadeReadOnlyRefusesChangesFromTheNextRequest() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            _ = try await c.open("f", tree: tree)
            let summary = try await c.context.reload(exports: [share(c, readOnly: true)], secret: secret, secrets: [:])
            #expect(summary.changed == [ConnectionUnderTest.exportName] && summary.added.isEmpty && summary.removed.isEmpty)
            #expect(try await openStatus(c, tree: tree) == .readOnly)
            #expect(try await openStatus(c, tree: tree, write: false) == .ok)
        }
    }

    @Test func anIdentityNoLongerAllowedIsDeniedOnItsTreeAndAtTreeConnect() async throws {
        try await withConnection { c in
            let tree = try await c.establish()  // as "tester"
            _ = try await c.open("f", tree: tree)
            try await c.context.reload(exports: [share(c, identities: ["someone"])], secret: secret, secrets: [:])
            #expect(try await openStatus(c, tree: tree, write: false) == .accessDenied)
            #expect(try await c.call(.treeConnect(TreeConnectRequest(exportName: ConnectionUnderTest.exportName))).status == .accessDenied)
            try await c.context.reload(exports: [share(c, identities: ["someone", "tester"])], secret: secret, secrets: [:])
            #expect(try await openStatus(c, tree: tree, write: false) == .ok)
        }
    }

    @Test func secretsAreRotatedForTheNextAuthentication() async throws {
        try await withConnection { c in
            let rotated = Array("another secret of 32 bytes, ok..".utf8)
            let own = Array("tester's own secret, 32 bytes ok".utf8)
            try await c.context.reload(exports: [share(c)], secret: rotated, secrets: ["tester": own])
            #expect(c.context.secret(for: "tester") == own)
            #expect(c.context.secret(for: "anyone") == rotated)
            _ = try await c.negotiate()
            #expect(try await c.authenticate(secret: secret).answer.status == .authFailed)
            #expect(try await c.authenticate(secret: own).answer.status == .ok)
        }
    }

    @Test func aReloadThatCannotBeAppliedChangesNothing() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            let missing = Spec(name: "missing", path: "/nonexistent/daxshare-reload")
            await #expect(throws: ServerError.self) {
                try await c.context.reload(exports: [share(c, readOnly: true), missing], secret: secret, secrets: [:])
            }
            await #expect(throws: ServerError.self) {
                try await c.context.reload(exports: [share(c), share(c)], secret: secret, secrets: [:])
            }
            await #expect(throws: ServerError.self) {
                try await c.context.reload(exports: [share(c)], secret: [], secrets: [:])
            }
            #expect(c.context.export(named: "missing") == nil)
            #expect(!c.export.isReadOnly)
            #expect(try await openStatus(c, tree: tree) == .ok)
            #expect(c.counter(ServerCounter.configReloads) == 0)
        }
    }
}
