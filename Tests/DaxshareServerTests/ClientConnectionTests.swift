@testable import DaxshareServer
import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// A client connection's dispatch (PROTOCOL.md §3.4, §3.8, §4.3–4.5), driven over a fake
/// channel: the real session logic, authenticator, file table and layout state, with the test
/// as the client and no RDMA device (so no two-sided data and no layouts of its own).
@Suite struct ClientConnectionTests {
    // MARK: Session

    @Test func negotiateThenBothRoundsOfSessionSetupEstablishAMutuallyAuthenticatedSession() async throws {
        try await withConnection { c in
            let n = try await c.negotiate()
            #expect(n.dialect == Limits.version1)
            #expect(Int(n.maxOutstandingRequests) == c.context.maxOutstandingRequests)
            // No RDMA under a fake channel: layouts are not offered, the rest is the intersection.
            #expect(n.capabilities == [.callbacks, .punchHole, .serverStats])

            let h = try await c.authenticate()
            #expect(h.sessionId != 0)
            #expect(h.answer.sessionId == h.sessionId)
            guard case let .response(.sessionSetup(.confirmed(serverProof))) = h.answer.body else {
                Issue.record("round 2 answered \(h.answer.status)")
                return
            }
            // The server proves it holds the secret too (§4.4.3, the server's label).
            let expected = ConnectionUnderTest.mac(
                SessionAuth.serverProofInput(
                    sessionId: h.sessionId, serverNonce: h.serverNonce, clientNonce: h.clientNonce, identity: h.identity),
                secret: ConnectionUnderTest.secret)
            #expect(serverProof == expected)
            #expect(c.counter(ServerCounter.sessions) == 1)

            // The session serves requests now.
            let echo = try await c.ok(.echo(EchoMessage(data: [1, 2, 3])))
            #expect(echo == .echo(EchoMessage(data: [1, 2, 3])))
        }
    }

    @Test func aWrongProofIsAuthFailedAndTheConnectionClosesAtTheFailureLimit() async throws {
        try await withConnection(configure: { $0.maxAuthFailures = 1 }) { c in
            _ = try await c.negotiate()
            let h = try await c.authenticate(secret: Array("not the server's secret at all!!".utf8))
            #expect(h.answer.status == .authFailed)
            #expect(c.counter(ServerCounter.authFailures) == 1)
            #expect(c.counter(ServerCounter.sessions) == 0)
            let reason = try await c.channel.closed()
            #expect(reason.contains("1 failed authentications"))
            #expect(c.counter(ServerCounter.protocolViolations) == 1)
        }
    }

    @Test func aRequestBeforeAuthenticationIsNotAuthenticatedAndTheConnectionStays() async throws {
        try await withConnection { c in
            _ = try await c.negotiate()
            for request in [Request.echo(EchoMessage()), .treeConnect(TreeConnectRequest(exportName: "share")), .serverStats] {
                let answer = try await c.call(request, sessionId: 0)
                #expect(answer.status == .notAuthenticated, "\(request.command)")
                #expect(answer.command == request.command)
            }
            #expect(!c.channel.isClosed)
            // Still served: the session can be set up on the same connection.
            try await c.authenticate().answer.succeeded()
            // And a request carrying another session's id is refused the same way (§3.4, step 4).
            let wrongSession = try await c.call(.echo(EchoMessage()), sessionId: c.sessionId &+ 1)
            #expect(wrongSession.status == .notAuthenticated)
            #expect(c.counter(ServerCounter.protocolViolations) == 0)
        }
    }

    @Test func aSecondNegotiateIsInvalidArgument() async throws {
        try await withConnection { c in
            _ = try await c.negotiate()
            let again = try await c.call(.negotiate(NegotiateRequest(capabilities: [], clientId: Array(repeating: 1, count: 16))))
            #expect(again.status == .invalidArgument)
            #expect(!c.channel.isClosed)
        }
    }

