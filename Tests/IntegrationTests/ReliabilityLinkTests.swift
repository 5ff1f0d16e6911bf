import DaxshareClient
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// The link goes away for a while (issue 8): `ip link set veth0 down`, then up, under a
/// workload of library clients, half one-sided (layouts) and half two-sided. Clients notice
/// (a failed work request, or an unanswered keepalive), wait for the port, reconnect,
/// authenticate again, open their files again and take new layouts; no write acknowledged
/// durable before, during or after the outage is lost, and the device still makes connections
/// afterwards.
///
/// run-vm-suites runs this suite last: it takes the testbed's only RDMA port down.
@Suite(.serialized) struct ReliabilityLinkTests {
    init() { Reliability.prepare() }

    static let recordSize = 16 << 10, records = 48

    struct ClientReport: Sendable {
        var index: Int
        var oneSided: Bool
        var before = 0, after = 0
        var reconnects = 0
        var retried = 0
        var errors: [String] = []
        var model: [[UInt8]?] = Array(repeating: nil, count: ReliabilityLinkTests.records)
        var usageAfter = ""
    }

    /// What the link is doing, as the clients see it.
    final class Phase: @unchecked Sendable {
        enum Value { case before, outage, between, after, stop }
        private let lock = NSLock()
        private var value = Value.before
        var current: Value { lock.withLock { value } }
        func set(_ v: Value) { lock.withLock { value = v } }
    }

    /// The open file of the session it was opened on; opened again on a new session.
    final class OpenFile: @unchecked Sendable {
        private let lock = NSLock()
        private var entry: (session: ClientSession, file: RemoteFile)?
        func file(on session: ClientSession, path: String) async throws(ClientError) -> RemoteFile {
            if let e = lock.withLock({ entry }), e.session === session { return e.file }
            let f = try await session.open(path, flags: [.read, .write, .create])
            lock.withLock { entry = (session, f) }
            return f
        }
    }

    static func client(_ index: Int, host: String, port: UInt16, secret: SessionSecret, phase: Phase) async -> ClientReport {
        var report = ClientReport(index: index, oneSided: index % 2 == 0)
        var config = ClientConfiguration()
        config.useLayouts = report.oneSided
        config.identity = "link-\(index)"
        config.layouts.window = 1 << 20
        // Notice a silent loss within seconds, not the protocol's default 2 minutes.
        config.transport.keepaliveInterval = .seconds(1)
        config.transport.keepaliveTimeout = .seconds(3)
        var policy = ReconnectPolicy()
        policy.giveUpAfter = .seconds(90)
        let session = ReconnectingSession(host: host, port: port, export: "data", secret: secret, config: config, policy: policy)
        let open = OpenFile()
        let path = "link-\(index).bin"
        var rng = SeededGenerator(seed: 0x11A4 &+ UInt64(index))
        while true {
            let now = phase.current
            if now == .stop { break }
            let record = Int(rng.next() % UInt64(records))
            let data = seededBytes(recordSize, seed: rng.next())
            var attempts = 0
            do {
                try await session.run { (s: ClientSession) async throws(ClientError) in
                    attempts += 1
                    let file = try await open.file(on: s, path: path)
                    try await file.write(at: UInt64(record * recordSize), data)
                    try await file.flush()
                }
                // Acknowledged durable: from here these bytes must survive.
                report.model[record] = data
                if now == .before { report.before += 1 } else if phase.current == .after { report.after += 1 }
                report.retried += attempts - 1
            } catch {
                // Not acknowledged: part of it may have landed, so the record is undefined now.
                report.model[record] = nil
                report.errors.append("record \(record): \(error)")
                break
            }
        }
        report.reconnects = session.reconnects
        if let s = try? await session.session(), let f = try? await open.file(on: s, path: path) {
            report.usageAfter = "\(f.usage)"
            try? await f.close()
        }
        await session.close()
        return report
    }

