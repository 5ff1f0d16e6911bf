@testable import DaxshareServer
import DaxshareWire
import Testing

/// SERVER_CLIENTS over a fake channel (PROTOCOL.md §4.9.1): a session sees itself, and every
/// client only if its identity is one of the administrators, as configured now.
@Suite("Who holds what")
struct ServerClientsTests {
    func clients(_ c: ConnectionUnderTest) async throws -> ServerClientsResponse {
        guard case let .serverClients(r) = try await c.ok(.serverClients) else { throw Unexpected("SERVER_CLIENTS") }
        return r
    }

    @Test func aSessionSeesItselfWithItsIdentityAndOpenFiles() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            _ = try await c.open("a", tree: tree)
            _ = try await c.open("b", tree: tree)
            let r = try await clients(c)
            #expect(r.total == 1 && r.clients.count == 1)
            let me = try #require(r.clients.first)
            #expect(me.sessionId == c.sessionId && me.identity == "tester" && me.openFiles == 2)
            #expect(me.layoutsHeld == 0 && me.layouts.isEmpty && !me.address.isEmpty)
        }
    }

    @Test func anAdministratorSeesEveryClientAndOthersOnlyThemselves() async throws {
        try await withConnection(configure: { $0.administrators = ["tester"] }) { c in
            _ = try await c.establish()
            // A second connection of the server, not served: it never set up a session.
            let other = ClientConnection(channel: FakeRequestChannel(), rdma: nil, server: c.context)
            let mine = c.connection
            c.context.listConnections { [mine, other] }
            // The other connection has no session yet: it is not a client to list.
            #expect(try await clients(c).total == 1)
            // Not an administrator any more (a reload): itself only.
            try await c.context.reload(
                exports: [.init(name: ConnectionUnderTest.exportName, path: .init(c.fixture.exportPath))],
                secret: ConnectionUnderTest.secret, secrets: [:], administrators: [])
            #expect(try await clients(c).clients.map(\.sessionId) == [c.sessionId])
        }
    }

    @Test func beforeASessionThereIsNothingToList() async throws {
        try await withConnection { c in
            _ = try await c.negotiate()
            #expect(try await c.call(.serverClients).status == .notAuthenticated)
        }
    }
}