    @Test func aNegotiateWithoutACommonDialectIsNotSupportedAndThenCloses() async throws {
        try await withConnection { c in
            let request = NegotiateRequest(minDialect: 0x0200, maxDialect: 0x0300, capabilities: [], clientId: Array(repeating: 1, count: 16))
            let answer = try await c.call(.negotiate(request))
            #expect(answer.status == .notSupported)
            #expect(try await c.channel.closed().contains("no common dialect"))
        }
    }

    @Test func theSessionSetupDeadlineClosesAConnectionWithoutASession() async throws {
        try await withConnection(configure: { $0.sessionSetupTimeout = .milliseconds(200) }) { c in
            _ = try await c.negotiate()
            let started = ContinuousClock.now
            let reason = try await c.channel.closed()
            #expect(reason.contains("no session set up"))
            // The deadline fired (not a measure of how soon: a loaded 2-core host took 5.8 s).
            #expect(ContinuousClock.now - started < .seconds(60))
            #expect(c.counter(ServerCounter.protocolViolations) == 1)
            try await c.served()
            #expect(c.channel.sent.isEmpty, "closed without a reply")
        }
    }

    @Test func anEstablishedSessionOutlivesTheDeadlineUntilItsLogoff() async throws {
        try await withConnection(configure: { $0.sessionSetupTimeout = .milliseconds(500) }) { c in
            _ = try await c.establish()
            try await Task.sleep(for: .seconds(1))
            #expect(!c.channel.isClosed)
            #expect(try await c.ok(.echo(EchoMessage())) == .echo(EchoMessage()))

            // LOGOFF ends the session and starts the deadline again (§4.5).
            #expect(try await c.ok(.logoff) == .logoff)
            #expect(c.counter(ServerCounter.sessions) == 0)
            #expect(try await c.channel.closed().contains("no session set up"))
        }
    }

    // MARK: Malformed messages (§3.8)

    @Test func anUndecodableHeaderClosesTheConnectionWithoutAReply() async throws {
        try await withConnection { c in
            var bytes = try Message.request(.echo(EchoMessage()), messageId: 1, sessionId: 0).encode()
            bytes[0] = 0x00  // the magic
            c.channel.push(bytes: bytes)
            let reason = try await c.channel.closed()
            #expect(reason.contains("undecodable message"))
            #expect(c.counter(ServerCounter.protocolViolations) == 1)
            try await c.served()
            #expect(c.channel.sent.isEmpty)
        }
    }

    @Test func aMalformedRequestBodyIsAnsweredBadMessageThenTheConnectionCloses() async throws {
        try await withConnection { c in
            var bytes = try Message.request(
                .negotiate(NegotiateRequest(capabilities: [], clientId: Array(repeating: 1, count: 16))), messageId: 7, sessionId: 0
            ).encode()
            bytes[Limits.headerSize + 4] = 1  // NEGOTIATE's reserved field
            c.channel.push(bytes: bytes)
            let answer = try await c.channel.response(to: 7)
            #expect(answer.status == .badMessage)
            #expect(answer.command == .negotiate)
            #expect(try await c.channel.closed().contains("bad NEGOTIATE message"))
            #expect(c.counter(ServerCounter.protocolViolations) == 1)
        }
    }

    @Test func aMalformedResponseFromTheClientClosesTheConnectionWithoutAReply() async throws {
        try await withConnection { c in
            // A LOGOFF response has no body; this one has three bytes.
            var bytes = try Message(messageId: 3, sessionId: 0, body: .response(.echo(EchoMessage(data: [1, 2, 3])))).encode()
            bytes[6] = UInt8(Command.logoff.rawValue & 0xFF)
            bytes[7] = UInt8(Command.logoff.rawValue >> 8)
            c.channel.push(bytes: bytes)
            _ = try await c.channel.closed()
            #expect(c.counter(ServerCounter.protocolViolations) == 1)
            try await c.served()
            #expect(c.channel.sent.isEmpty)
        }
    }

