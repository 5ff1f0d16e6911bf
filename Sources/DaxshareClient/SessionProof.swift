import Crypto
import DaxshareWire

/// The two proofs of SESSION_SETUP (PROTOCOL.md §4.4.3): HMAC-SHA256 keyed by the secret over
/// the transcript `DaxshareWire.SessionAuth` lays out, with a different label per direction so
/// one side's proof can never be replayed as the other's.
///
/// The client sends `client(...)` and checks the server's answer against `server(...)`:
/// authentication is mutual, so a server that does not know the secret cannot pose as one.
public enum SessionProof {
    public static func client(secret: SessionSecret, sessionId: UInt64, serverNonce: [UInt8], clientNonce: [UInt8],
                              identity: String) -> [UInt8] {
        mac(secret, SessionAuth.clientProofInput(sessionId: sessionId, serverNonce: serverNonce,
                                                 clientNonce: clientNonce, identity: identity))
    }

    public static func server(secret: SessionSecret, sessionId: UInt64, serverNonce: [UInt8], clientNonce: [UInt8],
                              identity: String) -> [UInt8] {
        mac(secret, SessionAuth.serverProofInput(sessionId: sessionId, serverNonce: serverNonce,
                                                 clientNonce: clientNonce, identity: identity))
    }

    /// Compares in time that depends only on the lengths, so a forged proof learns nothing
    /// from how long the comparison took.
    public static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// 32 fresh random bytes from the system's CSPRNG (getrandom on Linux).
    public static func nonce() -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<Limits.nonceLength).map { _ in UInt8.random(in: .min ... .max, using: &g) }
    }

    static func mac(_ secret: SessionSecret, _ input: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: secret.key)))
    }
}
