import DaxshareWire
import Testing

@Suite("Protocol vectors")
struct VectorTests {
    @Test func vectorsArePresent() {
        // Every command and every transport message type has at least one vector.
        #expect(Vectors.valid.count >= 70)
        #expect(Vectors.invalid.count >= 30)
        let messages = Vectors.valid.filter { $0.codec == "message" }.compactMap { try? Message.decode($0.bytes) }
        let requestCommands = Set(messages.compactMap { m -> Command? in
            if case .request = m.body { return m.command } else { return nil }
        })
        let responseCommands = Set(messages.compactMap { m -> Command? in
            if case .response = m.body { return m.command } else { return nil }
        })
        for c in Command.all where c != .cbLayoutRecall {
            #expect(requestCommands.contains(c), "no request vector for \(c)")
            #expect(responseCommands.contains(c), "no response vector for \(c)")
        }
        #expect(messages.contains { if case .callback = $0.body { true } else { false } })
        #expect(messages.contains { if case .callbackReply = $0.body { true } else { false } })
        #expect(messages.contains { if case .error = $0.body { true } else { false } })
        let transport = Vectors.valid.filter { $0.codec == "transport" }.compactMap { try? TransportMessage.decode($0.bytes) }
        #expect(Set(transport.map(\.type)) == [.negotiateRequest, .negotiateResponse, .dataTransfer])
    }

    @Test(arguments: Vectors.valid.filter { !$0.codec.hasPrefix("auth-") })
    func decodesAndReencodesByteForByte(_ v: Vector) throws {
        #expect(!v.bytes.isEmpty)
        let again = try decodeAndReencode(v.codec, v.bytes)
        #expect(again == v.bytes)
    }

    @Test(arguments: Vectors.valid.filter { !$0.codec.hasPrefix("auth-") })
    func annotatedFieldsCoverTheBytes(_ v: Vector) {
        // The generator writes one annotated line per field: the spans must tile the message.
        var next = 0
        for f in v.fields {
            #expect(f.offset == next, "\(f.note)")
            next = f.offset + f.length
        }
        #expect(next == v.bytes.count)
    }

    @Test(arguments: Vectors.invalid)
    func invalidVectorFailsWithItsError(_ v: Vector) throws {
        let expected = try #require(v.error)
        let e = wireError { _ = try decodeAndReencode(v.codec, v.bytes) }
        #expect(e.map { String(describing: $0) } == expected)
    }

    @Test func fragmentVectorsReassembleIntoTheEchoMessage() throws {
        var r = Reassembler(maxMessageSize: 1 << 20)
        guard case .dataTransfer(let f1) = try TransportMessage.decode(Vectors.named("dt-fragment-1").bytes),
              case .dataTransfer(let f2) = try TransportMessage.decode(Vectors.named("dt-fragment-2").bytes)
        else { Issue.record("fragments are not data transfer messages"); return }
        #expect(try r.append(f1) == nil)
        #expect(r.isReassembling)
        let whole = try #require(try r.append(f2))
        let m = try Message.decode(whole)
        #expect(m.messageId == 8)
        #expect(m.body == .request(.echo(EchoMessage(data: (0..<300).map { UInt8($0 % 251) }))))
        // And the Fragmenter cuts the same message into the same two payloads.
        let frags = try Fragmenter.fragments(of: whole, maxSendSize: 256)
        #expect(frags.map { Array($0.data) } == [f1.payload, f2.payload])
        #expect(frags.map(\.remainingDataLength) == [108, 0])
    }

    @Test func paddedOffsetCarriesTheSameMessage() throws {
        guard case .dataTransfer(let padded) = try TransportMessage.decode(Vectors.named("dt-padded-offset").bytes),
              case .dataTransfer(let plain) = try TransportMessage.decode(Vectors.named("dt-echo-request").bytes)
        else { Issue.record("not data transfer messages"); return }
        #expect(padded.header.dataOffset == 32)
        #expect(padded.payload == plain.payload)
        #expect(try Message.decode(padded.payload) == Message.decode(Vectors.named("echo-request").bytes))
    }

    @Test func authTranscriptsMatchSessionAuth() {
        let clientNonce = (0..<32).map { UInt8($0) }
        let serverNonce = (0x20..<0x40).map { UInt8($0) }
        let client = SessionAuth.clientProofInput(sessionId: 0x42, serverNonce: serverNonce, clientNonce: clientNonce,
                                                  identity: "alice")
        let server = SessionAuth.serverProofInput(sessionId: 0x42, serverNonce: serverNonce, clientNonce: clientNonce,
                                                  identity: "alice")
        #expect(client == Vectors.named("auth-client-transcript").bytes)
        #expect(server == Vectors.named("auth-server-transcript").bytes)
        #expect(client.count == 103)
        #expect(client != server)
    }

    @Test func sessionSetupVectorsCarryTheDocumentedProofs() throws {
        let proof = try Message.decode(Vectors.named("session-setup-proof").bytes)
        #expect(proof.body == .request(.sessionSetup(.proof(clientProof: hexBytes(
            "3e ab 53 92 26 66 d7 1c ad 98 01 85 86 53 4a 19 fe 41 95 86 b3 6b 98 f1 66 ab 71 b3 8e 90 8b d9")))))
        let confirmed = try Message.decode(Vectors.named("session-setup-confirmed").bytes)
        #expect(confirmed.body == .response(.sessionSetup(.confirmed(serverProof: hexBytes(
            "ad 91 ba 62 68 99 5d bf 60 23 7e 8f e6 d2 29 1e f7 3a 9a bf 6c c8 e1 11 4b 06 c3 d7 27 42 19 8c")))))
    }

    @Test func decodedVectorValuesMatchTheirDescriptions() throws {
        // Spot checks that field values land in the right Swift properties, not just round-trip.
        let lg = try Message.decode(Vectors.named("layoutget-response-rw").bytes)
        guard case .response(.layoutGet(let r)) = lg.body else { Issue.record("not a LAYOUTGET response"); return }
        #expect(r.stateid == LayoutStateid(id: 0x5000, seqid: 1))
        #expect(r.iomode == .readWrite && r.recallDeadlineMs == 5000)
        #expect(r.extents.map(\.rkey) == [0x101, 0x102])
        #expect(r.extents[1].flags == .pastEndOfFile)
        #expect(r.range == ByteRange(offset: 0, length: 1 << 20))

        let recall = try Message.decode(Vectors.named("cb-layoutrecall").bytes)
        #expect(recall.header.flags == .callback)
        guard case .callback(.layoutRecall(let cb)) = recall.body else { Issue.record("not a recall"); return }
        #expect(cb.reason == .leaseBreak && cb.recallId == 9 && cb.deadlineMs == 5000 && cb.fileId == 0x100)

        let tl = try Message.decode(Vectors.named("layoutget-try-later").bytes)
        #expect(tl.body == .error(command: .layoutGet, status: .tryLater, ErrorBody(retryAfterMs: 250)))

        let ns = try Message.decode(Vectors.named("error-not-supported").bytes)
        #expect(ns.command.rawValue == 0xFF && !ns.command.isKnown && ns.status == .notSupported)

        guard case .negotiateResponse(let nr) = try TransportMessage.decode(Vectors.named("transport-negotiate-response").bytes)
        else { Issue.record("not a negotiate response"); return }
        #expect(nr.status == .success && nr.creditsGranted == 64 && nr.maxReadWriteSize == 8 << 20)

        let pd = try ConnectPrivateData.decode(Vectors.named("pd-reject-too-many").bytes)
        #expect(pd.kind == .reject && pd.reason == .tooManyConnections)
    }
}
