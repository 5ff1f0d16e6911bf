import DaxshareClient
import Testing

@Suite("Authentication")
struct SessionProofTests {
    /// PROTOCOL.md §9.
    @Test func appendixExample() throws {
        let secret = try SessionSecret(fileContents: Array("correct horse battery staple\n".utf8))
        #expect(secret.key == Array("correct horse battery staple".utf8))
        let clientNonce = (0..<32).map { UInt8($0) }
        let serverNonce = (0x20..<0x40).map { UInt8($0) }
        let client = SessionProof.client(secret: secret, sessionId: 0x42, serverNonce: serverNonce,
                                         clientNonce: clientNonce, identity: "alice")
        let server = SessionProof.server(secret: secret, sessionId: 0x42, serverNonce: serverNonce,
                                         clientNonce: clientNonce, identity: "alice")
        #expect(StreamDigest.hex(client) == "3eab53922666d71cad98018586534a19fe419586b36b98f166ab71b38e908bd9")
        #expect(StreamDigest.hex(server) == "ad91ba6268995dbf60237e8fe6d2291ef73a9abf6cc8e1114b06c3d72742198c")
    }

    @Test func secretFileTrimming() throws {
        let base = Array("sixteen-bytes-ok".utf8)
        #expect(try SessionSecret(fileContents: base).key == base)
        #expect(try SessionSecret(fileContents: base + [0x0A]).key == base)
        #expect(try SessionSecret(fileContents: base + [0x0D, 0x0A]).key == base + [0x0D])  // only \n goes
        // Only one trailing newline goes.
        #expect(try SessionSecret(fileContents: base + [0x0A, 0x0A]).key == base + [0x0A])
        // A key made only of newlines, written with its one final newline, survives.
        let newlines = [UInt8](repeating: 0x0A, count: 16)
        #expect(try SessionSecret(fileContents: newlines + [0x0A]).key == newlines)
        #expect(throws: ClientError.self) { try SessionSecret(fileContents: Array("fifteen-bytes!!".utf8) + [0x0A]) }
        #expect(!"\(try SessionSecret(fileContents: base))".contains("sixteen"))
    }

    @Test func constantTimeComparison() {
        #expect(SessionProof.equalInConstantTime([1, 2, 3], [1, 2, 3]))
        #expect(!SessionProof.equalInConstantTime([1, 2, 3], [1, 2, 4]))
        #expect(!SessionProof.equalInConstantTime([1, 2, 3], [1, 2]))
        #expect(SessionProof.nonce().count == 32)
        #expect(SessionProof.nonce() != SessionProof.nonce())
    }

    @Test func digest() {
        #expect(StreamDigest.hex(StreamDigest.sha256(Array("abc".utf8)))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var d = StreamDigest()
        d.update(Array("a".utf8))
        d.update(Array("bc".utf8))
        #expect(d.finalize() == StreamDigest.sha256(Array("abc".utf8)))
    }
}
