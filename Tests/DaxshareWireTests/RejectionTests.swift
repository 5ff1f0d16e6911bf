import DaxshareWire
import Testing

/// Malformed input must yield the right typed error, never a trap or a silent success.
@Suite("Rejection of malformed input")
struct RejectionTests {
    static let decodable = Vectors.valid.filter { !$0.codec.hasPrefix("auth-") }

    @Test(arguments: decodable)
    func everyStrictPrefixIsTruncated(_ v: Vector) {
        for n in 0..<v.bytes.count {
            let e = wireError { _ = try decodeAndReencode(v.codec, Array(v.bytes[..<n])) }
            #expect(e?.kind == .truncated, "prefix \(n) of \(v.name): \(String(describing: e))")
        }
    }

    @Test(arguments: decodable.filter { $0.codec != "private-data" && $0.name != "transport-negotiate-request" })
    func anExtraByteIsInconsistentLength(_ v: Vector) {
        // (Private data and the negotiate request tolerate trailing bytes by design.)
        let e = wireError { _ = try decodeAndReencode(v.codec, v.bytes + [0]) }
        #expect(e?.kind == .inconsistentLength)
    }

    @Test(arguments: decodable)
    func everyReservedByteMustBeZero(_ v: Vector) {
        let reserved = v.fields.filter { $0.note.contains("reserved") || $0.note.contains("padding") }
        for f in reserved {
            // The error names the field as PROTOCOL.md §3.9 does: the table's name, with the
            // attribute block's fields and those of repeated entries (the vector's
            // "client[0].layout[1].") unprefixed, and the data offset padding called "padding".
            var name = String(f.note.prefix { $0 != " " })
            if name.hasPrefix("attr.") { name.removeFirst("attr.".count) }
            if let end = name.range(of: "].", options: .backwards) { name = String(name[end.upperBound...]) }
            for i in f.offset..<(f.offset + f.length) {
                var bad = v.bytes
                bad[i] = 0x01
                let e = wireError { _ = try decodeAndReencode(v.codec, bad) }
                #expect(e == .reservedNotZero(field: name), "\(v.name) byte \(i) (\(f.note)): \(String(describing: e))")
            }
        }
    }

    @Test(arguments: decodable)
    func aWrongMagicIsBadMagic(_ v: Vector) {
        guard let magic = v.fields.first(where: { $0.note.hasPrefix("magic") }) else { return }
        var bad = v.bytes
        bad[magic.offset] ^= 0xFF
        #expect(wireError { _ = try decodeAndReencode(v.codec, bad) }?.kind == .badMagic)
    }

    @Test func unknownCommandsAreTyped() throws {
        for raw: UInt16 in [0x0000, 0x0009, 0x001D, 0x0022, 0x0033, 0x0041, 0xFFFF] {
            let m = Message(messageId: 1, sessionId: 1, body: .error(command: Command(rawValue: raw), status: .notSupported,
                                                                      ErrorBody()))
            var bytes = try m.encode()
            bytes[12] = 0  // make it a request: flags 0 ...
            bytes[8] = 0   // ... with status 0
            bytes.removeLast(8)
            bytes[32] = 0  // and an empty body
            #expect(wireError { _ = try Message.decode(bytes) } == .unknownCommand(raw))
            // A success response naming it is malformed the same way.
            bytes[12] = 1
            #expect(wireError { _ = try Message.decode(bytes) } == .unknownCommand(raw))
        }
    }

