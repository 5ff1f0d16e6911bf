import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// Security (issue 8) beyond what LayoutServerTests, PathConfinementTests and the limits
/// suite show: wrong secrets are rate-limited per address across connections, and an rkey
/// reaches its granted range and not one byte of the file mapping around it.
@Suite(.serialized) struct ReliabilitySecurityTests {
    init() { Reliability.prepare() }

    /// One SESSION_SETUP (both rounds) with `secret` on a fresh connection: the status of the
    /// round that ended it, with its retry hint, and how long the two rounds took.
    static func authenticate(_ server: ServerProcess, secret: [UInt8]) async throws -> (status: Status, retryAfterMs: UInt32, took: Duration) {
        let s = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { s.close() }
        _ = try await s.call(.negotiate(NegotiateRequest(capabilities: [.layouts], clientId: Array(repeating: 4, count: 16))))
        let started = ContinuousClock.now
        let ended = try await s.sessionSetup(secret: secret, identity: "guesser")
        let took = ContinuousClock.now - started
        if case let .error(_, status, body) = ended.body { return (status, body.retryAfterMs, took) }
        return (ended.status, 0, took)
    }

    @Test(.timeLimit(.minutes(10))) func wrongSecretsAreRateLimitedPerAddressAcrossConnections() async throws {
        // Each guess costs the guesser at least 1 s (§4.4.4), so the refill must be slower than
        // that for the burst to run out: 20 s, and the test waits out one token at the end.
        let burst = 4, refillSeconds = 20
        let server = try ServerProcess(name: "rel-authlimit", port: 5641, arguments: [
            "--auth-failure-burst", "\(burst)", "--auth-failure-refill-seconds", "\(refillSeconds)",
        ])
        defer { #expect(stopBounded(server) == "exit 0", "log:\n\(server.log.suffix(6000))") }
        let secret = try server.secret
        // A session established before the guessing, from the same address.
        let holder = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { holder.close() }
        let tree = try await holder.authenticate(secret: secret, tree: "data")
        guard case let .open(opened) = try await holder.request(.open(OpenRequest(treeId: tree, flags: [.read, .write, .create], path: "kept"))) else {
            throw TestbedError.missing("open")
        }

        // Each guess on a connection of its own, so only the per-address count can stop them.
        var wrong = Array(secret)
        wrong[0] ^= 0xFF
        var statuses: [Status] = []
        for _ in 0..<burst {
            let guess = try await Self.authenticate(server, secret: wrong)
            statuses.append(guess.status)
            // A deliberate delay, not a speed: the answer to a wrong proof comes no sooner (§4.4.4).
            #expect(guess.took >= .seconds(1), "a wrong proof answered after \(guess.took)")
        }
        #expect(statuses == Array(repeating: .authFailed, count: burst), "the first \(burst) guesses are checked: \(statuses)")
        // The bucket is empty: another guess, and even the right secret, get TRY_LATER with a hint.
        let refusedGuess = try await Self.authenticate(server, secret: wrong)
        let refusedRight = try await Self.authenticate(server, secret: secret)
        #expect(refusedGuess.status == .tryLater && refusedRight.status == .tryLater, "\(refusedGuess) \(refusedRight)")
        #expect((1...(refillSeconds * 1000)).contains(Int(refusedRight.retryAfterMs)), "retry hint \(refusedRight.retryAfterMs) ms")
        // The CLI says so in words.
        let cli = try run(CLITests.cli, ["ls", "--secret-file", server.secretFile, try server.url + "/"])
        #expect(cli.status != 0 && cli.err.contains("too many failed attempts"), "exit \(cli.status): \(cli.err)")

        // The session held from that address is untouched.
        guard case .stat = try await holder.request(.stat(.fileId(opened.fileId))) else { throw TestbedError.missing("stat") }
        #expect(!holder.ended)
        // Read on the held session: a new one from this address would be refused.
        let counters = try await holder.counters()
        #expect(counters["auth_failures"] == UInt64(burst), "\(counters)")
        #expect((counters["auth_refusals"] ?? 0) >= 3, "\(counters)")
        #expect(server.log.contains("authentication refused for"), "log:\n\(server.log.suffix(4000))")

        // The wait over, the right secret is served again.
        try await Task.sleep(for: .milliseconds(Int(refusedRight.retryAfterMs) + 200))
        let after = try await Self.authenticate(server, secret: secret)
        #expect(after.status == .ok, "after the hinted wait: \(after)")
        Reliability.report("security: \(burst) wrong secrets on \(burst) connections, then TRY_LATER (retry after \(refusedRight.retryAfterMs) ms) for guesses and the right secret alike; held session unaffected; served again after the wait")
    }

    @Test(.timeLimit(.minutes(10))) func anRkeyReachesOnlyItsGrantedRange() async throws {
        let server = try ServerProcess(name: "rel-rkeyrange", port: 5642)
        defer { #expect(stopBounded(server) == "exit 0", "log:\n\(server.log.suffix(6000))") }
        let page = 4096, fileSize = 4 << 20
        let original = seededBytes(fileSize, seed: 0x4B45)
        #expect(FileManager.default.createFile(atPath: server.exportDir + "/around.bin", contents: Data(original)))
        let watcher = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
        defer { watcher.close() }

        /// A fresh session with an RW layout on [1 MiB, 2 MiB): each probe that breaks the
        /// rules also breaks its connection (the QP goes to the error state).
        func grant() async throws -> (RawSession, RemoteMemory, UInt64) {
            let s = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
            let file = try await s.open("around.bin", [.read, .write])
            let layout = try await s.layout(file: file, offset: 1 << 20, length: 1 << 20, .readWrite)
            let extent = try #require(layout.extents.first)
            return (s, extent.remote, extent.fileOffset)
        }
        func buffer(_ s: RawSession, _ length: Int) throws -> RegisteredBuffer {
            try RegisteredBuffer(domain: s.channel.connection.domain, length: length, access: [.localWrite])
        }

        // Inside the grant: the first and last pages read what the file holds.
        let (s, granted, fileOffset) = try await grant()
        #expect(granted.length >= 1 << 20 && granted.address % UInt64(page) == 0, "\(granted)")
        let grantedEnd = Int(fileOffset + granted.length)
        for at in [0, Int(granted.length) - page] {
            let into = try buffer(s, page)
            try await s.channel.connection.read(into: [into.region.segment(length: page)], from: RemoteMemory(address: granted.address + UInt64(at), rkey: granted.rkey, length: UInt64(page)))
            #expect(Array(into.bytes) == Array(original[(Int(fileOffset) + at)..<(Int(fileOffset) + at + page)]), "page at +\(at)")
        }
        s.close()

        // Outside it, by one page either side, or straddling its end: the NIC refuses.
        let probes: [(String, Int64, Int, Bool)] = [
            ("READ of the page before", -Int64(page), page, false),
            ("READ of the page after", Int64(granted.length), page, false),
            ("READ straddling the end", Int64(granted.length) - Int64(page), 2 * page, false),
            ("WRITE of the page before", -Int64(page), page, true),
            ("WRITE of the page after", Int64(granted.length), page, true),
            ("WRITE straddling the start", -Int64(page), 2 * page, true),
        ]
        var refused: [String] = []
        for (what, offset, length, isWrite) in probes {
            // The previous probe's connection is gone; so are its layout and MR.
            #expect(await eventually(20) { try await watcher.counters()["mrs_live"] == 0 }, "before \(what)")
            let (p, g, _) = try await grant()
            defer { p.close() }
            let local = try buffer(p, length)
            local.bytes.copyBytes(from: [UInt8](repeating: 0xEE, count: length))
            let target = RemoteMemory(address: UInt64(Int64(g.address) + offset), rkey: g.rkey, length: UInt64(length))
            do {
                if isWrite {
                    try await p.channel.connection.write(from: [local.region.segment(length: length)], to: target)
                } else {
                    try await p.channel.connection.read(into: [local.region.segment(length: length)], from: target)
                }
                Issue.record("\(what) with the layout's rkey succeeded")
            } catch let error as VerbsError where error.isRemoteAccessError {
                refused.append(what)
            }
        }
        #expect(refused.count == probes.count, "refused: \(refused)")

        // Not one byte of the file changed, and the server serves on.
        #expect(await eventually(20) { try await watcher.counters()["mrs_live"] == 0 })
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/around.bin"))
        #expect(onDisk.count == fileSize && Array(onDisk) == original, "the file changed")
        #expect(server.process.isRunning)
        Reliability.report("security: an rkey for file bytes [\(fileOffset), \(grantedEnd)) refused \(refused.count) of \(probes.count) READs and WRITEs one page outside it (remote access error); file unchanged")
    }
}
