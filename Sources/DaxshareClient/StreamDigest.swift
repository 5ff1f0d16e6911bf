import Crypto

/// SHA-256 over bytes as they stream past, so `get` and `put` report the digest of exactly
/// what was moved and the CLI, `make demo` and tests can compare it with `sha256sum`.
public struct StreamDigest {
    private var hasher = SHA256()
    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func finalize() -> [UInt8] { Array(hasher.finalize()) }

    /// One-shot SHA-256.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var d = StreamDigest()
        d.update(bytes)
        return d.finalize()
    }

    /// Lowercase hex, as sha256sum prints it.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
