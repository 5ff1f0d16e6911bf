import DaxshareWire
import Testing

@Suite("Credit window")
struct CreditWindowTests {
    static func header(requested: UInt16 = 8, granted: UInt16 = 0, flags: DataTransferFlags = []) -> DataTransferHeader {
        DataTransferHeader(flags: flags, creditsRequested: requested, creditsGranted: granted, dataOffset: 0, dataLength: 0)
    }

    /// A client right after negotiation: granted `credits`, `posted` receives, nothing granted yet.
    static func client(credits: UInt16 = 4, posted: Int = 8) -> CreditWindow {
        CreditWindow(sendCredits: credits, maxSendCredits: 8, postedReceives: posted, peerCredits: 0,
                     peerTarget: 8, peerMaxTarget: 8)
    }

    @Test func neverSendWithoutACredit() {
        var w = CreditWindow(sendCredits: 0, maxSendCredits: 8, postedReceives: 8, peerCredits: 8, peerTarget: 8,
                             peerMaxTarget: 8)
        #expect(!w.canSend)
        #expect(throws: TransportViolation.noSendCredit) { try w.prepareSend() }
        #expect(w.sendCredits == 0 && w.peerCredits == 8)
    }

    @Test func eachMessageCostsOneCreditAndGrantsWhatThePeerWants() throws {
        var w = Self.client(credits: 4, posted: 8)
        let first = try w.prepareSend()
        #expect(first.creditsGranted == 8)       // peer target 8, 8 receives posted, none granted yet
        #expect(first.creditsRequested == 8)
        #expect(w.sendCredits == 3 && w.peerCredits == 8)
        let second = try w.prepareSend()
        #expect(second.creditsGranted == 0)      // nothing left to grant until receives are reposted
        #expect(w.sendCredits == 2)
    }

