import DaxshareWire

/// Where bytes `[offset, offset + length)` of a transfer lie in the client's buffer
/// descriptors (PROTOCOL.md §4.19): the descriptors are filled in order, each to its length.
/// One piece per descriptor touched, for one RDMA operation each.
struct DescriptorPiece: Equatable {
    /// Index into the request's descriptors.
    var descriptor: Int
    /// Offset inside that descriptor.
    var offset: UInt64
    var length: Int
}

extension Array where Element == BufferDescriptor {
    /// The pieces of the transfer's bytes `[offset, offset + length)`; fewer bytes than asked
    /// when the descriptors end first (the caller has checked they hold the whole transfer).
    func pieces(offset: Int, length: Int) -> [DescriptorPiece] {
        var pieces: [DescriptorPiece] = []
        var skip = UInt64(offset)
        var left = length
        for (i, d) in enumerated() where left > 0 {
            let size = UInt64(d.length)
            if skip >= size {
                skip -= size
                continue
            }
            let n = Int(Swift.min(UInt64(left), size - skip))
            pieces.append(DescriptorPiece(descriptor: i, offset: skip, length: n))
            left -= n
            skip = 0
        }
        return pieces
    }
}
