/// One fragment of an upper-layer message: the payload of one data transfer message.
public struct Fragment: Sendable, Hashable {
    /// Bytes of the message that follow this fragment.
    public var remainingDataLength: UInt32
    public var data: ArraySlice<UInt8>

    /// The data transfer message for this fragment, with the credit fields the sender's
    /// ``CreditWindow`` stamped (``CreditWindow/prepareSend(requestResponse:)``).
    public func message(_ credits: CreditWindow.Outgoing) -> DataTransferMessage {
        DataTransferMessage(flags: credits.flags, creditsRequested: credits.creditsRequested,
                            creditsGranted: credits.creditsGranted, remainingDataLength: remainingDataLength,
                            payload: Array(data))
    }
}

/// Splits an upper-layer message into data transfer payloads (PROTOCOL.md §2.7).
///
/// Each fragment fills one send of `maxSendSize` bytes less the 24-byte header; fragments are
/// sent back to back, in order, with no other upper-layer message between them. Credits are
/// stamped per fragment at send time, because each fragment costs one credit.
public enum Fragmenter {
    /// - Parameters:
    ///   - message: an encoded upper-layer message (``Message/encode()``).
    ///   - maxSendSize: the negotiated ``NegotiatedTransport/maxSendSize``.
    ///   - maxMessageSize: the peer's maxFragmentedSize (``NegotiatedTransport/maxOutgoingMessageSize``).
    public static func fragments(of message: [UInt8], maxSendSize: Int,
                                 maxMessageSize: Int = Int(Limits.maxMessageSize)) throws(WireError) -> [Fragment] {
        guard !message.isEmpty else { throw .outOfRange(field: "message") }
        guard maxSendSize >= Int(Limits.minReceiveSize) else { throw .outOfRange(field: "maxSendSize") }
        guard message.count <= maxMessageSize, message.count <= Int(Limits.maxMessageSize) else {
            throw .oversized(field: "message")
        }
        let chunk = maxSendSize - Limits.dataTransferHeaderSize
        var out: [Fragment] = []
        out.reserveCapacity((message.count + chunk - 1) / chunk)
        var start = 0
        while start < message.count {
            let end = min(start + chunk, message.count)
            out.append(Fragment(remainingDataLength: UInt32(message.count - end), data: message[start..<end]))
            start = end
        }
        return out
    }
}
