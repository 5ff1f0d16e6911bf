/// How a secret file's bytes become the pre-shared key (PROTOCOL.md §4.4): the one rule
/// `daxshared` and `daxshare` both apply, so every key a file can hold authenticates.
public enum SecretKey {
    /// A shorter key is a guessable one; both sides refuse it.
    public static let minimumLength = 16

    /// The rule, as `--help` of both binaries states it.
    public static let rule =
        "The key is the file's bytes less one final newline (\\n) if there is one, and at least \(minimumLength) bytes"

    /// The key a secret file holds: its bytes with one final `\n` removed, so a file written by
    /// `echo` and one written by `printf` give the same key. Only one, and nothing else: any key
    /// at all (one ending in newlines or carriage returns too) is written as itself plus `\n`.
    public static func key(fromFileContents contents: [UInt8]) -> [UInt8] {
        contents.last == 0x0A ? Array(contents.dropLast()) : contents
    }
}
