@testable import DaxshareClient
import DaxshareWire
import Synchronization
import Testing

/// When `ReconnectingSession` connects again and runs an operation again, against the fake
/// server (the link itself going down is ReliabilityLinkTests, in the testbed).
@Suite("Reconnecting session")
struct ReconnectingSessionTests {
    /// Sessions on one fake server, each over its own transport (kept, so a test can break one).
    final class Connector: Sendable {
        let server = FakeServer()
        let transports = Mutex<[FakeTransport]>([])
        /// Errors the next attempts throw, in order, before attempts succeed again.
        let failures = Mutex<[ClientError]>([])

        var attempts: Int { transports.withLock { $0.count } + failedAttempts.withLock { $0 } }
        private let failedAttempts = Mutex(0)

        func connect() async throws(ClientError) -> ClientSession {
            if let failure = failures.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                failedAttempts.withLock { $0 += 1 }
                throw failure
            }
            let transport = FakeTransport(server: server)
            transports.withLock { $0.append(transport) }
            return try await ClientSession.establish(
                over: transport, registrar: HostRegistrar(), export: "pmem",
                secret: try SessionSecret(fileContents: server.options.secret))
        }

        func session(policy: ReconnectPolicy = Connector.quick) -> ReconnectingSession {
            ReconnectingSession(policy: policy) { () async throws(ClientError) -> ClientSession in try await self.connect() }
        }

        static var quick: ReconnectPolicy {
            var p = ReconnectPolicy()
            p.initialDelay = .milliseconds(1)
            p.maxDelay = .milliseconds(5)
            p.giveUpAfter = .seconds(10)
            return p
        }
    }

    @Test func anOperationThatLosesItsConnectionRunsAgainOnANewSession() async throws {
        let c = Connector()
        let session = c.session()
        #expect(try await session.run { s throws(ClientError) in try await s.echo([1]) } == [1])
        // The link goes: the first session's transport fails under the next operation.
        c.transports.withLock { $0[0] }.fail(ClientError.transport("link down"))
        var runs = 0
        let answer = try await session.run { s throws(ClientError) in
            runs += 1
            return try await s.echo([2])
        }
        #expect(answer == [2])
        #expect(runs == 2, "once on the broken session, once on the new one")
        #expect(session.reconnects == 1)
        #expect(c.attempts == 2)
        // The new session authenticated from scratch: NEGOTIATE, both SESSION_SETUP rounds, TREE_CONNECT.
        let sent = c.transports.withLock { $0[1] }.sent.withLock { $0.map(\.command) }
        #expect(Array(sent.prefix(4)) == [.negotiate, .sessionSetup, .sessionSetup, .treeConnect])
        await session.close()
    }

    @Test func transientConnectFailuresAreRetriedUntilOneSucceeds() async throws {
        let c = Connector()
        c.failures.withLock { $0 = [.transport("the port of rxe0 is down (no link)"), .status(.tooMany, .sessionSetup), .transport("unreachable")] }
        let session = c.session()
        #expect(try await session.run { s throws(ClientError) in try await s.echo([3]) } == [3])
        #expect(c.attempts == 4)
        #expect(session.reconnects == 0, "the first session is not a reconnection")
        await session.close()
    }

    @Test func authenticationAndProtocolFailuresAreNotRetried() async throws {
        for failure in [ClientError.authentication("the server's proof does not match"), .status(.authFailed, .sessionSetup),
                        .protocol("NEGOTIATE answered with another body")] {
            let c = Connector()
            c.failures.withLock { $0 = [failure, failure] }
            let session = c.session()
            await #expect(throws: failure) { try await session.run { s throws(ClientError) in try await s.echo([]) } }
            #expect(c.attempts == 1, "\(failure) was tried again")
        }
    }

    @Test func anErrorOnALiveConnectionIsNotRetried() async throws {
        let c = Connector()
        let session = c.session()
        var runs = 0
        await #expect(throws: ClientError.status(.notFound, .stat)) {
            try await session.run { s throws(ClientError) in
                runs += 1
                return try await s.stat("missing")
            }
        }
        #expect(runs == 1)
        #expect(session.reconnects == 0)
        await session.close()
    }

    @Test func itGivesUpWhenThePolicySays() async throws {
        let c = Connector()
        c.failures.withLock { $0 = Array(repeating: .transport("unreachable"), count: 10_000) }
        var policy = Connector.quick
        policy.giveUpAfter = .milliseconds(200)
        let session = c.session(policy: policy)
        let started = ContinuousClock.now
        await #expect(throws: ClientError.transport("unreachable")) { try await session.run { s throws(ClientError) in try await s.echo([]) } }
        #expect(ContinuousClock.now - started >= .milliseconds(200))
        #expect(c.attempts >= 2)
    }

    @Test func aClosedSessionRunsNothing() async throws {
        let c = Connector()
        let session = c.session()
        _ = try await session.session()
        await session.close()
        await #expect(throws: ClientError.self) { try await session.run { s throws(ClientError) in try await s.echo([]) } }
        #expect(c.attempts == 1)
    }
}
