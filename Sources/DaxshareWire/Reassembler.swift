/// Rebuilds upper-layer messages from data transfer messages (PROTOCOL.md §2.7).
///
/// A message larger than one send is split into fragments; each fragment says how many bytes
/// of the same message are still to come (`remainingDataLength`). The reassembler checks that
/// the count goes down by exactly each fragment's length and that the whole message stays
/// within `maxMessageSize` (this side's negotiated maxFragmentedSize), so a peer cannot make it
/// allocate without bound. Empty data transfer messages (credit grants, keepalives) may arrive
/// between fragments and are ignored here.
public struct Reassembler: Sendable {
    /// Largest upper-layer message accepted.
    public let maxMessageSize: Int
    private var buffer: [UInt8] = []
    private var expectedRemaining: UInt32 = 0
    private var active = false

    public init(maxMessageSize: Int) {
        self.maxMessageSize = max(0, maxMessageSize)
    }

    /// True between the first and the last fragment of a message.
    public var isReassembling: Bool { active }
    /// Bytes still expected for the message being reassembled.
    public var bytesOutstanding: UInt32 { active ? expectedRemaining : 0 }

    /// Feeds one received message's header and payload; returns the complete upper-layer
    /// message when this was its last fragment, nil otherwise. A violation leaves the
    /// reassembler unchanged; the caller disconnects.
    public mutating func append(_ header: DataTransferHeader, payload: UnsafeRawBufferPointer) throws(TransportViolation) -> [UInt8]? {
        guard payload.count == Int(header.dataLength) else {
            throw .malformed(.inconsistentLength(field: "dataLength"))
        }
        if header.dataLength == 0 {
            // A credit grant or keepalive: carries no data and must not claim any is coming.
            if header.remainingDataLength != 0 {
                throw .malformed(.outOfRange(field: "remainingDataLength"))
            }
            return nil
        }
        if !active {
            let total = UInt64(header.dataLength) + UInt64(header.remainingDataLength)
            guard total <= UInt64(maxMessageSize) else {
                throw .messageTooLarge(size: total, limit: UInt64(maxMessageSize))
            }
            if header.remainingDataLength == 0 { return Array(payload) }
            buffer = []
            buffer.reserveCapacity(Int(total))
            buffer.append(contentsOf: payload)
            expectedRemaining = header.remainingDataLength
            active = true
            return nil
        }
        guard header.dataLength <= expectedRemaining,
              header.remainingDataLength == expectedRemaining - header.dataLength
        else {
            let expected = header.dataLength <= expectedRemaining ? expectedRemaining - header.dataLength : 0
            throw .fragmentMismatch(expectedRemaining: expected, got: header.remainingDataLength)
        }
        buffer.append(contentsOf: payload)
        expectedRemaining = header.remainingDataLength
        if expectedRemaining == 0 {
            active = false
            let out = buffer
            buffer = []
            return out
        }
        return nil
    }

    /// Convenience over a decoded ``DataTransferMessage``.
    public mutating func append(_ message: DataTransferMessage) throws(TransportViolation) -> [UInt8]? {
        let payload = message.payload
        let result: Result<[UInt8]?, TransportViolation> = payload.withUnsafeBytes { raw in
            Result { () throws(TransportViolation) -> [UInt8]? in try append(message.header, payload: raw) }
        }
        return try result.get()
    }

    /// Drops a partial message (on disconnect).
    public mutating func reset() {
        buffer = []
        expectedRemaining = 0
        active = false
    }
}