    @Test(.timeLimit(.minutes(10))) func clientsReconnectAfterTheLinkComesBackAndLoseNothing() async throws {
        // At full scale (`make reliability`): more clients and three outages in a row.
        let clients = Reliability.scale > 1 ? 8 : 4
        let outages = Reliability.scale > 1 ? 3 : 1
        let outage: Duration = .seconds(6)
        let server = try ServerProcess(name: "rel-link", port: 5701, arguments: ["--recall-deadline-ms", "5000"])
        defer { _ = stopBounded(server) }
        let host = try Testbed.address
        let secret = try SessionSecret(contentsOf: server.secretFile)
        let phase = Phase()

        let workload = Task {
            await withTaskGroup(of: ClientReport.self) { group in
                for i in 0..<clients {
                    group.addTask { await Self.client(i, host: host, port: server.port, secret: secret, phase: phase) }
                }
                var all: [ClientReport] = []
                for await r in group { all.append(r) }
                return all.sorted { $0.index < $1.index }
            }
        }
        // Let every client get going, then take the link away.
        try await Task.sleep(for: .seconds(5))
        let layoutsBefore = try await serverCounters(server)["layouts_granted"] ?? 0
        for n in 1...outages {
            phase.set(.outage)
            try link("down")
            try await Task.sleep(for: outage)
            try link("up")
            if n < outages {
                // Back for a while between outages, so clients reconnect before the next one.
                phase.set(.between)
                try await Task.sleep(for: .seconds(15))
            }
        }
        let upAt = ContinuousClock.now
        phase.set(.after)
        // Carry on for a while after the link is back: long enough to reconnect and write more.
        try await Task.sleep(for: .seconds(20))
        phase.set(.stop)
        let reports = try await withDeadline(180, "the clients' end") { await workload.value }

        // Every write acknowledged durable is on the server's pmem, byte for byte.
        var lost: [String] = []
        for r in reports {
            let data = (try? Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/link-\(r.index).bin"))).map(Array.init) ?? []
            for (i, want) in r.model.enumerated() {
                guard let want else { continue }
                let range = (i * Self.recordSize)..<((i + 1) * Self.recordSize)
                if data.count < range.upperBound || Array(data[range]) != want {
                    lost.append("client \(r.index) (\(r.oneSided ? "layouts" : "two-sided")): record \(i)")
                }
            }
        }
        let errors = reports.flatMap { r in r.errors.map { "client \(r.index): \($0)" } }
        #expect(lost.isEmpty, "acknowledged records lost:\n\(lost.joined(separator: "\n"))")
        #expect(errors.isEmpty, "client errors:\n\(errors.joined(separator: "\n"))")
        #expect(reports.allSatisfy { $0.before > 0 && $0.after > 0 },
                "every client wrote before and after the outage: \(reports.map { ($0.before, $0.after) })")
        #expect(reports.allSatisfy { $0.reconnects >= outages }, "every client reconnected after each outage: \(reports.map(\.reconnects))")
        #expect(server.process.isRunning)

        // The layout clients took new layouts on their new sessions and moved bytes one-sided.
        let counters = try await serverCounters(server)
        #expect((counters["layouts_granted"] ?? 0) > layoutsBefore, "layouts granted after the outage: \(counters)")
        for r in reports where r.oneSided {
            #expect(r.usageAfter.contains("one-sided"), "client \(r.index) after reconnecting: \(r.usageAfter)")
        }

        // The device still makes connections (no CM message was sent while the port was down),
        // and what the dead sessions held is released.
        let probe = try await ClientSession.connect(host: host, port: server.port, export: "data", secret: secret)
        #expect(try await probe.echo([1, 2, 3]) == [1, 2, 3])
        let clean = await eventually(60) {
            let c = try await serverCounters(server)
            return c["layouts_live"] == 0 && c["mrs_live"] == 0 && c["open_files"] == 0
        }
        let after = try await serverCounters(server)
        #expect(clean, "counters after the clients left: \(after)")
        // The device told the server (ibv_get_async_event), and the server read and logged it.
        #expect(server.log.contains("port error") && server.log.contains("port active"), "log:\n\(server.log.suffix(8000))")
        await probe.close()
        let status = await onThread { stopBounded(server) }
        #expect(status == "exit 0", "SIGTERM after the outage: \(status); log:\n\(server.log.suffix(8000))")

        Reliability.report("link: \(clients) clients, link down \(outages) time(s) for \(outage); \(reports.map(\.before).reduce(0, +)) durable writes before, \(reports.map(\.after).reduce(0, +)) after (within \(ContinuousClock.now - upAt) of the link coming back); reconnects \(reports.map(\.reconnects)); operations run again \(reports.map(\.retried).reduce(0, +)); \(lost.count) records lost; layouts granted \(layoutsBefore) before, \(after["layouts_granted"] ?? 0) at the end")
    }

    /// The verbs layer's part, alone: a connect on a down port fails at once (it would send a
    /// CM request), and a connection closed while the port is down says goodbye to its peer
    /// (DREQ) only once the port is back; afterwards the device still connects.
    @Test(.timeLimit(.minutes(3))) func cmMessagesWaitForThePort() async throws {
        let (listener, server, client) = try await Testbed.connectedPair()
        defer { listener.close() }
        try link("down")
        do {
            defer { _ = try? link("up") }
            #expect(!client.portIsActive)
            await #expect(throws: VerbsError.portDown("rxe0")) {
                _ = try await Connection.connect(host: try Testbed.address, port: listener.address.port)
            }
            client.close()
            // The DREQ waits: the server side has heard nothing yet.
            try await Task.sleep(for: .seconds(1))
            #expect(server.isConnected, "a disconnect reached the peer while the port was down")
        }
        let heard = try await withDeadline(20, "the deferred disconnect") { await server.waitUntilDisconnected(); return true }
        #expect(heard)
        server.close()
        // The device's CM still works: a fresh pair connects and moves a message.
        let (l2, s2, c2) = try await Testbed.connectedPair()
        defer { l2.close(); s2.close(); c2.close() }
        #expect(c2.isConnected && s2.isConnected)
    }

    /// `ip link set veth0 down|up` (the testbed's rxe runs on veth0; tests run as root there).
    private func link(_ state: String) throws {
        let r = try run("/usr/sbin/ip", ["link", "set", "veth0", state])
        guard r.status == 0 else { throw TestbedError.missing("ip link set veth0 \(state): \(r.err)") }
    }
}
