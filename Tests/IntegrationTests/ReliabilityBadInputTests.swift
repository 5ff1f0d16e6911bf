import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// Bad input against a live daxshared (issue 8): after valid connects, seeded mutations of
/// every protocol vector, every command before authentication, unknown commands, transport
/// messages that break sizes and credits, and floods of OPENs and LAYOUTGETs. The server
/// must stay up, end only the offending connection (with a reason in its log), and keep
/// serving the real `daxshare` CLI running a checksum-verified put/get loop throughout.
@Suite(.serialized) struct ReliabilityBadInputTests {
    /// Figures over the whole suite, for the summary line.
    static let tally = Tally()

    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var tried = 0, closed = 0
        func add(tried t: Int, closed c: Int) {
            let (a, b) = lock.withLock { tried += t; closed += c; return (tried, closed) }
            Reliability.report("\(a) malformed messages tried, \(b) connections closed by the server")
        }
    }

    init() { Reliability.prepare() }

    /// A server with the read-only export "pmem" (the export the vectors name) that probes
    /// go to, beside "data" where the well-behaved client works.
    func server(_ name: String, port: UInt16, arguments: [String] = []) throws -> ServerProcess {
        let ro = try Testbed.pmemPath("export-\(name)-ro")
        try FileManager.default.createDirectory(atPath: ro + "/data/empty", withIntermediateDirectories: true)
        for (file, size) in [("data/f", 64 << 10), ("data/a", 4096), ("data/old", 100), ("log", 10)] {
            FileManager.default.createFile(atPath: ro + "/" + file, contents: Data(seededBytes(size, seed: UInt64(size))))
        }
        // Mutated SESSION_SETUP proofs fail authentication by the hundred from the one address
        // the well-behaved client connects from too; the per-address limit has its own test
        // (ReliabilitySecurityTests), here it would only lock the well-behaved client out.
        return try ServerProcess(
            name: name, port: port, extraExports: ["pmem=\(ro):ro"], arguments: ["--auth-failure-burst", "1000000"] + arguments)
    }

    /// A probe session in the state the vectors assume: authenticated, tree "pmem" connected,
    /// data/f open (read-only), a READ layout on it, and a registered buffer that READ
    /// descriptors may point at.
    final class Target: @unchecked Sendable {
        let session: ProbeSession
        let treeId: UInt32
        let fileId: UInt64
        let layout: LayoutStateid?
        let buffer: RegisteredBuffer

        init(_ server: ServerProcess) async throws {
            session = try await ProbeSession(host: try Testbed.address, port: server.port)
            treeId = try await session.authenticate(secret: try server.secret, tree: "pmem")
            guard case let .open(o) = try await session.request(.open(OpenRequest(treeId: treeId, flags: [.read], path: "data/f"))) else {
                throw TestbedError.missing("open of data/f")
            }
            fileId = o.fileId
            if case let .layoutGet(l) = try? await session.request(.layoutGet(LayoutGetRequest(
                fileId: fileId, offset: 0, length: 65536, minLength: 4096, iomode: .read))) {
                layout = l.stateid
            } else {
                layout = nil
            }
            buffer = try RegisteredBuffer(domain: session.channel.connection.domain, length: 1 << 17,
                                          access: [.localWrite, .remoteRead, .remoteWrite])
        }

        /// The vector with the live ids and buffer in place of the example ones.
        func adapt(_ v: WireVector) -> WireVector {
            var v = v
            v.patch("messageId", session.freshId())
            v.patch("sessionId", session.sessionId)
            v.patch("treeId", UInt64(treeId))
            v.patch("fileId", fileId)
            if let layout {
                v.patch("stateid.id", layout.id)
                v.patch("stateid.seqid", UInt64(layout.seqid))
            }
            let remote = buffer.region.remote()
            v.patch("descriptor[0].address", remote.address)
            v.patch("descriptor[1].address", remote.address + 65536)
            v.patch("descriptor[0].rkey", UInt64(remote.rkey))
            v.patch("descriptor[1].rkey", UInt64(remote.rkey))
            return v
        }
    }

    /// What PROTOCOL.md §3.8 says the server does with these bytes, judged by the codec.
    enum Expected: Equatable { case close, notSupported, answer, answerOrClose }

    static func expected(_ bytes: [UInt8]) -> Expected {
        guard let header = try? MessageHeader.decode(bytes) else { return .close }
        let message: Message
        do { message = try Message.decode(bytes) } catch {
            if case .unknownCommand = error, header.flags.isEmpty { return .notSupported }
            return .close
        }
        switch message.body {
        case let .request(r):
            // Two-sided I/O with descriptors the mutation broke ends in an RDMA error, which
            // ends the connection; a third failed SESSION_SETUP proof ends it too.
            if [.read, .write, .sessionSetup].contains(r.command) { return .answerOrClose }
            return .answer
        // The probe has no callback outstanding: a reply to none is a violation (§2.10).
        case .callbackReply: return .close
        default: return .close
        }
    }

    @Test(.timeLimit(.minutes(40))) func mutatedVectorsCostOnlyTheirConnection() async throws {
        let server = try server("rel-mutate", port: 5601)
        defer { #expect(stopBounded(server) == "exit 0", "log:\n\(server.log.suffix(20_000))") }
        let good = WellBehavedClient(server: server, name: "good")
        good.start()

        let vectors = WireVector.load().filter { $0.codec == "message" }
        let invalid = WireVector.load(WireVector.directory.appendingPathComponent("invalid")).filter { $0.codec == "message" }
        #expect(vectors.count >= 60, "vectors in \(WireVector.directory.path)")
        // One mutation of each vector in `make test` (with the vector as is and every invalid
        // vector), 22 at `make reliability`'s scale 10. Three probe connections share the
        // vectors: most probes end their connection, and a new connection and session is
        // what costs time under emulation, not the server's answer.
        let perVector = Reliability.scale == 1 ? 1 : 4 + 2 * (Reliability.scale - 1)
        let shards = 3
        let results = try await withThrowingTaskGroup(of: ProbeShard.self) { group in
            for shard in 0..<shards {
                let mine = vectors.indices.filter { $0 % shards == shard }.map { vectors[$0] }
                let bad = invalid.indices.filter { $0 % shards == shard }.map { invalid[$0] }
                group.addTask {
                    var result = ProbeShard(mutator: Mutator(seed: 0x0DA7_5AFE &+ UInt64(shard)))
                    try await result.run(server, vectors: mine, perVector: perVector, invalid: bad)
                    return result
                }
            }
            return try await group.reduce(into: [ProbeShard]()) { $0.append($1) }
        }
        let tried = results.reduce(0) { $0 + $1.tried }, closed = results.reduce(0) { $0 + $1.closed }
        let reconnects = results.reduce(0) { $0 + $1.reconnects }
        let outcomes = results.reduce(into: [String: Int]()) { all, r in all.merge(r.outcomes, uniquingKeysWith: +) }
        let wrong = results.flatMap(\.wrong)

        let (rounds, failures) = await good.stop(minimumRounds: 2)
        #expect(wrong.isEmpty, "server reactions that break PROTOCOL.md §3.8:\n\(wrong.joined(separator: "\n"))")
        #expect(server.process.isRunning, "the server died; log:\n\(server.log.suffix(20_000))")
        #expect(failures.isEmpty, "the well-behaved client failed \(failures.count) of \(rounds) rounds:\n\(failures.joined(separator: "\n"))")
        let reasons = closeReasons(in: server.log)
        #expect(reasons.count >= closed, "\(closed) connections closed, \(reasons.count) reasons logged")
        Reliability.report("mutations: \(outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); \(reconnects) client resets; good client \(rounds) rounds")
        Self.tally.add(tried: tried, closed: closed)
    }

    /// One probe connection's share of the mutation run: each vector as is, then its
    /// mutations, each judged against PROTOCOL.md §3.8 (`expected`).
    struct ProbeShard: Sendable {
        var mutator: Mutator
        var tried = 0, closed = 0, reconnects = 0
        var outcomes: [String: Int] = [:]
        var wrong: [String] = []

        mutating func run(_ server: ServerProcess, vectors: [WireVector], perVector: Int, invalid: [WireVector]) async throws {
            var target = try await Target(server)
            for v in vectors {
                try await probe(&target, server, v.name, target.adapt(v).bytes, "as is")
                for _ in 0..<perVector {
                    let (bytes, what) = mutator.mutate(target.adapt(v))
                    try await probe(&target, server, v.name, bytes, what)
                }
            }
            for v in invalid { try await probe(&target, server, "invalid/" + v.name, target.adapt(v).bytes, "as is") }
            target.session.close()
        }

        mutating func probe(_ target: inout Target, _ server: ServerProcess, _ name: String, _ bytes: [UInt8], _ what: String) async throws {
            let expected = ReliabilityBadInputTests.expected(bytes)
            // The liveness ECHO waits for the server's reaction: right behind a message that
            // ends the connection it crashes the server (see aMessageRightBehindAFatalOneDoesNotCrashTheServer).
            let outcome = await target.session.probe(bytes, settle: 3)
            tried += 1
            let ok: Bool
            switch (expected, outcome) {
            case (_, .hung): ok = false
            case (.close, .closed), (.answerOrClose, .closed), (.answerOrClose, .answered): ok = true
            case (.notSupported, .answered(.notSupported)): ok = true
            case (.answer, .answered): ok = true
            case (.answer, .closed(answer: .some)): ok = true  // answered, then the session ended (LOGOFF of a third failure)
            default: ok = false
            }
            outcomes["\(outcome)", default: 0] += 1
            if !ok, wrong.count < 30 { wrong.append("\(name) [\(what)]: expected \(expected), got \(outcome)") }
            if case .closed = outcome {
                closed += 1
                target.session.close()
                target = try await Target(server)
            } else if let command = try? MessageHeader.decode(bytes).command,
                      [.logoff, .close, .treeDisconnect, .layoutReturn, .sessionSetup].contains(command) {
                // The session may have lost the state the next vectors need: start afresh.
                target.session.close()
                reconnects += 1
                target = try await Target(server)
            }
        }
    }

    /// A malformed message and another right behind it, both in the server's receive queue
    /// when the first ends the connection: the server must not touch the torn-down queue
    /// pair for the second (it reposted the receive after rdma_destroy_qp and crashed with
    /// SIGSEGV in Connection.postReceive, found by the mutation run).
    @Test(.timeLimit(.minutes(10))) func aMessageRightBehindAFatalOneDoesNotCrashTheServer() async throws {
        let server = try server("rel-behind", port: 5606)
        defer { _ = stopBounded(server) }
        let rounds = 30 * Reliability.scale
        var tried = 0, closed = 0
        for round in 0..<rounds {
            guard server.process.isRunning else { break }
            let s: ProbeSession
            do { s = try await ProbeSession(host: try Testbed.address, port: server.port) } catch {
                Issue.record("round \(round): cannot connect any more: \(error)")
                break
            }
            try await s.authenticate(secret: try server.secret, tree: "pmem")
            var bad = try Message.request(.echo(EchoMessage(data: [1, 2, 3])), messageId: 1, sessionId: s.sessionId).encode()
            bad[32] = 0xFF  // bodyLength no longer matches: BAD_MESSAGE, then the close
            // Four more messages right behind it, before the server has acted on the first.
            let ping = try Message.request(.echo(EchoMessage(data: [9])), messageId: 2, sessionId: s.sessionId).encode()
            try await s.channel.send(bad)
            for _ in 0..<3 { try? await s.channel.send(ping) }
            let outcome = await s.probe(ping, settle: nil)
            tried += 1
            if case .closed = outcome { closed += 1 } else { Issue.record("round \(round): \(outcome)") }
            s.close()
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(server.process.isRunning, "the server died after \(tried) rounds; log:\n\(server.log.suffix(6000))")
        Self.tally.add(tried: tried, closed: closed)
    }

    @Test(.timeLimit(.minutes(10))) func everyCommandBeforeAuthenticationIsRefused() async throws {
        // Its one connection stays without a session on purpose, longer than the default deadline.
        let server = try server("rel-preauth", port: 5602, arguments: ["--session-setup-timeout", "300"])
        defer { #expect(stopBounded(server) == "exit 0", "log:\n\(server.log.suffix(20_000))") }
        let requests = WireVector.load().filter { $0.codec == "message" }.compactMap { v -> Request? in
            guard case let .request(r) = try? Message.decode(v.bytes).body else { return nil }
            return r.command.allowedBeforeAuthentication ? nil : r
        }
        #expect(Set(requests.map(\.command)).count == Command.all.count - 3, "a request vector for every command but NEGOTIATE, SESSION_SETUP, CB_LAYOUTRECALL")
        let unknown: [UInt16] = [0x0000, 0x0009, 0x000F, 0x001D, 0x0022, 0x0033, 0x0041, 0x00FF, 0x7F77, 0xFFFF]
        var tried = 0
        let s = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { s.close() }

        func refusedAll(_ stage: String, sessionId: UInt64) async throws {
            for r in requests {
                let bytes = try Message.request(r, messageId: s.freshId(), sessionId: sessionId).encode()
                let outcome = await s.probe(bytes)
                tried += 1
                #expect(outcome == .answered(.notAuthenticated), "\(stage): \(r.command) got \(outcome)")
            }
            for code in unknown {
                var bytes = try Message.request(.echo(EchoMessage(data: [1])), messageId: s.freshId(), sessionId: sessionId).encode()
                bytes[6] = UInt8(code & 0xFF)
                bytes[7] = UInt8(code >> 8)
                let outcome = await s.probe(bytes)
                tried += 1
                #expect(outcome == .answered(.notSupported), "\(stage): unknown command 0x\(String(code, radix: 16)) got \(outcome)")
            }
        }
        // Nothing yet; then after NEGOTIATE; then with a SESSION_SETUP challenge pending.
        try await refusedAll("before NEGOTIATE", sessionId: 0)
        _ = try await s.call(.negotiate(NegotiateRequest(capabilities: [.layouts], clientId: Array(repeating: 3, count: 16))))
        try await refusedAll("after NEGOTIATE", sessionId: 0)
        let challenge = try await s.call(.sessionSetup(.begin(identity: "early", clientNonce: Array(repeating: 1, count: 32))))
        try await refusedAll("challenge pending", sessionId: challenge.sessionId)
        // A wrong proof: AUTH_FAILED, still refused afterwards.
        let bad = try await s.call(.sessionSetup(.proof(clientProof: Array(repeating: 0, count: 32))), sessionId: challenge.sessionId)
        #expect(bad.status == .authFailed)
        try await refusedAll("after a failed proof", sessionId: challenge.sessionId)
        #expect(!s.ended, "the connection survived refused requests")
        #expect(server.log.contains("before authentication refused"), "log:\n\(server.log.suffix(5000))")

        // Authenticated on another connection, a request with the wrong session id is refused too.
        let t = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { t.close() }
        try await t.authenticate(secret: try server.secret, tree: "data")
        let wrongSession = await t.probe(try Message.request(.serverStats, messageId: t.freshId(), sessionId: t.sessionId ^ 0x5A5A).encode())
        #expect(wrongSession == .answered(.notAuthenticated))
        tried += 1
        #expect(server.process.isRunning)
        Self.tally.add(tried: tried, closed: 0)
    }

    @Test func aSecondNegotiateOrSessionSetupIsRefused() async throws {
        // PROTOCOL.md §3.4: "A second NEGOTIATE gets INVALID_ARGUMENT." §4.4.4: so does "a
        // SESSION_SETUP on an established session"; after LOGOFF one may start again.
        let server = try server("rel-renegotiate", port: 5603)
        defer { #expect(stopBounded(server) == "exit 0") }
        let s = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { s.close() }
        try await s.authenticate(secret: try server.secret, tree: "data")
        let again = try await s.call(.negotiate(NegotiateRequest(capabilities: [.layouts], clientId: Array(repeating: 4, count: 16))))
        #expect(again.status == .invalidArgument, "a second NEGOTIATE got \(again.status)")
        let nonce = Array(repeating: UInt8(2), count: 32)
        let resetup = try await s.call(.sessionSetup(.begin(identity: "again", clientNonce: nonce)))
        #expect(resetup.status == .invalidArgument, "SESSION_SETUP on an established session got \(resetup.status)")
        #expect(try await s.call(.serverStats).status == .ok, "the session survived both")
        _ = try await s.call(.logoff)
        let fresh = try await s.call(.sessionSetup(.begin(identity: "again", clientNonce: nonce)), sessionId: 0)
        #expect(fresh.status == .ok, "SESSION_SETUP after LOGOFF got \(fresh.status)")
        Self.tally.add(tried: 2, closed: 0)
    }

    @Test(.timeLimit(.minutes(30))) func transportAbuseClosesOnlyThatConnection() async throws {
        let server = try server("rel-transport", port: 5604)
        defer { #expect(stopBounded(server) == "exit 0", "log:\n\(server.log.suffix(20_000))") }
        let good = WellBehavedClient(server: server, name: "good")
        good.start()
        let host = try Testbed.address
        let secret = try server.secret
        var tried = 0, closed = 0
        var survived: [String] = []

        /// A negotiated bare transport, after a valid authentication when `authenticated`.
        func bare(authenticated: Bool = false) async throws -> BareTransport {
            let t = try await BareTransport(host: host, port: server.port, posted: 16)
            try await t.negotiate()
            return t
        }
        func expectClosed(_ t: BareTransport, _ what: String, within: Double = 15) async {
            tried += 1
            let gone = await t.disconnected(within: within)
            if gone { closed += 1 } else { survived.append(what) }
            t.close()
            let live = (try? await serverCounters(server))?["connections"].map(String.init) ?? "?"
            print("reliability-trace: \(what): closed by the server \(gone); connections now \(live)")
        }

        // A SEND larger than the server's receive buffers.
        do {
            let t = try await bare()
            let size = Int(t.negotiated!.maxReceiveSize) + 64
            try? await t.sendRaw(try DataTransferMessage(creditsRequested: 64, creditsGranted: 8, payload: Array(repeating: 0x41, count: size - 24)).encode())
            await expectClosed(t, "a SEND of \(size) bytes, over maxReceiveSize \(t.negotiated!.maxReceiveSize)")
        }
        // An upper-layer message announced larger than the server reassembles.
        do {
            let t = try await bare()
            let max = t.negotiated!.maxFragmentedSize
            try await t.sendData(Array(repeating: 0, count: 1000), grant: 8, remaining: max)
            await expectClosed(t, "a message of \(max + 1000) bytes, over maxFragmentedSize \(max)")
        }
        // Fragments that do not add up.
        do {
            let t = try await bare()
            try await t.sendData(Array(repeating: 0, count: 104), grant: 8, remaining: 200)
            try await t.sendData(Array(repeating: 0, count: 104), grant: 0, remaining: 50)
            await expectClosed(t, "a fragment mismatch")
        }
        // More messages than credits.
        do {
            let t = try await bare()
            let credits = t.sendCredits
            try await t.sendData([], grant: 8)
            for _ in 0..<credits { try? await t.sendData([], grant: 0) }
            await expectClosed(t, "\(credits + 1) messages on \(credits) credits")
        }
        // creditsRequested 0, and above what was negotiated.
        for requested: UInt16 in [0, 65] {
            let t = try await bare()
            let m = try Message.request(.echo(EchoMessage(data: [1])), messageId: 1, sessionId: 0).encode()
            try? await t.sendRaw(DataTransferMessage(creditsRequested: requested, creditsGranted: 8, payload: m).encode())
            await expectClosed(t, "creditsRequested \(requested)")
        }
        // A negotiate request after negotiation.
        do {
            let t = try await bare()
            try await t.sendRaw(try TransportNegotiateRequest(creditsRequested: 8, preferredSendSize: 8192, maxReceiveSize: 8192, maxFragmentedSize: 1 << 20).encode())
            await expectClosed(t, "a second transport negotiate")
        }
        // A data transfer message instead of the negotiate request.
        do {
            let t = try await BareTransport(host: host, port: server.port)
            try await t.sendRaw(try DataTransferMessage(creditsRequested: 8, creditsGranted: 1, payload: [0, 0, 0, 0, 0, 0, 0, 0]).encode())
            await expectClosed(t, "data before negotiation")
        }
        // Silence: no negotiate at all within the 5 s the server waits (§2.1).
        do {
            let t = try await BareTransport(host: host, port: server.port)
            let started = ContinuousClock.now
            await expectClosed(t, "no negotiate request", within: 20)
            #expect(ContinuousClock.now - started < .seconds(15), "the silent connection lasted \(ContinuousClock.now - started)")
        }
        // An ECHO above the 64 KiB limit, in valid framing (BAD_MESSAGE, then the close).
        do {
            let s = try await ProbeSession(host: host, port: server.port)
            try await s.authenticate(secret: secret, tree: "data")
            var body = try Message.request(.echo(EchoMessage(data: [])), messageId: 77, sessionId: s.sessionId).encode()
            let n = Limits.maxEchoLength + 1
            body += Array(repeating: 0x45, count: n)
            for i in 0..<4 { body[32 + i] = UInt8(truncatingIfNeeded: UInt32(n) >> (8 * UInt32(i))) }
            let outcome = await s.probe(body)
            tried += 1
            #expect(outcome == .closed(answer: .badMessage), "an ECHO of \(n) bytes got \(outcome)")
            if case .closed = outcome { closed += 1 }
            s.close()
        }
        // READ/WRITE beyond maxReadWriteSize or at impossible offsets: a status, the session lives.
        do {
            let s = try await ProbeSession(host: host, port: server.port)
            defer { s.close() }
            let tree = try await s.authenticate(secret: secret, tree: "data")
            guard case let .open(o) = try await s.request(.open(OpenRequest(treeId: tree, flags: [.read, .write, .create], path: "rw.bin"))) else {
                throw TestbedError.missing("open")
            }
            let buffer = try RegisteredBuffer(domain: s.channel.connection.domain, length: 1 << 16, access: [.localWrite, .remoteRead, .remoteWrite])
            let r = buffer.region.remote()
            let max = s.channel.negotiated.maxReadWriteSize
            let d = [BufferDescriptor(address: r.address, rkey: r.rkey, length: UInt32(1 << 16))]
            let huge = [BufferDescriptor(address: r.address, rkey: r.rkey, length: max + 1)]
            let cases: [(String, Request)] = [
                ("READ over maxReadWriteSize", .read(ReadRequest(fileId: o.fileId, offset: 0, descriptors: huge))),
                ("WRITE over maxReadWriteSize", .write(WriteRequest(fileId: o.fileId, offset: 0, descriptors: huge))),
                ("READ at offset 2^63", .read(ReadRequest(fileId: o.fileId, offset: 1 << 63, descriptors: d))),
                ("WRITE at offset 2^63", .write(WriteRequest(fileId: o.fileId, offset: 1 << 63, descriptors: d))),
                ("SET_SIZE 2^63", .setSize(SetSizeRequest(fileId: o.fileId, size: 1 << 63))),
                ("LAYOUTGET wrapping", .layoutGet(LayoutGetRequest(fileId: o.fileId, offset: UInt64.max - 4095, length: 4096, minLength: 4096, iomode: .read))),
                ("a stale file id", .read(ReadRequest(fileId: 999, offset: 0, length: 4096, descriptors: d))),
                ("a stale tree id", .open(OpenRequest(treeId: 77, flags: [.read], path: "rw.bin"))),
                ("a path that leaves the export", .open(OpenRequest(treeId: tree, flags: [.read], path: "a/../../etc/passwd"))),
            ]
            for (what, request) in cases {
                let bytes: [UInt8]
                do { bytes = try Message.request(request, messageId: s.freshId(), sessionId: s.sessionId).encode() } catch {
                    continue  // the codec itself refuses it: nothing to send
                }
                let outcome = await s.probe(bytes)
                tried += 1
                switch outcome {
                case let .answered(status): #expect(status != .ok, "\(what) succeeded")
                case let .closed(answer): #expect(answer == .badMessage, "\(what): closed (\(String(describing: answer)))"); closed += 1
                default: Issue.record("\(what): \(outcome)")
                }
                if s.ended { break }
            }
        }
        // A READ whose descriptor names an rkey the client never had: the server's RDMA fails.
        do {
            let s = try await ProbeSession(host: host, port: server.port)
            let tree = try await s.authenticate(secret: secret, tree: "data")
            FileManager.default.createFile(atPath: server.exportDir + "/r.bin", contents: Data(seededBytes(8192, seed: 5)))
            guard case let .open(o) = try await s.request(.open(OpenRequest(treeId: tree, flags: [.read], path: "r.bin"))) else {
                throw TestbedError.missing("open")
            }
            let outcome = await s.probe(try Message.request(
                .read(ReadRequest(fileId: o.fileId, offset: 0, length: 4096, descriptors: [BufferDescriptor(address: 0x7f00_0000_1000, rkey: 0xABCD, length: 4096)])),
                messageId: s.freshId(), sessionId: s.sessionId).encode())
            tried += 1
            if case .closed = outcome { closed += 1 } else { Issue.record("a READ into a bogus rkey: \(outcome)") }
            s.close()
        }
        // Mutations of the transport vectors (negotiate requests first on a fresh connection,
        // data transfer messages after a valid negotiate) and of the connect private data.
        var mutator = Mutator(seed: 0x7A45_9017)
        let transport = WireVector.load().filter { $0.codec == "transport" && !$0.name.contains("response") }
        for v in transport {
            for _ in 0..<(3 * Reliability.scale) {
                let (bytes, what) = mutator.mutate(v)
                let isNegotiate = v.name.contains("negotiate")
                let t: BareTransport
                if isNegotiate { t = try await BareTransport(host: host, port: server.port) } else { t = try await bare() }
                try? await t.sendRaw(bytes)
                let valid = (try? TransportMessage.decode(bytes)) != nil
                tried += 1
                if await t.disconnected(within: valid ? 2 : 15) {
                    closed += 1
                } else if !valid {
                    survived.append("\(v.name) [\(what)]")
                }
                t.close()
            }
        }
        let pd = WireVector.load().first { $0.name == "pd-connect" }!
        for _ in 0..<(3 * Reliability.scale) {
            let (bytes, what) = mutator.mutate(pd)
            if bytes.count > 56 { continue }  // rdma_cm carries at most 56 bytes with an RC connect
            // The server sees what rdma_cm delivers: the bytes padded with zeros to 56.
            let delivered = bytes + Array(repeating: 0, count: 56 - bytes.count)
            let valid = (try? ConnectPrivateData.decode(delivered)).map {
                $0.kind == .connect && ($0.minVersion...$0.maxVersion).contains(Limits.version1)
            } ?? false
            tried += 1
            do {
                let t = try await BareTransport(host: host, port: server.port, privateData: bytes)
                #expect(valid, "private data [\(what)] was accepted")
                t.close()
            } catch {
                #expect(!valid, "valid private data [\(what)] was refused: \(error)")
                if !valid { closed += 1 }
            }
        }

        let (rounds, failures) = await good.stop(minimumRounds: 2)
        #expect(survived.isEmpty, "connections the server kept after a violation:\n\(survived.joined(separator: "\n"))")
        #expect(server.process.isRunning, "the server died")
        #expect(failures.isEmpty, "the well-behaved client failed \(failures.count) of \(rounds) rounds:\n\(failures.joined(separator: "\n"))")
        let reasons = closeReasons(in: server.log)
        #expect(reasons.count >= closed, "\(closed) connections closed, \(reasons.count) reasons logged")
        // Rejected connects are logged as such.
        #expect(server.log.contains("failed to set up") || closed == 0)
        Self.tally.add(tried: tried, closed: closed)
    }

    @Test(.timeLimit(.minutes(15))) func aFloodOfOpensAndLayoutGetsHitsTheLimitsAndCostsNothingElse() async throws {
        let maxOpen = 32, maxLayouts = 64 * Reliability.scale
        let server = try server("rel-flood", port: 5605, arguments: [
            "--max-open-files", "\(maxOpen)", "--max-layouts", "\(maxLayouts)", "--log-level", "debug"])
        defer { #expect(stopBounded(server) == "exit 0", "log:\n\(server.log.suffix(20_000))") }
        let good = WellBehavedClient(server: server, name: "good")
        good.start()
        FileManager.default.createFile(atPath: server.exportDir + "/flood.bin", contents: Data(seededBytes(64 << 10, seed: 77)))
        let s = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { s.close() }
        let tree = try await s.authenticate(secret: try server.secret, tree: "data")
        var tried = 0
        var fileIds: [UInt64] = []
        var refusedOpens: [Status] = []
        for i in 0..<(maxOpen + 8 * Reliability.scale) {
            let m = try await s.call(.open(OpenRequest(treeId: tree, flags: [.read], path: "flood.bin")))
            if case let .response(.open(o)) = m.body { fileIds.append(o.fileId) } else { refusedOpens.append(m.status) }
            if i >= maxOpen { tried += 1 }
        }
        #expect(fileIds.count == maxOpen, "opens granted with --max-open-files \(maxOpen)")
        #expect(!refusedOpens.isEmpty && refusedOpens.allSatisfy { $0 == .tooMany }, "refused opens: \(refusedOpens)")
        var granted = 0
        var refusedLayouts: [Status] = []
        for i in 0..<(maxLayouts + 4 * Reliability.scale) {
            let m = try await s.call(.layoutGet(LayoutGetRequest(
                fileId: fileIds[i % fileIds.count], offset: UInt64(i % 16) * 4096, length: 4096, minLength: 4096, iomode: .read)))
            if case .response(.layoutGet) = m.body { granted += 1 } else { refusedLayouts.append(m.status) }
            if i >= maxLayouts { tried += 1 }
        }
        #expect(granted == maxLayouts)
        #expect(!refusedLayouts.isEmpty && refusedLayouts.allSatisfy { $0 == .tooMany }, "refused layouts: \(refusedLayouts.prefix(8))")
        guard case let .echo(e) = try await s.request(.echo(EchoMessage(data: [7]))) else { throw TestbedError.missing("echo") }
        #expect(e.data == [7], "the flooding session still works")
        #expect(server.log.contains("files open") && server.log.contains("layouts held"), "the limits' reasons are logged (at debug level)")

        let (rounds, failures) = await good.stop(minimumRounds: 2)
        #expect(failures.isEmpty, "the well-behaved client failed \(failures.count) of \(rounds) rounds:\n\(failures.joined(separator: "\n"))")
        // All of it goes with the connection.
        s.close()
        let watcher = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { watcher.close() }
        try await watcher.authenticate(secret: try server.secret, tree: nil)
        @Sendable func counters() async throws -> [String: UInt64] {
            guard case let .serverStats(st) = try await watcher.request(.serverStats) else { throw TestbedError.missing("stats") }
            return Dictionary(uniqueKeysWithValues: st.counters.map { ($0.name, $0.value) })
        }
        let released = await eventually(20) {
            let c = try await counters()
            return c["layouts_live"] == 0 && c["mrs_live"] == 0 && c["open_files"] == 0
        }
        let left = try await counters()
        #expect(released, "counters after the flood left: \(left)")
        #expect(server.process.isRunning)
        Self.tally.add(tried: tried, closed: 0)
    }
}
