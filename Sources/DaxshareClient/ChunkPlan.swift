/// One request's share of a larger read or write.
public struct Chunk: Sendable, Hashable {
    /// Where in the file.
    public var fileOffset: UInt64
    /// Where in the caller's buffer.
    public var bufferOffset: Int
    public var length: Int

    public init(fileOffset: UInt64, bufferOffset: Int, length: Int) {
        self.fileOffset = fileOffset
        self.bufferOffset = bufferOffset
        self.length = length
    }
}

/// The arithmetic of splitting I/O, kept pure so it is tested on its own.
///
/// A READ or WRITE moves at most the negotiated `maxReadWriteSize`, and through a bounce slot
/// of a fixed size; a larger request becomes several, sent concurrently up to the queue depth.
public enum ChunkPlan {
    /// Splits `[offset, offset + length)` into chunks of at most `maxChunk` bytes, in order.
    /// - Throws: `.invalidArgument` when the range would pass 2^63 − 1 (the protocol's limit
    ///   for offsets and sizes) or `maxChunk` is not positive.
    public static func split(offset: UInt64, length: Int, maxChunk: Int) throws(ClientError) -> [Chunk] {
        guard maxChunk > 0 else { throw .invalidArgument("chunk size must be positive") }
        guard length >= 0 else { throw .invalidArgument("negative length") }
        guard offset <= UInt64(Int64.max), UInt64(length) <= UInt64(Int64.max) - offset else {
            throw .invalidArgument("offset \(offset) + length \(length) is past the largest file offset (2^63 - 1)")
        }
        var chunks: [Chunk] = []
        chunks.reserveCapacity((length + maxChunk - 1) / maxChunk)
        var done = 0
        while done < length {
            let n = min(maxChunk, length - done)
            chunks.append(Chunk(fileOffset: offset + UInt64(done), bufferOffset: done, length: n))
            done += n
        }
        return chunks
    }

    /// How many bytes of a split read are valid: the chunks' results up to and including the
    /// first short one (the file ended there; anything a later chunk saw came from a file that
    /// grew meanwhile and is not contiguous with it).
    public static func contiguousBytes(requested: [Chunk], completed: [Int]) -> Int {
        var total = 0
        for (chunk, n) in zip(requested, completed) {
            total += n
            if n < chunk.length { break }
        }
        return total
    }

    /// Sizes the bounce buffer: `slotCount` slots of `slotSize` bytes, one per request in
    /// flight. A slot is at most `maxReadWriteSize` (the server refuses more per request) and
    /// at most the budget divided by the depth; above a page it is rounded down to whole pages,
    /// so chunks of page-aligned transfers stay page-aligned in the file.
    public static func bounceGeometry(maxReadWriteSize: Int, budget: Int, queueDepth: Int) -> (slotSize: Int, slotCount: Int) {
        let depth = max(1, queueDepth)
        var slot = max(1, min(maxReadWriteSize, max(1, budget / depth)))
        if slot >= pageSize { slot -= slot % pageSize }
        return (slot, depth)
    }

    public static let pageSize = 4096
}
