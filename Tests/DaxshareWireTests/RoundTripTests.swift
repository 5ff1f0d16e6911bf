import DaxshareWire
import Testing

@Suite("Round trips")
struct RoundTripTests {
    @Test func samplesCoverEveryCommand() {
        #expect(Set(Samples.requests.map(\.command)) == Set(Command.all.filter { $0 != .cbLayoutRecall }))
        #expect(Set(Samples.responses.map(\.command)) == Set(Command.all.filter { $0 != .cbLayoutRecall }))
    }

    @Test(arguments: Samples.messages)
    func messageRoundTrips(_ m: Message) throws {
        let bytes = try m.encode()
        #expect(bytes.count >= Limits.headerSize)
        let header = try MessageHeader.decode(bytes)
        #expect(Int(header.bodyLength) == bytes.count - Limits.headerSize)
        #expect(header.command == m.command && header.status == m.status && header.flags == m.body.flags)
        #expect(try Message.decode(bytes) == m)
        // The UnsafeRawBufferPointer entry point gives the same result.
        let viaPointer = try bytes.withUnsafeBytes { try Message.decode($0) }
        #expect(viaPointer == m)
    }

    @Test func messagesSurviveFragmentationAndReassembly() throws {
        for m in Samples.messages {
            let bytes = try m.encode()
            let frags = try Fragmenter.fragments(of: bytes, maxSendSize: 256)
            var r = Reassembler(maxMessageSize: 1 << 20)
            var out: [UInt8]?
            for f in frags {
                let dt = f.message(CreditWindow.Outgoing(creditsRequested: 1, creditsGranted: 0, flags: []))
                let wire = try dt.encode()
                #expect(wire.count <= 256)
                guard case .dataTransfer(let back) = try TransportMessage.decode(wire) else {
                    Issue.record("not a data transfer")
                    return
                }
                out = try r.append(back)
            }
            #expect(try Message.decode(#require(out)) == m)
        }
    }

    @Test func transportMessagesRoundTrip() throws {
        let all: [TransportMessage] = [
            .negotiateRequest(TransportNegotiateRequest(minVersion: 0x0100, maxVersion: 0x0200, creditsRequested: 1,
                                                        preferredSendSize: 256, maxReceiveSize: .max, maxFragmentedSize: 0)),
            .negotiateResponse(TransportNegotiateResponse(negotiatedVersion: 0x0100, creditsRequested: 255,
                                                          creditsGranted: 255, status: .insufficientResources,
                                                          maxReadWriteSize: 1, preferredSendSize: 2, maxReceiveSize: 3,
                                                          maxFragmentedSize: 4)),
            .dataTransfer(DataTransferMessage(creditsRequested: 1, creditsGranted: 0)),
            .dataTransfer(DataTransferMessage(flags: .responseRequested, creditsRequested: .max, creditsGranted: .max,
                                              remainingDataLength: 100, payload: [1])),
            .dataTransfer(DataTransferMessage(header: DataTransferHeader(creditsRequested: 2, creditsGranted: 3,
                                                                        dataOffset: 64, dataLength: 3), payload: [7, 8, 9])),
        ]
        for t in all {
            let bytes = try t.encode()
            #expect(try TransportMessage.decode(bytes) == t)
        }
    }

    @Test func privateDataRoundTripsAndIgnoresCMPadding() throws {
        for pd in [ConnectPrivateData(kind: .connect), ConnectPrivateData(kind: .accept, minVersion: 1, maxVersion: 9),
                   ConnectPrivateData(kind: .reject, reason: .shuttingDown)] {
            let bytes = try pd.encode()
            #expect(bytes.count == ConnectPrivateData.size)
            #expect(try ConnectPrivateData.decode(bytes) == pd)
            // rdma_cm pads private data with zeros up to its maximum (56 bytes for IB REQ).
            #expect(try ConnectPrivateData.decode(bytes + [UInt8](repeating: 0, count: 40)) == pd)
        }
    }

    @Test func negotiateRequestIgnoresTrailingBytesButResponseDoesNot() throws {
        let req = Vectors.named("transport-negotiate-request").bytes
        #expect(try TransportMessage.decode(req + [1, 2, 3, 4]) == TransportMessage.decode(req))
        let resp = Vectors.named("transport-negotiate-response").bytes
        #expect(wireError { _ = try TransportMessage.decode(resp + [0]) } == .inconsistentLength(field: "negotiateResponse"))
    }

    @Test func headerOfUnknownCommandDecodesSoTheServerCanAnswer() throws {
        let bytes = Vectors.invalid.first { $0.name == "unknown-command" }!.bytes
        let h = try MessageHeader.decode(bytes)
        #expect(h.command == Command(rawValue: 0xFF) && h.messageId == 5)
        #expect(wireError { _ = try Message.decode(bytes) } == .unknownCommand(0xFF))
        let reply = try Message.error(.notSupported, to: h).encode()
        #expect(reply == Vectors.named("error-not-supported").bytes.enumerated().map { i, b in
            // same bytes except the message id (99 in the vector, 5 here)
            i == 16 ? 5 : b
        })
    }
}
