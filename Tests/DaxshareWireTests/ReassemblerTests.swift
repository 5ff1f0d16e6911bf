import DaxshareWire
import Testing

@Suite("Fragmentation and reassembly")
struct ReassemblerTests {
    static func dt(_ payload: [UInt8], remaining: UInt32) -> DataTransferMessage {
        DataTransferMessage(creditsRequested: 1, creditsGranted: 0, remainingDataLength: remaining, payload: payload)
    }

    @Test func aWholeMessagePassesStraightThrough() throws {
        var r = Reassembler(maxMessageSize: 100)
        #expect(try r.append(Self.dt([1, 2, 3], remaining: 0)) == [1, 2, 3])
        #expect(!r.isReassembling)
    }

    @Test func fragmentsAreJoinedInOrder() throws {
        var r = Reassembler(maxMessageSize: 100)
        #expect(try r.append(Self.dt([1, 2], remaining: 3)) == nil)
        #expect(r.bytesOutstanding == 3)
        #expect(try r.append(Self.dt([3], remaining: 2)) == nil)
        #expect(try r.append(Self.dt([4, 5], remaining: 0)) == [1, 2, 3, 4, 5])
        #expect(!r.isReassembling && r.bytesOutstanding == 0)
    }

    @Test func emptyMessagesBetweenFragmentsAreIgnored() throws {
        var r = Reassembler(maxMessageSize: 100)
        _ = try r.append(Self.dt([1], remaining: 1))
        #expect(try r.append(Self.dt([], remaining: 0)) == nil)
        #expect(r.isReassembling)
        #expect(try r.append(Self.dt([2], remaining: 0)) == [1, 2])
    }

    @Test func theMaxFragmentedSizeIsEnforcedUpFront() {
        var r = Reassembler(maxMessageSize: 10)
        #expect(throws: TransportViolation.messageTooLarge(size: 11, limit: 10)) { try r.append(Self.dt([1], remaining: 10)) }
        #expect(!r.isReassembling)
        #expect(throws: TransportViolation.messageTooLarge(size: 11, limit: 10)) {
            try r.append(Self.dt([UInt8](repeating: 0, count: 11), remaining: 0))
        }
    }

    @Test func aFragmentThatDoesNotContinueTheMessageIsAViolation() throws {
        var r = Reassembler(maxMessageSize: 100)
        _ = try r.append(Self.dt([1, 2], remaining: 4))
        // 1 byte sent, so 3 should remain; the peer says 2.
        #expect(throws: TransportViolation.fragmentMismatch(expectedRemaining: 3, got: 2)) {
            try r.append(Self.dt([3], remaining: 2))
        }
        // A fragment longer than what remains.
        #expect(throws: TransportViolation.fragmentMismatch(expectedRemaining: 0, got: 0)) {
            try r.append(Self.dt([3, 4, 5, 6, 7], remaining: 0))
        }
        // The state was left as it was: the right continuation still completes the message.
        #expect(try r.append(Self.dt([3, 4, 5, 6], remaining: 0)) == [1, 2, 3, 4, 5, 6])
    }

    @Test func headerAndPayloadMustAgree() {
        var r = Reassembler(maxMessageSize: 100)
        let h = DataTransferHeader(creditsRequested: 1, creditsGranted: 0, dataOffset: 24, dataLength: 4)
        #expect(throws: TransportViolation.malformed(.inconsistentLength(field: "dataLength"))) {
            try r.append(DataTransferMessage(header: h, payload: [1]))
        }
        let empty = DataTransferHeader(creditsRequested: 1, creditsGranted: 0, remainingDataLength: 5, dataOffset: 0,
                                       dataLength: 0)
        #expect(throws: TransportViolation.malformed(.outOfRange(field: "remainingDataLength"))) {
            try r.append(DataTransferMessage(header: empty, payload: []))
        }
    }

    @Test func resetDropsAPartialMessage() throws {
        var r = Reassembler(maxMessageSize: 100)
        _ = try r.append(Self.dt([1], remaining: 5))
        r.reset()
        #expect(!r.isReassembling)
        #expect(try r.append(Self.dt([9], remaining: 0)) == [9])
    }

    @Test(arguments: [256, 257, 300, 1024, 8192])
    func fragmenterAndReassemblerAgree(sendSize: Int) throws {
        var rng = XorShift(seed: UInt64(sendSize))
        for size in [1, 2, 231, 232, 233, 464, 465, 1000, 5000, 70_000] {
            let message = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let frags = try Fragmenter.fragments(of: message, maxSendSize: sendSize)
            #expect(frags.count == (size + sendSize - 25) / (sendSize - 24))
            #expect(frags.last?.remainingDataLength == 0)
            var r = Reassembler(maxMessageSize: size)
            var out: [UInt8]?
            for (i, f) in frags.enumerated() {
                let wire = try f.message(CreditWindow.Outgoing(creditsRequested: 1, creditsGranted: 0, flags: [])).encode()
                #expect(wire.count <= sendSize)
                #expect(i == frags.count - 1 || wire.count == sendSize)   // all but the last are full
                out = try r.append(DataTransferMessage.decode(wire))
                #expect((out == nil) == (i < frags.count - 1))
            }
            #expect(out == message)
        }
    }

    @Test func fragmenterRejectsWhatCannotBeSent() {
        #expect(throws: WireError.outOfRange(field: "message")) { try Fragmenter.fragments(of: [], maxSendSize: 1024) }
        #expect(throws: WireError.outOfRange(field: "maxSendSize")) { try Fragmenter.fragments(of: [1], maxSendSize: 255) }
        #expect(throws: WireError.oversized(field: "message")) {
            try Fragmenter.fragments(of: [UInt8](repeating: 0, count: 101), maxSendSize: 256, maxMessageSize: 100)
        }
    }
}
