/// What one I/O does.
public enum BenchOp: String, Sendable, Codable, CaseIterable {
    case read, write
}

/// How offsets follow each other.
public enum AccessPattern: String, Sendable, Codable, CaseIterable {
    /// Consecutive offsets, wrapping at the end of the span.
    case seq
    /// Uniformly random offsets aligned to the I/O size.
    case rand
}

/// The offsets one slot (one of a client's `qd` I/Os in flight) visits: deterministic,
/// aligned to the I/O size, inside `[0, span)`.
///
/// Sequential: slot `s` of `depth` takes the blocks `s, s + depth, s + 2*depth, ...` so that
/// the slots together walk the span in order. Random: SplitMix64 seeded by client and slot.
public struct OffsetSequence: Sendable {
    public let pattern: AccessPattern
    public let blockSize: Int
    /// Whole blocks in the span (at least 1).
    public let blocks: UInt64
    private let slot: UInt64
    private let depth: UInt64
    private var step: UInt64 = 0
    private var state: UInt64

    public init(pattern: AccessPattern, blockSize: Int, span: Int, slot: Int, depth: Int, seed: UInt64 = 0) {
        precondition(blockSize > 0 && slot >= 0 && depth > slot)
        self.pattern = pattern
        self.blockSize = blockSize
        self.blocks = UInt64(max(1, span / blockSize))
        self.slot = UInt64(slot)
        self.depth = UInt64(depth)
        self.state = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(slot) &+ 1
    }

    public mutating func next() -> UInt64 {
        let block: UInt64
        switch pattern {
        case .seq:
            block = (step &* depth &+ slot) % blocks
            step &+= 1
        case .rand:
            block = Self.splitMix(&state) % blocks
        }
        return block &* UInt64(blockSize)
    }

    static func splitMix(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
