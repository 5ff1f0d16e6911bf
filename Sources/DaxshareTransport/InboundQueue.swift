/// The receive side's flow control: reassembled messages waiting for the upper layer, and
/// which receive buffers may be posted again (and so granted to the peer as credits).
///
/// A receive goes back only once the upper layer has taken the message it completed, so a
/// peer that floods, or a consumer that lags, runs the peer out of credits instead of growing
/// this queue. Fragments of a message still being reassembled are the exception: their bytes
/// are already copied into the reassembler, which holds one message at most, so their receives
/// go back at once (a message with more fragments than credits would deadlock otherwise) —
/// unless a complete message waits untaken, in which case they are held as well.
///
/// Hence every queued message but the oldest arrived entirely while another waited, each of
/// its fragments holding a receive: the queue and the partial message together never hold
/// more than one incoming message of the largest size plus one receive's payload per
/// receive posted.
///
/// Receives are named by their work request ids. Plain value; the channel owns it under its lock.
struct InboundQueue: Sendable {
    /// What a data transfer message that arrived in a receive was.
    enum Arrival: Sendable, Equatable {
        /// No data: a credit grant or keepalive.
        case empty
        /// A fragment of a message still being reassembled.
        case fragment
        /// The last (or only) fragment: the whole upper-layer message.
        case complete([UInt8])
    }

    private var waiting: [(message: [UInt8], receive: UInt64)] = []
    private var head = 0
    private var heldFragments: [UInt64] = []

    init() {}

    /// Messages waiting to be taken.
    var count: Int { waiting.count - head }
    /// Receives held back: one per waiting message, plus fragments held while one waits.
    var heldReceives: Int { count + heldFragments.count }
    /// Bytes of the waiting messages.
    var queuedBytes: Int { waiting[head...].reduce(0) { $0 + $1.message.count } }

    /// Records what arrived in `receive`; returns the receives to post again now.
    mutating func arrived(_ arrival: Arrival, in receive: UInt64) -> [UInt64] {
        switch arrival {
        case .empty:
            return [receive]
        case .fragment:
            if count == 0 { return [receive] }
            heldFragments.append(receive)
            return []
        case let .complete(message):
            waiting.append((message, receive))
            return []
        }
    }

    /// Takes the oldest waiting message, with the receives that may now be posted again: its
    /// own, and the held fragments' once nothing waits any more.
    mutating func take() -> (message: [UInt8], repost: [UInt64])? {
        guard head < waiting.count else { return nil }
        let (message, receive) = waiting[head]
        waiting[head].message = []
        head += 1
        var repost = [receive]
        if head == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            head = 0
            repost += heldFragments
            heldFragments.removeAll(keepingCapacity: true)
        } else if head >= 64 && head * 2 >= waiting.count {
            waiting.removeFirst(head)
            head = 0
        }
        return (message, repost)
    }
}
