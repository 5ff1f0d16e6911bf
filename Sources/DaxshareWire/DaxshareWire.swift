// DaxshareWire: the daxshare wire protocol (Protocol/PROTOCOL.md), as pure Swift values.
//
// No I/O, no Foundation, no locks: every type is a Sendable value, so the server's and the
// client's event loops own their state and tests can drive it directly. Decoders never trap on
// any input; every malformed buffer is a typed `WireError`. (The fuzz target in Fuzz/ checks it.)
//
// ## Receiving (both sides)
//
//     // 1. A receive completion of `n` bytes in a registered buffer:
//     let raw = UnsafeRawBufferPointer(start: buf, count: n)
//     switch try TransportMessage.decode(raw) {            // or DataTransferHeader.decode(raw)
//     case .negotiateRequest(let req):   ...                // server, first message only
//     case .negotiateResponse(let resp): ...                // client, first message only
//     case .dataTransfer(let dt):
//         try credits.received(dt.header)                   // CreditWindow: credit rules
//         if let whole = try reassembler.append(dt) {       // Reassembler: fragments → message
//             let msg = try Message.decode(whole)           // header + typed body
//             switch msg.body { case .request(.open(let o)): ... }
//         }
//     }
//
// A server that must answer a request it cannot decode first reads `MessageHeader.decode(whole)`
// for the message id, replies `Message.error(.badMessage, to: header)` and disconnects; for an
// unknown command it replies `.notSupported` and carries on.
//
// ## Sending
//
//     let bytes = try Message.request(.open(OpenRequest(treeId: t, flags: [.read], path: "a")),
//                                     messageId: 7, sessionId: s).encode()
//     for fragment in try Fragmenter.fragments(of: bytes, maxSendSize: Int(negotiated.maxSendSize),
//                                              maxMessageSize: Int(negotiated.maxOutgoingMessageSize)) {
//         let stamp = try credits.prepareSend()   // throws when no credit: wait
//         post(try fragment.message(stamp).encode())
//     }
//
// ## Connection setup
//
// `ConnectPrivateData` goes in rdma_connect/rdma_accept/rdma_reject private data.
// `TransportNegotiation.request(_:)`, `.respond(to:config:postedReceives:)` and
// `.accept(_:for:postedReceives:)` implement the negotiate exchange and return a
// `NegotiatedTransport` whose `credits` is the connection's initial `CreditWindow`.
// `SessionAuth` gives the exact bytes to HMAC in SESSION_SETUP (HMAC itself comes from the
// caller's crypto library).
//
// Files, one concept each: ByteReader/ByteWriter (bounds-checked LE cursors), WireError, Limits,
// ConnectPrivateData, TransportNegotiate (negotiate messages), DataTransfer, TransportMessage,
// TransportNegotiation, CreditWindow, Reassembler, Fragmenter, TransportViolation; Header,
// Command, Status, Message (dispatch) and one file per message family.

/// Version constants, for callers that want one import-time place to look.
public enum DaxshareWire {
    /// Transport version and upper-layer dialect 1.0.
    public static let version: UInt16 = Limits.version1
    /// The default rdma_cm port.
    public static let defaultPort: UInt16 = Limits.defaultPort
}
