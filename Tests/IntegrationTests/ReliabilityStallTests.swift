import Crypto
import DaxshareClient
import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// A client that stops reposting receives (so the server runs out of credits to answer it)
/// must cost only itself (issue 8, "A slow or stalled client does not stall others"): other
/// clients' workloads go on, a recall it cannot be sent is fenced at the deadline, and the
/// server still stops cleanly.
@Suite(.serialized) struct ReliabilityStallTests {
    static let deadlineMs = 3000

    init() { Reliability.prepare() }

    func server(_ name: String, port: UInt16) throws -> ServerProcess {
        try ServerProcess(name: name, port: port, arguments: ["--recall-deadline-ms", "\(Self.deadlineMs)"])
    }

    /// A client on a bare transport with `posted` receives that it never reposts: it
    /// authenticates, runs `setup` (each answer uses up one receive), then is left with
    /// `posted - 1 - answers` credits granted to the server, and sends `unread` ECHOs whose
    /// answers it never takes.
    final class StalledClient: @unchecked Sendable {
        let bare: BareTransport
        private var nextId: UInt64 = 1
        private(set) var sessionId: UInt64 = 0
        private(set) var treeId: UInt32 = 0

        init(_ server: ServerProcess, posted: Int = 8) async throws {
            bare = try await BareTransport(host: try Testbed.address, port: server.port, posted: posted)
            try await bare.negotiate()
            // The first message grants every receive still posted (one went to the negotiate response).
            var grant = UInt16(posted - 1)
            func call(_ r: Request) async throws -> Message {
                let id = nextId
                nextId += 1
                try await bare.sendRequest(r, messageId: id, sessionId: sessionId, grant: grant)
                grant = 0
                guard let m = try await bare.receiveMessage(timeout: 20) else { throw TestbedError.missing("an answer to \(r.command)") }
                return m
            }
            self.call = call
            _ = try await call(.negotiate(NegotiateRequest(capabilities: [.layouts, .callbacks], clientId: Array(repeating: 5, count: 16))))
            let clientNonce = Array(repeating: UInt8(7), count: 32)
            let challenge = try await call(.sessionSetup(.begin(identity: "stalled", clientNonce: clientNonce)))
            guard case let .response(.sessionSetup(.challenge(serverNonce))) = challenge.body else { throw TestbedError.missing("a challenge") }
            sessionId = challenge.sessionId
            let proof = HMAC<SHA256>.authenticationCode(
                for: SessionAuth.clientProofInput(sessionId: sessionId, serverNonce: serverNonce, clientNonce: clientNonce, identity: "stalled"),
                using: SymmetricKey(data: try server.secret))
            _ = try await call(.sessionSetup(.proof(clientProof: Array(proof))))
            guard case let .response(.treeConnect(t)) = try await call(.treeConnect(TreeConnectRequest(exportName: "data"))).body else {
                throw TestbedError.missing("a tree")
            }
            treeId = t.treeId
        }

        /// One request and its answer (uses up one of the receives).
        var call: (Request) async throws -> Message = { _ in throw TestbedError.missing("init") }

        /// Requests whose answers are never read: once the receives are used up, the server
        /// has no credit left to answer with.
        func sendUnread(_ count: Int) async throws {
            for _ in 0..<count {
                let id = nextId
                nextId += 1
                try await bare.sendRequest(.echo(EchoMessage(data: Array(repeating: 0x53, count: 512))), messageId: id, sessionId: sessionId, grant: 0)
            }
        }

        /// OPEN (read-write) and an RW LAYOUTGET on `[0, length)` (two answers, two receives).
        func holdLayout(_ path: String, length: UInt64) async throws {
            guard case let .response(.open(o)) = try await call(.open(OpenRequest(treeId: treeId, flags: [.read, .write], path: path))).body else {
                throw TestbedError.missing("open")
            }
            guard case .response(.layoutGet) = try await call(.layoutGet(LayoutGetRequest(
                fileId: o.fileId, offset: 0, length: length, minLength: 4096, iomode: .readWrite))).body else {
                throw TestbedError.missing("a layout")
            }
        }

        func close() { bare.close() }
    }

    @Test(.timeLimit(.minutes(15))) func aClientThatStopsReadingDoesNotStallOthers() async throws {
        let server = try server("rel-stall", port: 5611)
        defer { if server.process.isRunning { server.kill9() } }
        let stalled = try await StalledClient(server, posted: 8)
        // 4 answers taken of 7 granted: 3 left; 16 more requests leave the server stuck
        // answering them.
        try await stalled.sendUnread(16)
        let good = WellBehavedClient(server: server, name: "beside-stalled", maxSize: 256 << 10)
        good.start()
        // Meanwhile a library client, one-sided, with committed writes read back.
        let host = try Testbed.address
        let secret = try SessionSecret(contentsOf: server.secretFile)
        let library = try await withDeadline(120, "a library client's workload beside the stalled one") {
            let session = try await ClientSession.connect(host: host, port: server.port, export: "data", secret: secret)
            let file = try await session.open("lib.bin", flags: [.read, .write, .create])
            let data = seededBytes(512 << 10, seed: 99)
            try await file.write(at: 0, data)
            try await file.flush()
            let back = try await file.read(at: 0, count: data.count)
            try await file.close()
            await session.close()
            return sha256Hex(back) == sha256Hex(data)
        }
        #expect(library, "the library client read back other bytes than it wrote")
        let (rounds, failures) = await good.stop(minimumRounds: 3)
        #expect(failures.isEmpty, "the CLI client beside a stalled one failed \(failures.count) of \(rounds) rounds:\n\(failures.joined(separator: "\n"))")
        #expect(server.process.isRunning)
        // The stalled connection is still there; the server still stops cleanly and promptly.
        #expect(!(try await stalled.bare.disconnected(within: 0.1)), "the server dropped the stalled client (it may; it did not have to)")
        let status = await onThread { stopBounded(server) }
        #expect(status == "exit 0", "SIGTERM with a stalled client connected: \(status); log:\n\(server.log.suffix(10_000))")
        stalled.close()
        Reliability.report("stall: CLI client ran \(rounds) rounds beside a client that never reads")
    }

