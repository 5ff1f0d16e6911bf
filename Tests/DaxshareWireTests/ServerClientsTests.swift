import DaxshareWire
import Testing

/// SERVER_CLIENTS (PROTOCOL.md §4.9.1): the decode-only rules (fields an encoder cannot get
/// wrong) on mutations of the server-clients-response vector, and the file-name helper.
@Suite("SERVER_CLIENTS")
struct ServerClientsTests {
    static func field(_ v: Vector, _ note: String) -> Vector.Field? {
        v.fields.first { $0.note.hasPrefix(note + " ") || $0.note == note }
    }

    /// The vector with one annotated field overwritten (little-endian, the field's width).
    static func mutated(_ note: String, _ value: UInt64) -> [UInt8] {
        let v = Vectors.named("server-clients-response")
        guard let f = field(v, note) else {
            Issue.record("no field \(note)")
            return v.bytes
        }
        var b = v.bytes
        for i in 0..<f.length { b[f.offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        return b
    }

    @Test func theVectorDecodesToItsFields() throws {
        let m = try Message.decode(Vectors.named("server-clients-response").bytes)
        guard case let .response(.serverClients(r)) = m.body else {
            Issue.record("not a SERVER_CLIENTS response: \(m.body)")
            return
        }
        #expect(r.total == 2)
        #expect(r.clients.map(\.identity) == ["alice", ""])
        #expect(r.clients[0].layouts == [
            ClientLayoutEntry(offset: 0, length: 1 << 20, readWrite: true, file: "pmem:data/f"),
            ClientLayoutEntry(offset: 0, length: 128 << 10, readWrite: false, file: "pmem:logs/app.log"),
        ])
        #expect(r.clients[1].layouts.isEmpty && r.clients[1].layoutsHeld == 0 && r.clients[1].address == "fe80::2%rxe0")
        #expect(Command.serverClients.name == "SERVER_CLIENTS" && Command.serverClients.isKnown)
    }

    @Test func decodeRules() {
        let cases: [(String, UInt64, WireError?)] = [
            ("count", 257, .oversized(field: "count")),
            ("total", 1, .outOfRange(field: "total")),
            ("total", 0xFFFF_FFFF, nil),
            ("reserved (2 zero bytes)", 1, .reservedNotZero(field: "reserved")),
            ("client[0].layoutCount", 17, .oversized(field: "layoutCount")),
            ("client[0].layoutsHeld", 1, .outOfRange(field: "layoutsHeld")),
            ("client[0].layoutsHeld", 1000, nil),
            ("client[0].addressLength", 0, .outOfRange(field: "address")),
            ("client[0].layout[0].layoutFlags", 0x83, .unknownFlags(field: "layoutFlags", bits: 0x82)),
            ("client[0].layout[0].reserved", 1, .reservedNotZero(field: "reserved")),
            ("client[0].layout[0].fileLength", 0, .outOfRange(field: "file")),
            ("client[0].layout[0].fileLength", 1025, .oversized(field: "file")),
            ("client[0].layout[0].file", 0xFF, .invalidUTF8(field: "file")),
            ("client[0].address", 0xFF, .invalidUTF8(field: "address")),
            ("client[0].identity", 0xFF, .invalidUTF8(field: "identity")),
        ]
        for (note, value, expected) in cases {
            let bytes = Self.mutated(note, value)
            #expect(wireError { _ = try Message.decode(bytes) } == expected, "\(note) = \(value)")
        }
    }

    @Test func shortenedFileKeepsTheEndWithinTheLimit() {
        let limit = Limits.maxClientFileLength
        #expect(ClientLayoutEntry.shortenedFile("pmem:a/b") == "pmem:a/b")
        let exact = String(repeating: "x", count: limit)
        #expect(ClientLayoutEntry.shortenedFile(exact) == exact)

        let long = "pmem:" + String(repeating: "d/", count: 600) + "end"
        let short = ClientLayoutEntry.shortenedFile(long)
        #expect(short.utf8.count == limit)
        #expect(short.hasPrefix("…") && short.hasSuffix("/end"))
        #expect(long.hasSuffix(String(short.dropFirst())))

        // Multi-byte characters are never cut in the middle: "é" is 2 bytes, so 1021 bytes of
        // budget hold 510 of them.
        let accents = "pmem:" + String(repeating: "é", count: 1000)
        let cut = ClientLayoutEntry.shortenedFile(accents)
        #expect(cut == "…" + String(repeating: "é", count: 510))
        #expect(cut.utf8.count <= limit)

        // What it gives always encodes.
        let entry = ClientLayoutEntry(offset: 0, length: 1, readWrite: false, file: ClientLayoutEntry.shortenedFile(accents))
        let client = ClientEntry(sessionId: 1, ageSeconds: 0, openFiles: 0, bytesReadTwoSided: 0, bytesWrittenTwoSided: 0,
                                 bytesLayoutGranted: 0, bytesCommittedOneSided: 0, layoutsHeld: 1, layouts: [entry],
                                 address: "a", identity: "")
        #expect(wireError {
            _ = try Message.response(.serverClients(ServerClientsResponse(clients: [client], total: 1)),
                                     to: MessageHeader(command: .serverClients, status: .ok, flags: [], messageId: 1, sessionId: 1)).encode()
        } == nil)
    }
}
