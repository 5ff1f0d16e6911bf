import DaxshareWire
import Testing

@Suite("Transport negotiation")
struct NegotiationTests {
    static let server = TransportConfig(creditsRequested: 32, preferredSendSize: 4096, maxReceiveSize: 2048,
                                        maxFragmentedSize: 1 << 20, maxReadWriteSize: 4 << 20)
    static let client = TransportConfig(creditsRequested: 16, preferredSendSize: 8192, maxReceiveSize: 1024,
                                        maxFragmentedSize: 256 << 10)

    @Test func bothSidesAgreeOnSizesAndCredits() throws {
        let req = TransportNegotiation.request(Self.client)
        let (resp, s) = TransportNegotiation.respond(to: req, config: Self.server, postedReceives: 10)
        let srv = try #require(s)
        #expect(resp.status == .success && resp.negotiatedVersion == 0x0100)
        #expect(resp.creditsGranted == 10)             // bounded by the receives posted, not the 16 asked for
        #expect(resp.preferredSendSize == 1024)        // the server never sends more than the client receives
        let cli = try TransportNegotiation.accept(resp, for: req, postedReceives: 4)
        #expect(cli.maxSendSize == 2048)               // min(client preferred 8192, server receive 2048)
        #expect(srv.maxSendSize == 1024)
        #expect(cli.maxOutgoingMessageSize == 1 << 20 && srv.maxOutgoingMessageSize == 256 << 10)
        #expect(cli.maxIncomingMessageSize == 256 << 10 && srv.maxIncomingMessageSize == 1 << 20)
        #expect(cli.maxReadWriteSize == 4 << 20)
        #expect(cli.credits.sendCredits == 10 && srv.credits.sendCredits == 0)
        #expect(srv.credits.peerCredits == 10)
        // The client's first message must grant: with no receive posted it may not send at all.
        var none = try TransportNegotiation.accept(resp, for: req, postedReceives: 0).credits
        #expect(none.sendCredits == 10 && !none.canSend)
        #expect(throws: TransportViolation.firstMessageMustGrant) { try none.prepareSend() }
        none.receivesPosted(1)
        #expect(try none.prepareSend().creditsGranted == 1)
        #expect(!none.mustGrantOnNextSend)
        // It posted 4 receives: it grants them all.
        var c = cli.credits
        let first = try c.prepareSend()
        #expect(first.creditsGranted == 4)
        var sc = srv.credits
        try sc.received(DataTransferHeader(flags: first.flags, creditsRequested: first.creditsRequested,
                                           creditsGranted: first.creditsGranted, dataOffset: 24, dataLength: 1))
        #expect(sc.sendCredits == 4)
    }

    @Test func serverRefusesWhatItCannotServe() {
        func status(_ r: TransportNegotiateRequest, posted: Int = 4) -> TransportStatus {
            TransportNegotiation.respond(to: r, config: Self.server, postedReceives: posted).0.status
        }
        let ok = TransportNegotiation.request(Self.client)
        #expect(status(ok) == .success)
        var v = ok; v.minVersion = 0x0200; v.maxVersion = 0x0300
        #expect(status(v) == .versionNotSupported)
        var c = ok; c.creditsRequested = 0
        #expect(status(c) == .invalidParameter)
        var m = ok; m.maxReceiveSize = 255
        #expect(status(m) == .invalidParameter)
        var f = ok; f.maxFragmentedSize = 128 * 1024 - 1
        #expect(status(f) == .invalidParameter)
        #expect(status(ok, posted: 0) == .insufficientResources)
        let (failed, n) = TransportNegotiation.respond(to: v, config: Self.server, postedReceives: 4)
        #expect(n == nil && failed.creditsGranted == 0 && failed.negotiatedVersion == 0)
    }

    @Test func clientChecksTheResponse() throws {
        let req = TransportNegotiation.request(Self.client)
        let good = TransportNegotiation.respond(to: req, config: Self.server, postedReceives: 4).0
        _ = try TransportNegotiation.accept(good, for: req, postedReceives: 1)
        var r = good; r.status = .insufficientResources
        #expect(throws: TransportViolation.negotiateFailed(.insufficientResources)) {
            try TransportNegotiation.accept(r, for: req, postedReceives: 1)
        }
        r = good; r.negotiatedVersion = 0x0200
        #expect(throws: TransportViolation.invalidNegotiateParameter("negotiatedVersion")) {
            try TransportNegotiation.accept(r, for: req, postedReceives: 1)
        }
        r = good; r.creditsGranted = 0
        #expect(throws: TransportViolation.invalidNegotiateParameter("creditsGranted")) {
            try TransportNegotiation.accept(r, for: req, postedReceives: 1)
        }
        r = good; r.creditsGranted = 17
        #expect(throws: TransportViolation.creditOverflow(held: 17, limit: 16)) {
            try TransportNegotiation.accept(r, for: req, postedReceives: 1)
        }
        r = good; r.preferredSendSize = 1025
        #expect(throws: TransportViolation.invalidNegotiateParameter("preferredSendSize")) {
            try TransportNegotiation.accept(r, for: req, postedReceives: 1)
        }
        r = good; r.maxFragmentedSize = 1000
        #expect(throws: TransportViolation.invalidNegotiateParameter("maxFragmentedSize")) {
            try TransportNegotiation.accept(r, for: req, postedReceives: 1)
        }
    }

    @Test func defaultsMatchTheSpec() {
        let d = TransportConfig()
        #expect(d.creditsRequested == 64 && d.preferredSendSize == 8192 && d.maxReceiveSize == 8192)
        #expect(d.maxFragmentedSize == 1 << 20 && d.maxReadWriteSize == 8 << 20)
        #expect(Limits.defaultPort == 5445 && DaxshareWire.version == 0x0100)
        #expect(TransportConfig.keepaliveIntervalSeconds == 120 && TransportConfig.negotiateTimeoutSeconds == 5)
    }
}
