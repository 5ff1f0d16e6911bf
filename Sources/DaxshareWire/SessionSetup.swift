/// SESSION_SETUP request (PROTOCOL.md §4.4): two rounds of challenge–response on a
/// pre-shared secret. The secret itself never crosses the wire; only HMAC-SHA256 proofs over
/// the transcript described by ``SessionAuth`` do.
public enum SessionSetupRequest: WireBody {
    /// Round 1: who the client claims to be, and its fresh 32-byte nonce.
    case begin(identity: String, clientNonce: [UInt8])
    /// Round 2: HMAC-SHA256(secret, ``SessionAuth/clientProofInput(sessionId:serverNonce:clientNonce:identity:)``).
    case proof(clientProof: [UInt8])

    public static let fixedSize = 40

    var phase: UInt8 {
        switch self {
        case .begin: 1
        case .proof: 2
        }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        switch self {
        case .begin(let identity, let nonce):
            try checkFixed(nonce, Limits.nonceLength, "clientNonce")
            let n = try utf8Length(identity, max: Limits.maxIdentityLength, "identity")
            w.u8(1)
            w.u8(0)
            w.u16(n)
            w.u32(0)
            w.append(nonce)
            w.append(identity.utf8)
        case .proof(let proof):
            try checkFixed(proof, Limits.nonceLength, "clientProof")
            w.u8(2)
            w.zeros(7)
            w.append(proof)
        }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> SessionSetupRequest {
        let phase = try r.u8("phase")
        try r.reserved(1, "reserved")
        switch phase {
        case 1:
            let n = Int(try r.u16("identityLength"))
            if n > Limits.maxIdentityLength { throw .oversized(field: "identity") }
            try r.reserved(4, "reserved2")
            let nonce = try r.bytes(Limits.nonceLength, "clientNonce")
            let identity = try r.utf8(n, "identity")
            return .begin(identity: identity, clientNonce: nonce)
        case 2:
            // Round 2's reserved field is bytes 1...7 (PROTOCOL.md §4.4.2): one name for all seven.
            try r.reserved(6, "reserved")
            return .proof(clientProof: try r.bytes(Limits.nonceLength, "clientProof"))
        default:
            throw .outOfRange(field: "phase")
        }
    }
}

/// SESSION_SETUP response. Round 1's response header carries the new session id.
public enum SessionSetupResponse: WireBody {
    /// Round 1: the server's fresh 32-byte nonce.
    case challenge(serverNonce: [UInt8])
    /// Round 2: HMAC-SHA256(secret, ``SessionAuth/serverProofInput(sessionId:serverNonce:clientNonce:identity:)``);
    /// the client checks it before trusting the session (mutual authentication).
    case confirmed(serverProof: [UInt8])

    public static let size = 40

    func encode(into w: inout ByteWriter) throws(WireError) {
        let (phase, bytes, field): (UInt8, [UInt8], String) = switch self {
        case .challenge(let n): (1, n, "serverNonce")
        case .confirmed(let p): (2, p, "serverProof")
        }
        try checkFixed(bytes, Limits.nonceLength, field)
        w.u8(phase)
        w.zeros(7)
        w.append(bytes)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> SessionSetupResponse {
        let phase = try r.u8("phase")
        guard phase == 1 || phase == 2 else { throw .outOfRange(field: "phase") }
        try r.reserved(7, "reserved")
        if phase == 1 { return .challenge(serverNonce: try r.bytes(Limits.nonceLength, "serverNonce")) }
        return .confirmed(serverProof: try r.bytes(Limits.nonceLength, "serverProof"))
    }
}

/// The exact bytes each side MACs in SESSION_SETUP (PROTOCOL.md §4.4.3).
///
/// `input = label(24) || sessionId(u64 LE) || serverNonce(32) || clientNonce(32) ||
/// identityLength(u16 LE) || identity(UTF-8)`, with a different label for each direction so a
/// proof can never be reflected back as the other side's. The MAC itself is computed by the
/// caller with HMAC-SHA256 keyed by the secret file's raw bytes (this module has no crypto).
public enum SessionAuth {
    public static let clientLabel: [UInt8] = Array("daxshare client proof v1".utf8)
    public static let serverLabel: [UInt8] = Array("daxshare server proof v1".utf8)

    public static func clientProofInput(sessionId: UInt64, serverNonce: [UInt8], clientNonce: [UInt8],
                                        identity: String) -> [UInt8] {
        transcript(clientLabel, sessionId, serverNonce, clientNonce, identity)
    }

    public static func serverProofInput(sessionId: UInt64, serverNonce: [UInt8], clientNonce: [UInt8],
                                        identity: String) -> [UInt8] {
        transcript(serverLabel, sessionId, serverNonce, clientNonce, identity)
    }

    static func transcript(_ label: [UInt8], _ sessionId: UInt64, _ serverNonce: [UInt8], _ clientNonce: [UInt8],
                           _ identity: String) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.append(label)
        w.u64(sessionId)
        w.append(serverNonce)
        w.append(clientNonce)
        w.u16(UInt16(truncatingIfNeeded: identity.utf8.count))
        w.append(identity.utf8)
        return w.bytes
    }
}
