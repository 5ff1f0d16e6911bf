/// A little-endian byte sink used by every encoder.
///
/// Writing never fails; encoders validate values (lengths that must fit a `u16`, counts under
/// the protocol limits) *before* writing, and throw ``WireError`` instead of truncating.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }

    public mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
    }

    public mutating func u32(_ v: UInt32) {
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }

    public mutating func u64(_ v: UInt64) {
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }

    public mutating func append(_ raw: some Sequence<UInt8>) { bytes.append(contentsOf: raw) }

    public mutating func zeros(_ n: Int) {
        if n > 0 { bytes.append(contentsOf: repeatElement(0, count: n)) }
    }

    /// Overwrites a `u32` already written at `offset` (used to patch length fields).
    mutating func patchU32(_ v: UInt32, at offset: Int) {
        guard offset >= 0, offset + 4 <= bytes.count else { return }
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }
}