    @Test func anUnknownCommandIsNotSupportedEvenBeforeTheSessionAndTheConnectionStays() async throws {
        try await withConnection { c in
            var bytes = try Message.request(.echo(EchoMessage(data: [9])), messageId: 11, sessionId: 0).encode()
            bytes[6] = 0xFF  // command 0x00FF: not one §3.3 defines
            bytes[7] = 0x00
            c.channel.push(bytes: bytes)
            let answer = try await c.channel.response(to: 11)
            #expect(answer.status == .notSupported)
            #expect(answer.command.rawValue == 0x00FF)
            #expect(!c.channel.isClosed)
            _ = try await c.negotiate()
        }
    }

    @Test func aCallbackReplyWhenNoCallbackIsOutstandingClosesTheConnection() async throws {
        try await withConnection { c in
            _ = try await c.establish()
            c.channel.push(Message(
                messageId: 77, sessionId: c.sessionId, body: .callbackReply(status: .ok, .layoutRecall(LayoutRecallAck(recallId: 5)))))
            let reason = try await c.channel.closed()
            #expect(reason.contains("no outstanding callback"))
            #expect(c.counter(ServerCounter.protocolViolations) == 1)
            try await c.served()
            #expect(c.channel.sent.isEmpty, "a callback reply is never answered")
        }
    }

    @Test func aRequestSentAsAResponseClosesTheConnection() async throws {
        try await withConnection { c in
            _ = try await c.establish()
            c.channel.push(Message(messageId: 4, sessionId: c.sessionId, body: .response(.echo(EchoMessage()))))
            #expect(try await c.channel.closed().contains("that is not a request"))
            #expect(c.counter(ServerCounter.protocolViolations) == 1)
        }
    }

    // MARK: The end of the connection

    @Test func aDisconnectReleasesTheSessionsFilesWithoutCountingAViolation() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            _ = try await c.open("a", tree: tree)
            #expect(c.counter(ServerCounter.openFiles) == 1)
            #expect(c.context.files.count == 1)
            c.channel.fail(TransportError.verbs(.disconnected))
            try await c.served()
            #expect(c.counter(ServerCounter.sessions) == 0)
            #expect(c.counter(ServerCounter.openFiles) == 0)
            #expect(c.context.files.count == 0)
            #expect(c.counter(ServerCounter.protocolViolations) == 0)
            #expect(c.channel.isClosed)
        }
    }

    @Test func aTransportViolationEndsTheConnectionAndIsCounted() async throws {
        try await withConnection { c in
            _ = try await c.establish()
            c.channel.fail(TransportError.violation(.keepaliveTimeout))
            try await c.served()
            #expect(c.counter(ServerCounter.protocolViolations) == 1)
            #expect(c.counter(ServerCounter.sessions) == 0)
        }
    }

    // MARK: Without RDMA

    @Test func twoSidedDataAndLayoutsAreNotSupportedWithoutRDMA() async throws {
        try await withConnection { c in
            let tree = try await c.establish()
            let file = try await c.open("a", tree: tree)
            let buffer = [BufferDescriptor(address: 0x10000, rkey: 1, length: 4096)]
            let read = try await c.call(.read(ReadRequest(fileId: file, offset: 0, descriptors: buffer)))
            #expect(read.status == .notSupported)
            let write = try await c.call(.write(WriteRequest(fileId: file, offset: 0, descriptors: buffer)))
            #expect(write.status == .notSupported)
            // The arguments are still checked first: an unknown file is STALE_FILE.
            let stale = try await c.call(.read(ReadRequest(fileId: file + 100, offset: 0, descriptors: buffer)))
            #expect(stale.status == .staleFile)
            // LAYOUTS was not agreed in NEGOTIATE.
            let layout = try await c.call(.layoutGet(LayoutGetRequest(fileId: file, offset: 0, length: 4096, minLength: 4096, iomode: .read)))
            #expect(layout.status == .notSupported)
            #expect(c.counter(ServerCounter.bytesReadTwoSided) == 0)
            #expect(!c.channel.isClosed)
        }
    }
}
