/// The pre-shared key both sides use for SESSION_SETUP's HMACs (PROTOCOL.md §4.4).
///
/// The key is the secret file's bytes with one trailing `\n` (or `\r\n`) removed — so that a
/// file written by `echo` and one written by `printf` give the same key — and it must be at
/// least 16 bytes. The key never crosses the wire.
public struct SessionSecret: Sendable, Hashable, CustomStringConvertible {
    public static let minimumLength = 16
    public let key: [UInt8]

    /// - Throws: `.authentication` when the key is shorter than 16 bytes.
    public init(fileContents: [UInt8], source: String = "the secret") throws(ClientError) {
        var key = fileContents
        if key.last == 0x0A {
            key.removeLast()
            if key.last == 0x0D { key.removeLast() }
        }
        guard key.count >= Self.minimumLength else {
            throw .authentication("\(source) is \(key.count) bytes; at least \(Self.minimumLength) are needed")
        }
        self.key = key
    }

    /// Reads a secret file.
    public init(contentsOf path: String) throws(ClientError) {
        let file = try LocalFile.openForReading(path)
        defer { file.close() }
        let contents = try file.readAll(limit: 1 << 16)
        try self.init(fileContents: contents, source: "the secret in \(path)")
    }

    /// Never prints the key.
    public var description: String { "SessionSecret(\(key.count) bytes)" }
}
