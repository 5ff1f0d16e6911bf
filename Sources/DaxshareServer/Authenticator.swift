import Crypto
import DaxshareWire

/// The server's half of SESSION_SETUP (PROTOCOL.md §4.4): a fresh nonce per
/// attempt, the client's HMAC-SHA256 proof checked in constant time, and the
/// server's own proof back so the client knows it talks to a holder of the secret.
struct Authenticator: Sendable {
    /// The secret's bytes: Crypto's `SymmetricKey` is not `Sendable`, so the key is made per use.
    private let secret: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: secret) }

    init(secret: [UInt8]) { self.secret = secret }

    static func nonce() -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<Limits.nonceLength).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    func verifyClient(_ proof: [UInt8], sessionId: UInt64, serverNonce: [UInt8], clientNonce: [UInt8], identity: String) -> Bool {
        let input = SessionAuth.clientProofInput(
            sessionId: sessionId, serverNonce: serverNonce, clientNonce: clientNonce, identity: identity)
        return HMAC<SHA256>.isValidAuthenticationCode(proof, authenticating: input, using: key)
    }

    func serverProof(sessionId: UInt64, serverNonce: [UInt8], clientNonce: [UInt8], identity: String) -> [UInt8] {
        let input = SessionAuth.serverProofInput(
            sessionId: sessionId, serverNonce: serverNonce, clientNonce: clientNonce, identity: identity)
        return Array(HMAC<SHA256>.authenticationCode(for: input, using: key))
    }
}
