import DaxshareWire

/// The pre-shared key both sides use for SESSION_SETUP's HMACs (PROTOCOL.md §4.4).
///
/// The key is the secret file's bytes less one final newline (`SecretKey`, the rule daxshared
/// applies too), and it must be at least 16 bytes. The key never crosses the wire.
public struct SessionSecret: Sendable, Hashable, CustomStringConvertible {
    public static let minimumLength = SecretKey.minimumLength
    public let key: [UInt8]

    /// - Throws: `.authentication` when the key is shorter than 16 bytes.
    public init(fileContents: [UInt8], source: String = "the secret") throws(ClientError) {
        let key = SecretKey.key(fromFileContents: fileContents)
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
