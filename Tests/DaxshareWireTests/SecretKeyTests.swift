import DaxshareWire
import Testing

/// The one secret-file rule daxshared and daxshare share (they used to differ: the server
/// stripped every trailing newline, so a key ending in one could never authenticate).
@Suite("Secret file rule")
struct SecretKeyTests {
    static let base = Array("sixteen-bytes-ok".utf8)

    @Test func oneFinalNewlineGoes() {
        #expect(SecretKey.key(fromFileContents: Self.base) == Self.base)
        #expect(SecretKey.key(fromFileContents: Self.base + [0x0A]) == Self.base)
        #expect(SecretKey.key(fromFileContents: Self.base + [0x0D, 0x0A]) == Self.base + [0x0D])
        #expect(SecretKey.key(fromFileContents: Self.base + [0x0A, 0x0A]) == Self.base + [0x0A])
        #expect(SecretKey.key(fromFileContents: Self.base + [0x0D]) == Self.base + [0x0D])
        #expect(SecretKey.key(fromFileContents: []) == [])
    }

    /// Every key can be written to a file: the key, then a newline, reads back as the key,
    /// even a key ending in newlines or made only of them.
    @Test(arguments: [
        base, base + [0x0A], base + [0x0A, 0x0A], base + [0x0D], base + [0x0D, 0x0A],
        [UInt8](repeating: 0x0A, count: 16), [UInt8](repeating: 0x0A, count: 17),
        [UInt8](repeating: 0x0D, count: 16) + [0x0A],
    ])
    func everyKeyRoundTripsThroughAFile(_ key: [UInt8]) {
        #expect(SecretKey.key(fromFileContents: key + [0x0A]) == key)
        #expect(SecretKey.key(fromFileContents: key + [0x0A]).count >= SecretKey.minimumLength)
    }

    @Test func ruleIsStated() {
        #expect(SecretKey.rule.contains("one final newline"))
        #expect(SecretKey.rule.contains("\(SecretKey.minimumLength)"))
    }
}