    /// A stalled client holding an RW layout on a file that another client truncates: the
    /// server cannot even send it the recall. The truncate must still go ahead at the
    /// deadline, with the stalled layout fenced.
    @Test(.timeLimit(.minutes(10))) func aStalledLayoutHolderDoesNotHoldUpATruncate() async throws {
        let server = try server("rel-stall-truncate", port: 5612)
        defer { _ = stopBounded(server) }
        FileManager.default.createFile(atPath: server.exportDir + "/held.bin", contents: Data(seededBytes(256 << 10, seed: 3)))
        let stalled = try await StalledClient(server, posted: 8)
        defer { stalled.close() }
        try await stalled.holdLayout("held.bin", length: 256 << 10)
        // 6 answers taken of 7 granted: one credit left, spent on this ECHO's answer.
        try await stalled.sendUnread(2)
        try await Task.sleep(for: .milliseconds(500))

        let other = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
        defer { other.close() }
        let file = try await other.open("held.bin", [.read, .write])
        let started = ContinuousClock.now
        let truncated = try? await withDeadline(Double(Self.deadlineMs) / 1000 + 20, "SET_SIZE while a stalled client holds a layout") {
            try await other.request(.setSize(SetSizeRequest(fileId: file, size: 4096)))
        }
        let took = ContinuousClock.now - started
        #expect(truncated != nil, "the truncate waited \(took) for a client that cannot even be sent the recall")
        if case let .setSize(attrs) = truncated { #expect(attrs.size == 4096) }
        if truncated != nil {
            let counters = try await other.counters()
            #expect(counters["layouts_revoked"] == 1, "counters: \(counters)")
            #expect(server.log.contains("fenced"), "log:\n\(server.log.suffix(5000))")
        }
        // Another client's work goes on meanwhile.
        let echo = try await withDeadline(20, "an ECHO from a third client") { () -> Bool in
            let third = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
            defer { third.close() }
            guard case let .echo(e) = try await third.request(.echo(EchoMessage(data: [4, 2]))) else { return false }
            return e.data == [4, 2]
        }
        #expect(echo)
        Reliability.report("stall: truncate beside a stalled layout holder took \(took)\(truncated == nil ? " (gave up)" : "")")
    }

    /// The same with a local process opening the file: the opener must get through at the
    /// recall deadline, not at the kernel's lease-break timeout (45 s).
    @Test(.timeLimit(.minutes(10))) func aStalledLayoutHolderDoesNotHoldUpALocalOpen() async throws {
        let server = try server("rel-stall-open", port: 5613)
        defer { _ = stopBounded(server) }
        FileManager.default.createFile(atPath: server.exportDir + "/held.bin", contents: Data(seededBytes(64 << 10, seed: 4)))
        let stalled = try await StalledClient(server, posted: 8)
        defer { stalled.close() }
        try await stalled.holdLayout("held.bin", length: 64 << 10)
        try await stalled.sendUnread(2)
        try await Task.sleep(for: .milliseconds(500))
        let (opened, took) = await localOpen(server.exportDir + "/held.bin", limit: 90)
        #expect(opened)
        #expect(took < .milliseconds(Self.deadlineMs + 15_000), "the local opener waited \(took) (lease-break-time is 45 s)")
        #expect(server.process.isRunning)
        Reliability.report("stall: local open beside a stalled layout holder took \(took)")
    }

    /// A client that goes silent (a vanished host, a dead link: it answers nothing, not even
    /// the transport) while holding a layout: the server's keepalive (§2.9) finds out, closes
    /// the connection and releases the layout, with no other client needed to trigger a recall.
    @Test(.timeLimit(.minutes(5))) func aSilentClientIsDisconnectedByKeepaliveAndItsLayoutReleased() async throws {
        let server = try ServerProcess(name: "rel-silent", port: 5614, arguments: ["--keepalive-seconds", "1"])
        defer { _ = stopBounded(server) }
        FileManager.default.createFile(atPath: server.exportDir + "/held.bin", contents: Data(seededBytes(64 << 10, seed: 5)))
        let silent = try await StalledClient(server, posted: 8)
        defer { silent.close() }
        try await silent.holdLayout("held.bin", length: 64 << 10)
        let observer = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
        defer { observer.close() }
        #expect(try await observer.counters()["layouts_live"] == 1)
        // From here the client sends nothing and reposts nothing. The server keeps its other
        // connection (the observer, which answers keepalives) and drops this one.
        let started = ContinuousClock.now
        let dropped = await silent.bare.disconnected(within: 40)
        let took = ContinuousClock.now - started
        #expect(dropped, "the server kept a silent connection for \(took)")
        let released = await eventually(20) { try await observer.counters()["layouts_live"] == 0 }
        let counters = (try? await observer.counters()) ?? [:]
        #expect(released, "counters: \(counters)")
        #expect(server.log.contains("keepalive timeout"), "log:\n\(server.log.suffix(5000))")
        guard case let .echo(e) = try await observer.request(.echo(EchoMessage(data: [9]))) else { throw TestbedError.missing("echo") }
        #expect(e.data == [9], "the observer, idle as long, is still served")
        Reliability.report("stall: a silent client holding a layout was disconnected by keepalive after \(took)")
    }
}
