@testable import DaxshareTransport
import DaxshareWire
import Testing

@Suite("Inbound queue")
struct InboundQueueTests {
    @Test func emptyMessagesGiveTheirReceiveBackAtOnce() {
        var q = InboundQueue()
        #expect(q.arrived(.empty, in: 3) == [3])
        #expect(q.count == 0 && q.heldReceives == 0)
    }

    @Test func aCompleteMessageHoldsItsReceiveUntilTaken() throws {
        var q = InboundQueue()
        #expect(q.arrived(.complete([1, 2, 3]), in: 5) == [])
        #expect(q.count == 1 && q.heldReceives == 1 && q.queuedBytes == 3)
        let took = q.take()
        let taken = try #require(took)
        #expect(taken.message == [1, 2, 3] && taken.repost == [5])
        let none = q.take()
        #expect(none == nil)
        #expect(q.heldReceives == 0)
    }

    @Test func fragmentsGoBackAtOnceWhileNothingWaits() {
        var q = InboundQueue()
        #expect(q.arrived(.fragment, in: 0) == [0])
        #expect(q.arrived(.fragment, in: 1) == [1])
        #expect(q.heldReceives == 0)
    }

    @Test func fragmentsAreHeldWhileAMessageWaitsAndGoBackWhenNothingDoes() throws {
        var q = InboundQueue()
        _ = q.arrived(.complete([9]), in: 0)
        _ = q.arrived(.complete([8]), in: 1)
        #expect(q.arrived(.fragment, in: 2) == [])
        #expect(q.arrived(.fragment, in: 3) == [])
        #expect(q.heldReceives == 4)
        // One message still waits: only the taken one's receive comes back.
        let first = q.take()
        #expect(first?.repost == [0])
        // The last waiting one: its receive and the held fragments'.
        let next = q.take()
        let last = try #require(next)
        #expect(last.message == [8] && last.repost == [1, 2, 3])
        #expect(q.heldReceives == 0)
        #expect(q.arrived(.fragment, in: 4) == [4])
    }

    @Test func keepsOrderOverManyMessages() throws {
        var q = InboundQueue()
        var next: UInt8 = 0
        var expected: UInt8 = 0
        for round in 0..<500 {
            for _ in 0..<(round % 7) {
                _ = q.arrived(.complete([next]), in: UInt64(next))
                next &+= 1
            }
            for _ in 0..<(round % 5) {
                guard let t = q.take() else { break }
                #expect(t.message == [expected])
                #expect(t.repost.first == UInt64(expected))
                expected &+= 1
            }
        }
        while let t = q.take() { #expect(t.message == [expected]); expected &+= 1 }
        #expect(expected == next)
    }

    /// A peer sends messages of random sizes (some with more fragments than it has credits)
    /// as fast as credits let it, into a receiver whose consumer takes messages at random
    /// moments. The bytes the receiver holds never pass the documented bound, and every
    /// message arrives, in order, with nothing stuck.
    @Test(arguments: [1, 2, 4, 16]) func floodIsBoundedByCreditsAndNeverDeadlocks(receives: Int) throws {
        let sendSize = 256
        let chunk = sendSize - Limits.dataTransferHeaderSize
        let maxMessage = 40 * chunk
        let bound = maxMessage + receives * chunk
        var rng = SplitMix(seed: UInt64(receives))
        let sizes = (0..<300).map { _ in Int.random(in: 1...maxMessage, using: &rng) }
        let messages = sizes.enumerated().map { i, n in (0..<n).map { UInt8(truncatingIfNeeded: $0 &+ i) } }

        // The peer's queue of fragments still to send, and its credits (receives posted here, not used).
        var toSend: [DataTransferMessage] = []
        for m in messages {
            let stamp = CreditWindow.Outgoing(creditsRequested: 1, creditsGranted: 0)
            toSend += try Fragmenter.fragments(of: m, maxSendSize: sendSize, maxMessageSize: maxMessage)
                .map { $0.message(stamp) }
        }
        var credits = receives
        var free = Array((0..<UInt64(receives)).reversed())  // receives posted
        var inFlight: [(DataTransferMessage, UInt64)] = []    // sent, not yet received
        var reassembler = Reassembler(maxMessageSize: maxMessage)
        var partialBytes = 0
        var q = InboundQueue()
        var received: [[UInt8]] = []
        var steps = 0
        while received.count < messages.count {
            steps += 1
            #expect(steps < 10_000_000, "stuck")
            if steps >= 10_000_000 { return }
            var moves: [Int] = []
            if credits > 0 && !toSend.isEmpty { moves.append(0) }
            if !inFlight.isEmpty { moves.append(1) }
            if q.count > 0 { moves.append(2) }
            try #require(!moves.isEmpty, "deadlock: \(received.count) of \(messages.count) received")
            switch moves[Int.random(in: 0..<moves.count, using: &rng)] {
            case 0:
                credits -= 1
                inFlight.append((toSend.removeFirst(), free.removeLast()))
            case 1:
                let (m, receive) = inFlight.removeFirst()
                let complete = try reassembler.append(m)
                partialBytes = complete == nil ? partialBytes + m.payload.count : 0
                let back = q.arrived(complete.map { .complete($0) } ?? .fragment, in: receive)
                free += back
                credits += back.count
                #expect(q.queuedBytes + partialBytes <= bound)
            default:
                let taken = q.take()
                let t = try #require(taken)
                received.append(t.message)
                free += t.repost
                credits += t.repost.count
            }
            #expect(q.heldReceives + free.count + inFlight.count == receives)
        }
        #expect(received == messages)
    }
}

/// A small deterministic generator, so a failure repeats.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
