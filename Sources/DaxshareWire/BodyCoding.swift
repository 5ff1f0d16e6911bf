/// What every upper-layer body type does: write itself, read itself, and check the rules the
/// codec enforces (shared by both directions, so an encoder can never produce a body its own
/// decoder rejects).
protocol WireBody: Sendable, Hashable {
    func encode(into w: inout ByteWriter) throws(WireError)
    static func decode(from r: inout ByteReader) throws(WireError) -> Self
}

/// Validates a string's UTF-8 length against a limit before it is written behind a u16 length.
@inline(__always)
func utf8Length(_ s: String, max limit: Int, min minimum: Int = 0, _ field: String) throws(WireError) -> UInt16 {
    let n = s.utf8.count
    if n > limit { throw .oversized(field: field) }
    if n < minimum { throw .outOfRange(field: field) }
    return UInt16(n)
}

/// Checks that `[offset, offset + length)` is a non-empty range that does not wrap.
@inline(__always)
func checkRange(offset: UInt64, length: UInt64, _ field: String, allowEmpty: Bool = false) throws(WireError) {
    if length == 0 && !allowEmpty { throw .outOfRange(field: field) }
    if length > UInt64.max - offset { throw .outOfRange(field: field) }
}

@inline(__always)
func checkNonzero<T: BinaryInteger>(_ v: T, _ field: String) throws(WireError) {
    if v == 0 { throw .outOfRange(field: field) }
}

@inline(__always)
func checkFlags<T: FixedWidthInteger>(_ raw: T, known: T, _ field: String) throws(WireError) {
    let unknown = raw & ~known
    if unknown != 0 { throw .unknownFlags(field: field, bits: UInt64(truncatingIfNeeded: unknown)) }
}

@inline(__always)
func checkFixed(_ bytes: [UInt8], _ count: Int, _ field: String) throws(WireError) {
    if bytes.count != count { throw .outOfRange(field: field) }
}

/// A byte range of a file: used by LAYOUTCOMMIT, LAYOUTRETURN, CB_LAYOUTRECALL and PUNCH_HOLE.
public struct ByteRange: Sendable, Hashable {
    public var offset: UInt64
    public var length: UInt64
    public init(offset: UInt64, length: UInt64) {
        self.offset = offset
        self.length = length
    }
    /// One past the last byte (the range never wraps once validated).
    public var end: UInt64 { offset &+ length }
    public func overlaps(_ other: ByteRange) -> Bool { offset < other.end && other.offset < end }
}