    @Test func oversizedFieldsAreRejectedOnBothSides() throws {
        // Decoding: a body length above the 16 MiB ceiling.
        var big = Vectors.named("logoff-request").bytes
        big[32] = 0xFF; big[33] = 0xFF; big[34] = 0xFF; big[35] = 0x00
        #expect(wireError { _ = try Message.decode(big) } == .oversized(field: "bodyLength"))
        // Encoding never produces what decoding would reject.
        let cases: [(Request, WireError)] = [
            (.open(OpenRequest(treeId: 1, flags: .read, path: String(repeating: "p", count: 4096))), .oversized(field: "path")),
            (.echo(EchoMessage(data: [UInt8](repeating: 0, count: Limits.maxEchoLength + 1))), .oversized(field: "data")),
            (.read(ReadRequest(fileId: 1, offset: 0, descriptors: (0..<65).map { _ in
                BufferDescriptor(address: 0, rkey: 0, length: 1) })), .oversized(field: "descriptorCount")),
            (.treeConnect(TreeConnectRequest(exportName: String(repeating: "e", count: 256))), .oversized(field: "exportName")),
            (.sessionSetup(.begin(identity: String(repeating: "i", count: 256), clientNonce: Samples.nonce)),
             .oversized(field: "identity")),
            (.layoutCommit(LayoutCommitRequest(stateid: Samples.sid, ranges: (0..<65).map { _ in
                ByteRange(offset: 0, length: 1) })), .oversized(field: "rangeCount")),
        ]
        for (r, expected) in cases {
            #expect(wireError { _ = try Message.request(r, messageId: 1, sessionId: 1).encode() } == expected)
        }
        let list = ListResponse(entries: Array(repeating: ListEntry(attributes: Samples.attrs, name: "x"), count: 1025),
                                nextCookie: 1, isEnd: false)
        #expect(wireError { _ = try Message(messageId: 1, sessionId: 1, body: .response(.list(list))).encode() }
                == .oversized(field: "count"))
    }

    @Test func outOfRangeValuesAreRejectedOnEncode() {
        let cases: [(MessageBody, WireError)] = [
            (.request(.sessionSetup(.proof(clientProof: [1, 2]))), .outOfRange(field: "clientProof")),
            (.request(.negotiate(NegotiateRequest(minDialect: 2, maxDialect: 1, capabilities: [], clientId: Samples.guid))),
             .outOfRange(field: "minDialect")),
            (.request(.open(OpenRequest(treeId: 0, flags: .read, path: "a"))), .outOfRange(field: "treeId")),
            (.request(.open(OpenRequest(treeId: 1, flags: .read, mode: 0o10000, path: "a"))), .outOfRange(field: "mode")),
            (.request(.open(OpenRequest(treeId: 1, flags: OpenFlags(rawValue: 0x80), path: "a"))),
             .unknownFlags(field: "openFlags", bits: 0x80)),
            (.request(.layoutGet(LayoutGetRequest(fileId: 1, offset: 10, length: 5, minLength: 6, iomode: .read))),
             .outOfRange(field: "minLength")),
            (.request(.layoutGet(LayoutGetRequest(fileId: 1, offset: .max, length: 1, minLength: 0, iomode: .read))),
             .outOfRange(field: "length")),
            (.request(.read(ReadRequest(fileId: 1, offset: 0, length: 9, descriptors: [BufferDescriptor(address: 0, rkey: 0, length: 8)]))),
             .inconsistentLength(field: "length")),
            (.request(.punchHole(PunchHoleRequest(fileId: 1, range: ByteRange(offset: 0, length: 0)))), .outOfRange(field: "length")),
            (.request(.layoutCommit(LayoutCommitRequest(stateid: Samples.sid, ranges: []))), .outOfRange(field: "rangeCount")),
            (.request(.layoutCommit(LayoutCommitRequest(stateid: LayoutStateid(id: 0, seqid: 1), ranges: [ByteRange(offset: 0, length: 1)]))),
             .outOfRange(field: "stateid.id")),
            (.response(.layoutGet(LayoutGetResponse(stateid: Samples.sid, iomode: .readWrite, recallDeadlineMs: 1, extents: [
                LayoutExtent(fileOffset: 8192, length: 4096, remoteAddress: 0, rkey: 1),
                LayoutExtent(fileOffset: 0, length: 4096, remoteAddress: 0, rkey: 1),
            ]))), .outOfRange(field: "extent.fileOffset")),
            (.response(.layoutGet(LayoutGetResponse(stateid: Samples.sid, iomode: .read, recallDeadlineMs: 1, extents: []))),
             .outOfRange(field: "extentCount")),
            (.response(.list(ListResponse(entries: [ListEntry(attributes: Samples.attrs, name: "a/b")], nextCookie: 0, isEnd: true))),
             .outOfRange(field: "name")),
            (.response(.list(ListResponse(entries: [], nextCookie: 5, isEnd: true))), .reservedNotZero(field: "nextCookie")),
            (.response(.list(ListResponse(entries: [], nextCookie: 5, isEnd: false))), .outOfRange(field: "count")),
            (.response(.treeConnect(TreeConnectResponse(treeId: 1, flags: TreeFlags(rawValue: 8)))),
             .unknownFlags(field: "treeFlags", bits: 8)),
            (.response(.serverStats(ServerStatsResponse(counters: [Counter(name: "", value: 1)]))), .outOfRange(field: "counterName")),
            (.response(.serverClients(ServerClientsResponse(clients: [Samples.client()], total: 0))), .outOfRange(field: "total")),
            (.response(.serverClients(ServerClientsResponse(clients: Array(repeating: Samples.client(), count: 257), total: 1000))),
             .oversized(field: "count")),
            (.response(.serverClients(ServerClientsResponse(clients: [Samples.client(layouts: Array(repeating: Samples.layout(), count: 17))],
                                                            total: 1))), .oversized(field: "layoutCount")),
            (.response(.serverClients(ServerClientsResponse(clients: [Samples.client(held: 1, layouts: [Samples.layout(), Samples.layout()])],
                                                            total: 1))), .outOfRange(field: "layoutsHeld")),
            (.response(.serverClients(ServerClientsResponse(clients: [Samples.client(address: "")], total: 1))), .outOfRange(field: "address")),
            (.response(.serverClients(ServerClientsResponse(clients: [Samples.client(address: String(repeating: "a", count: 256))], total: 1))),
             .oversized(field: "address")),
            (.response(.serverClients(ServerClientsResponse(clients: [Samples.client(identity: String(repeating: "i", count: 256))], total: 1))),
             .oversized(field: "identity")),
            (.response(.serverClients(ServerClientsResponse(clients: [Samples.client(layouts: [Samples.layout(file: "")])], total: 1))),
             .outOfRange(field: "file")),
            (.response(.serverClients(ServerClientsResponse(clients: [Samples.client(layouts: [
                Samples.layout(file: String(repeating: "f", count: Limits.maxClientFileLength + 1))])], total: 1))),
             .oversized(field: "file")),
            (.error(command: .open, status: .ok, ErrorBody()), .outOfRange(field: "status")),
            (.callback(.layoutRecall(LayoutRecall(stateid: Samples.sid, fileId: 1, range: ByteRange(offset: 0, length: 1),
                                                  recallId: 0, deadlineMs: 1, reason: .truncate))), .outOfRange(field: "recallId")),
        ]
        for (body, expected) in cases {
            #expect(wireError { _ = try Message(messageId: 1, sessionId: 1, body: body).encode() } == expected)
        }
    }

    @Test func dataTransferRulesAreEnforced() {
        let bad: [(DataTransferHeader, [UInt8], WireError)] = [
            (DataTransferHeader(creditsRequested: 1, creditsGranted: 0, dataOffset: 24, dataLength: 0), [],
             .inconsistentLength(field: "dataOffset")),
            (DataTransferHeader(creditsRequested: 1, creditsGranted: 0, dataOffset: 16, dataLength: 1), [1],
             .outOfRange(field: "dataOffset")),
            (DataTransferHeader(creditsRequested: 1, creditsGranted: 0, dataOffset: 36, dataLength: 1), [1],
             .misaligned(field: "dataOffset")),
            (DataTransferHeader(flags: DataTransferFlags(rawValue: 2), creditsRequested: 1, creditsGranted: 0,
                                dataOffset: 0, dataLength: 0), [], .unknownFlags(field: "flags", bits: 2)),
            (DataTransferHeader(creditsRequested: 1, creditsGranted: 0, dataOffset: 24, dataLength: 2), [1],
             .inconsistentLength(field: "dataLength")),
        ]
        for (h, payload, expected) in bad {
            #expect(wireError { _ = try DataTransferMessage(header: h, payload: payload).encode() } == expected)
        }
        // Decoding: padding between the header and a later payload must be zero.
        var padded = Vectors.named("dt-padded-offset").bytes
        padded[28] = 9
        #expect(wireError { _ = try DataTransferHeader.decode(padded.withUnsafeBytes { UnsafeRawBufferPointer($0) }) } != nil)
        #expect(wireError { _ = try TransportMessage.decode(padded) } == .reservedNotZero(field: "padding"))
        // DataTransferHeader.decode refuses a negotiate message.
        let neg = Vectors.named("transport-negotiate-request").bytes
        #expect(wireError { _ = try neg.withUnsafeBytes { try DataTransferHeader.decode($0) } } == .outOfRange(field: "type"))
    }

    @Test func mutatedVectorsNeverTrapAndDecodedValuesAreStable() throws {
        // A small in-process fuzz: every successful decode must re-encode to something that
        // decodes to the same value (what the libFuzzer target checks at scale).
        var rng = XorShift(seed: 0xDA5)
        var decoded = 0, rejected = 0
        for v in Self.decodable {
            for _ in 0..<150 {
                var b = v.bytes
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0 where !b.isEmpty: b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    case 1 where !b.isEmpty: b.remove(at: Int.random(in: 0..<b.count, using: &rng))
                    case 2: b.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...b.count, using: &rng))
                    default: if !b.isEmpty { b[Int.random(in: 0..<b.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng) }
                    }
                }
                do {
                    let again = try decodeAndReencode(v.codec, b)
                    #expect(try decodeAndReencode(v.codec, again) == again)
                    decoded += 1
                } catch is WireError {
                    rejected += 1
                }
            }
        }
        #expect(decoded > 0 && rejected > 0)
    }
}