    @Test func grantsAreBoundedByPostedReceives() throws {
        var w = Self.client(credits: 4, posted: 3)
        #expect(w.creditsToGrant == 3)
        #expect(throws: TransportViolation.grantExceedsPostedReceives(grant: 4, available: 3)) {
            try w.consumeSendCredit(granting: 4)
        }
        try w.consumeSendCredit(granting: 3)
        #expect(w.ungrantedReceives == 0 && w.creditsToGrant == 0)
        w.receivesPosted(2)
        #expect(w.creditsToGrant == 2)
    }

    @Test func theLastCreditIsKeptForAMessageThatGrants() throws {
        var w = Self.client(credits: 1, posted: 0)
        #expect(!w.canSend)
        #expect(throws: TransportViolation.lastCreditReserved) { try w.prepareSend() }
        #expect(w.sendCredits == 1)
        w.receivesPosted(1)
        #expect(w.canSend)
        let out = try w.prepareSend()
        #expect(out.creditsGranted == 1 && w.sendCredits == 0)
        #expect(out.flags.contains(.responseRequested))  // left with no credit: ask for some
    }

    @Test func responseRequestedWhenTheSendStrandsTheSender() throws {
        // 8 credits, no receives to grant: the send that leaves one credit strands the sender.
        var w = Self.client(credits: 8, posted: 0)
        var flags: [Bool] = []
        for _ in 0..<7 { flags.append(try w.prepareSend().flags.contains(.responseRequested)) }
        #expect(flags == [false, false, false, false, false, false, true])
        #expect(w.sendCredits == 1 && w.isStranded)
        // With receives left to grant, one credit is not stranded; zero always is.
        var g = CreditWindow(sendCredits: 2, maxSendCredits: 8, postedReceives: 16, peerCredits: 0, peerTarget: 4,
                             peerMaxTarget: 16)
        #expect(try g.prepareSend().flags == [])      // grants 4, keeps 12 receives ungranted
        #expect(g.sendCredits == 1 && !g.isStranded)
        try g.received(Self.header(requested: 16))    // the peer now wants 16
        #expect(try g.prepareSend().creditsGranted == 12)
        #expect(g.sendCredits == 0 && g.isStranded)
        // A keepalive always asks, whatever the credits.
        var k = Self.client(credits: 8, posted: 0)
        #expect(try k.prepareSend(requestResponse: true).flags == .responseRequested)
    }

    @Test func receivingConsumesAReceiveAndAddsGrants() throws {
        var w = Self.client(credits: 1, posted: 8)
        _ = try w.prepareSend()      // grants 8 to the peer
        try w.received(Self.header(requested: 5, granted: 6))
        #expect(w.sendCredits == 6 && w.peerCredits == 7 && w.postedReceives == 7 && w.peerTarget == 5)
        w.receivesPosted(1)
        #expect(w.creditsToGrant == 0)               // peer holds 7 ≥ its target 5
    }

    @Test func aPeerSendingWithoutCreditIsAViolation() {
        var w = Self.client()
        let before = w
        #expect(throws: TransportViolation.sentWithoutCredit) { try w.received(Self.header()) }
        #expect(w == before)
    }

    @Test func creditsRequestedMustStayWithinTheNegotiatedTarget() throws {
        var w = Self.client(credits: 2, posted: 8)
        _ = try w.prepareSend()
        #expect(throws: TransportViolation.creditsRequestedOutOfRange(0)) { try w.received(Self.header(requested: 0)) }
        #expect(throws: TransportViolation.creditsRequestedOutOfRange(9)) { try w.received(Self.header(requested: 9)) }
        try w.received(Self.header(requested: 8))
    }

    @Test func grantsBeyondOurTargetAreAViolation() throws {
        var w = Self.client(credits: 2, posted: 8)
        _ = try w.prepareSend()
        let before = w
        #expect(throws: TransportViolation.creditOverflow(held: 9, limit: 8)) { try w.received(Self.header(granted: 8)) }
        #expect(w == before)
        try w.received(Self.header(granted: 7))
        #expect(w.sendCredits == 8)
    }

    @Test func responseRequestedObligesAnAnswerThatGrants() throws {
        var w = Self.client(credits: 3, posted: 8)
        _ = try w.prepareSend()                       // grants all 8 receives
        #expect(!w.shouldSendCreditGrant)             // nothing owed
        try w.received(Self.header(flags: .responseRequested))
        #expect(w.owesResponse)
        #expect(!w.shouldSendCreditGrant)             // owed, but no receive to grant until one is reposted
        _ = try w.prepareSend()                       // a data message granting nothing ...
        #expect(w.owesResponse)                       // ... does not answer the request
        w.receivesPosted(1)
        #expect(w.shouldSendCreditGrant)
        #expect(try w.prepareSend().creditsGranted == 1)
        #expect(!w.owesResponse)
    }

    @Test func aPeerHoldingItsTargetNeedsNoGrantToBeAnswered() throws {
        var w = CreditWindow(sendCredits: 4, maxSendCredits: 8, postedReceives: 8, peerCredits: 5, peerTarget: 4,
                             peerMaxTarget: 8)
        try w.received(Self.header(requested: 4, flags: .responseRequested))   // a keepalive
        #expect(w.peerCredits == 4 && w.creditsToGrant == 0 && w.shouldSendCreditGrant)
        let o = try w.prepareSend()
        #expect(o.creditsGranted == 0 && !w.owesResponse)
    }

    @Test func anOwedResponseWaitsForAReceiveToGrantWhenOnTheLastCredit() throws {
        var w = CreditWindow(sendCredits: 1, maxSendCredits: 8, postedReceives: 1, peerCredits: 1, peerTarget: 4,
                             peerMaxTarget: 4)
        try w.received(Self.header(requested: 4, flags: .responseRequested))
        #expect(w.owesResponse && !w.shouldSendCreditGrant)  // one credit, nothing to grant yet
        w.receivesPosted(1)
        #expect(w.shouldSendCreditGrant)
        #expect(try w.prepareSend().creditsGranted == 1)
        #expect(!w.owesResponse)
    }

    /// Two peers exchanging data both ways, with receives reposted late and at random (as a
    /// busy event loop does). Under the rules no interleaving may deadlock or trip a violation,
    /// and the invariants hold throughout. (Without rule 3, "keep the last credit for a grant",
    /// this gets stuck: both sides spend their last credit without granting while their
    /// receives are still unposted.)
    @Test(arguments: [1, 2, 3, 16] as [UInt16])
    func twoPeersNeverDeadlock(credits: UInt16) throws {
        struct Peer {
            var w: CreditWindow
            var toSend: Int
            var consumed = 0      // receives used by arrived messages, not yet reposted
            var delivered = 0
        }
        let config = TransportConfig(creditsRequested: credits)
        let req = TransportNegotiation.request(config)
        let (resp, serverSide) = TransportNegotiation.respond(to: req, config: config, postedReceives: Int(credits))
        let server = try #require(serverSide).credits
        let client = try TransportNegotiation.accept(resp, for: req, postedReceives: Int(credits)).credits
        for seed in 1...40 as ClosedRange<UInt64> {
            var rng = XorShift(seed: seed &* 7919 &+ UInt64(credits))
            var peers = [Peer(w: client, toSend: 300), Peer(w: server, toSend: 300)]
            var wires: [[DataTransferHeader]] = [[], []]   // wires[i]: in flight towards peer i
            var steps = 0
            while peers[0].delivered + peers[1].delivered < 600 || !wires[0].isEmpty || !wires[1].isEmpty {
                steps += 1
                if steps > 200_000 { break }
                var actions: [(Int, Int)] = []    // (peer, action)
                for i in 0...1 {
                    if peers[i].toSend > 0 && peers[i].w.canSend { actions.append((i, 0)) }
                    if peers[i].w.shouldSendCreditGrant { actions.append((i, 1)) }
                    if !wires[i].isEmpty { actions.append((i, 2)) }
                    if peers[i].consumed > 0 { actions.append((i, 3)) }
                }
                guard !actions.isEmpty else { break }        // nothing can happen: deadlocked, or done
                let (i, a) = actions[Int.random(in: 0..<actions.count, using: &rng)]
                switch a {
                case 0, 1:
                    let o = try peers[i].w.prepareSend()
                    wires[1 - i].append(DataTransferHeader(flags: o.flags, creditsRequested: o.creditsRequested,
                                                           creditsGranted: o.creditsGranted,
                                                           dataOffset: a == 0 ? 24 : 0, dataLength: a == 0 ? 1 : 0))
                    if a == 0 { peers[i].toSend -= 1 }
                case 2:
                    let h = wires[i].removeFirst()
                    try peers[i].w.received(h)
                    peers[i].consumed += 1
                    if h.dataLength > 0 { peers[i].delivered += 1 }
                default:
                    peers[i].consumed -= 1
                    peers[i].w.receivesPosted(1)
                }
                for p in peers {
                    #expect(p.w.sendCredits <= p.w.maxSendCredits)
                    #expect(Int(p.w.peerCredits) <= p.w.postedReceives + p.consumed)
                }
            }
            #expect(peers[0].delivered == 300 && peers[1].delivered == 300,
                    "seed \(seed): stuck after \(steps) steps, delivered \(peers[0].delivered)/\(peers[1].delivered)")
            // Once the data is through, the peers fall quiet: no endless exchange of empty grants.
            #expect(steps < 200_000, "seed \(seed): still chattering after all data was delivered")
        }
    }
}
