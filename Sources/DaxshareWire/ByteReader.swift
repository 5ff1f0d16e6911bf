/// A bounds-checked little-endian cursor over received bytes.
///
/// Every read names the field it is reading so that a short buffer reports *which* field was
/// cut off. Lengths are compared against `remaining` before any pointer arithmetic, so no
/// input can make the reader index out of range or overflow an `Int`.
public struct ByteReader {
    @usableFromInline let buffer: UnsafeRawBufferPointer
    /// Offset of the next byte to read, relative to the start of `buffer`.
    public private(set) var offset: Int

    public init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.offset = 0
    }

    /// Bytes not yet consumed.
    public var remaining: Int { buffer.count - offset }
    public var isAtEnd: Bool { remaining == 0 }

    @inline(__always)
    mutating func need(_ n: Int, _ field: String) throws(WireError) {
        if n < 0 || n > remaining { throw .truncated(field: field) }
    }

    public mutating func u8(_ field: String) throws(WireError) -> UInt8 {
        try need(1, field)
        let v = buffer[offset]
        offset += 1
        return v
    }

    public mutating func u16(_ field: String) throws(WireError) -> UInt16 {
        try need(2, field)
        let v = UInt16(buffer[offset]) | UInt16(buffer[offset + 1]) << 8
        offset += 2
        return v
    }

    public mutating func u32(_ field: String) throws(WireError) -> UInt32 {
        try need(4, field)
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(buffer[offset + i]) << (8 * UInt32(i)) }
        offset += 4
        return v
    }

    public mutating func u64(_ field: String) throws(WireError) -> UInt64 {
        try need(8, field)
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(buffer[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return v
    }

    public mutating func i64(_ field: String) throws(WireError) -> Int64 {
        Int64(bitPattern: try u64(field))
    }

    /// Copies `count` bytes out.
    public mutating func bytes(_ count: Int, _ field: String) throws(WireError) -> [UInt8] {
        try need(count, field)
        let out = Array(UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + count)]))
        offset += count
        return out
    }

    /// A view of the next `count` bytes, valid as long as the underlying buffer is.
    public mutating func slice(_ count: Int, _ field: String) throws(WireError) -> UnsafeRawBufferPointer {
        try need(count, field)
        let s = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + count)])
        offset += count
        return s
    }

    /// Reads a UTF-8 string of `count` bytes; invalid UTF-8 is an error rather than being
    /// repaired, so that decoding and re-encoding give back the same bytes.
    public mutating func utf8(_ count: Int, _ field: String) throws(WireError) -> String {
        let raw = try slice(count, field)
        // Decoding repairs invalid sequences with U+FFFD, which changes the bytes: comparing
        // detects it without String(validating:), which needs macOS 15 on Apple platforms.
        let s = String(decoding: raw, as: UTF8.self)
        guard s.utf8.elementsEqual(raw) else { throw .invalidUTF8(field: field) }
        return s
    }

    /// Consumes `count` bytes that the specification says must be zero.
    public mutating func reserved(_ count: Int, _ field: String) throws(WireError) {
        try need(count, field)
        for i in 0..<count where buffer[offset + i] != 0 {
            throw .reservedNotZero(field: field)
        }
        offset += count
    }

    /// Throws unless every byte has been consumed: trailing bytes mean a length field lied.
    public func expectEnd(_ field: String) throws(WireError) {
        if remaining != 0 { throw .inconsistentLength(field: field) }
    }
}
