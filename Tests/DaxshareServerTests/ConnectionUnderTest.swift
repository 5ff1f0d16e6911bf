@testable import DaxshareServer
import Crypto
import DaxshareWire
import Synchronization
import SystemPackage
import Testing

/// One `ClientConnection` served over a `FakeRequestChannel`, with a real `ServerContext` (file
/// table, layout registry, counters, authentication) over a scratch export: the test is the
/// client. Use through `withConnection`, which always ends the connection and removes the export.
final class ConnectionUnderTest {
    static let secret = Array("a pre-shared secret, 32 bytes ok".utf8)
    static let exportName = "share"

    let fixture: ExportFixture
    let context: ServerContext
    let channel = FakeRequestChannel()
    let connection: ClientConnection
    private let served: Task<Void, Never>
    private let finished = Finished()
    /// The session's id once `authenticate` succeeded.
    private(set) var sessionId: UInt64 = 0
    private var nextMessageId: UInt64 = 1

    /// Whether `serve` has returned (the session's resources released).
    final class Finished: Sendable {
        let value = Atomic(false)
    }

    /// `configure` changes the server's configuration from the defaults. File leases are off:
    /// they are the kernel's business (`LeaseTests`), and a layout here is held by a fake.
    init(configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
        fixture = ExportFixture()
        var configuration = ServerConfiguration(
            host: "192.0.2.1", exports: [.init(name: Self.exportName, path: FilePath(fixture.exportPath))], secret: Self.secret)
        configuration.fileLeases = false
        configure(&configuration)
        context = ServerContext(
            configuration: configuration, exports: [Self.exportName: try fixture.export()], counters: ServerCounters(),
            logger: quietLogger)
        connection = ClientConnection(channel: channel, rdma: nil, server: context)
        // The server's connections, as a Server would list them: this one.
        context.listConnections { [connection] in [connection] }
        served = Task { [connection, finished] in
            await connection.serve()
            finished.value.store(true, ordering: .releasing)
        }
    }

    var export: Export { context.exports[Self.exportName]! }
    func counter(_ name: String) -> UInt64 { context.counters[name] }

    // MARK: Requests

    /// Sends `request` as the client would, with the session's id unless told otherwise;
    /// returns its message id.
    @discardableResult
    func send(_ request: Request, sessionId: UInt64? = nil) -> UInt64 {
        let id = nextMessageId
        nextMessageId += 1
        channel.push(.request(request, messageId: id, sessionId: sessionId ?? self.sessionId))
        return id
    }

    /// Sends `request` and waits for its answer.
    func call(_ request: Request, sessionId: UInt64? = nil) async throws -> Message {
        try await channel.response(to: send(request, sessionId: sessionId))
    }

    /// The body of a successful answer; a failed one is an error naming its status.
    func ok(_ request: Request) async throws -> Response {
        try await call(request).succeeded()
    }

    func negotiate(_ capabilities: Capabilities = .allV1) async throws -> NegotiateResponse {
        let r = try await ok(.negotiate(NegotiateRequest(capabilities: capabilities, clientId: Array(repeating: 1, count: 16))))
        guard case let .negotiate(n) = r else { throw Unexpected(r) }
        return n
    }

    /// Both rounds of SESSION_SETUP, the proof made with `secret` as a client makes it (§4.4.3).
    struct Handshake {
        var sessionId: UInt64
        var serverNonce: [UInt8]
        var clientNonce: [UInt8]
        var identity: String
        /// Round 2's answer.
        var answer: Message
    }

    func authenticate(identity: String = "tester", secret: [UInt8] = secret) async throws -> Handshake {
        let clientNonce = (0..<Limits.nonceLength).map { _ in UInt8.random(in: 0...255) }
        let challenge = try await call(.sessionSetup(.begin(identity: identity, clientNonce: clientNonce)), sessionId: 0)
        guard case let .response(.sessionSetup(.challenge(serverNonce))) = challenge.body else { throw Unexpected(challenge) }
        let proof = Self.mac(
            SessionAuth.clientProofInput(
                sessionId: challenge.sessionId, serverNonce: serverNonce, clientNonce: clientNonce, identity: identity),
            secret: secret)
        let answer = try await call(.sessionSetup(.proof(clientProof: proof)), sessionId: challenge.sessionId)
        if answer.status == .ok { sessionId = challenge.sessionId }
        return Handshake(
            sessionId: challenge.sessionId, serverNonce: serverNonce, clientNonce: clientNonce, identity: identity, answer: answer)
    }

    static func mac(_ input: [UInt8], secret: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: secret)))
    }

    /// NEGOTIATE, SESSION_SETUP and TREE_CONNECT of the export; returns the tree id.
    func establish() async throws -> UInt32 {
        _ = try await negotiate()
        try await authenticate().answer.succeeded()
        guard case let .treeConnect(t) = try await ok(.treeConnect(TreeConnectRequest(exportName: Self.exportName))) else {
            throw Unexpected("TREE_CONNECT answered otherwise")
        }
        return t.treeId
    }

    /// OPENs `path` (created if need be) for reading and writing; returns the file id.
    func open(_ path: String, tree: UInt32) async throws -> UInt64 {
        let r = try await ok(.open(OpenRequest(treeId: tree, flags: [.read, .write, .create], path: path)))
        guard case let .open(o) = r else { throw Unexpected(r) }
        return o.fileId
    }

    // MARK: The end

    /// Waits up to `timeout` for `serve` to return.
    func served(within timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !finished.value.load(ordering: .acquiring) {
            guard ContinuousClock.now < deadline else { throw Unexpected("serve did not return within \(timeout)") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Closes the channel (as the server's stop does), waits for `serve`, removes the export.
    func finish() async {
        channel.close(reason: "the test is over")
        do { try await served() } catch { Issue.record(error) }
        fixture.remove()
    }
}

/// Runs `body` against a new connection, which is ended afterwards whatever happened.
func withConnection(
    configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (ConnectionUnderTest) async throws -> Void
) async throws {
    let c = try ConnectionUnderTest(configure: configure)
    do {
        try await body(c)
    } catch {
        await c.finish()
        throw error
    }
    await c.finish()
}

struct Unexpected: Error, CustomStringConvertible {
    var description: String
    init(_ what: Any) { description = "unexpected: \(what)" }
}

extension Message {
    /// The body of a successful response; anything else is an error naming what came.
    @discardableResult
    func succeeded() throws -> Response {
        guard case let .response(r) = body else { throw Unexpected("\(command) answered \(status)") }
        return r
    }
}
