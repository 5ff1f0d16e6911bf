import DaxshareClient
import DaxshareWire
import Foundation
import Testing

/// Issue 16: daxshared run as a service. Started from a configuration file, its Prometheus
/// endpoint scraped with curl, its configuration reloaded with SIGHUP under live sessions.
@Suite(.serialized) struct ServiceTests {
    static let cli = ServerProcess.binDir + "/daxshare"

    static let config = """
        listen: {LISTEN}
        secret-file: {SECRET}
        secrets:
          ops: {DIR}/ops.secret
        admin-identities: [ops]
        exports:
          - name: data
            path: {EXPORT}
          - name: old
            path: {DIR}/old
        metrics:
          listen: 127.0.0.1:0
        log:
          level: info
          format: json
        """

    func start(_ name: String, port: UInt16, config: String = config, environment: [String: String] = [:]) throws
        -> (ServerProcess, metrics: String)
    {
        let dir = NSTemporaryDirectory() + "daxshare-it-\(name)-\(getpid())"
        for sub in ["old", "new"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        // The administrator's own secret: an identity in an access rule needs one.
        _ = FileManager.default.createFile(
            atPath: dir + "/ops.secret", contents: Data("the operator's secret, 32 bytes!".utf8), attributes: [.posixPermissions: 0o600])
        let server = try ServerProcess(name: name, port: port, configFile: config, environment: environment)
        let line = try server.readLine(timeout: 10)
        guard line.hasPrefix("daxshared: metrics on "), let url = line.split(separator: " ").last else {
            throw TestbedError.missing("the metrics line, got '\(line)'")
        }
        return (server, String(url))
    }

    /// `curl` on the endpoint, as Prometheus would scrape it: samples by name (with labels).
    func scrape(_ url: String) throws -> [String: Double] {
        let r = try run("/usr/bin/curl", ["-sf", url])
        #expect(r.status == 0, "curl \(url): \(r.err)")
        var samples: [String: Double] = [:]
        for line in r.out.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let v = Double(parts[1]) { samples[String(parts[0])] = v }
        }
        return samples
    }

    func daxshare(_ server: ServerProcess, _ args: String..., secretFile: String? = nil) throws -> (status: Int32, out: String, err: String) {
        try run(Self.cli, [args[0], "--secret-file", secretFile ?? server.secretFile] + args.dropFirst())
    }

    func opsSecret(_ name: String) -> String { NSTemporaryDirectory() + "daxshare-it-\(name)-\(getpid())/ops.secret" }

    @Test func startsFromAConfigFileAndItsCountersMoveWithAPut() async throws {
        let (server, metrics) = try start("service-metrics", port: 5760)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let before = try scrape(metrics)
        #expect(before["daxshare_sessions"] == 0)
        #expect(before["daxshare_layouts_granted_total"] == 0)

        let local = try randomTestFile(4 << 20, prefix: "daxshare-service")
        let put = try daxshare(server, "put", local, try server.url + "/put.bin")
        #expect(put.status == 0, "put: \(put.err)")
        let after = try scrape(metrics)
        // The put moved its 4 MiB one way or the other, in a session of its own.
        let moved = { (s: [String: Double]) in
            (s["daxshare_bytes_written_two_sided_total"] ?? 0) + (s["daxshare_bytes_layout_granted_total"] ?? 0)
        }
        #expect(moved(after) - moved(before) >= Double(4 << 20), "before \(before), after \(after)")
        #expect(after["daxshare_sessions"] == 0)  // the put's session ended
        #expect(after["daxshare_open_files"] == 0)
        // The log is JSON, one object per line.
        let line = try #require(server.log.split(separator: "\n").first { $0.contains("listening on") })
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(object?["level"] as? String == "info" && object?["label"] as? String == "daxshared")
    }

    @Test func aReloadThatAddsAndRemovesExportsKeepsAnUnrelatedSession() async throws {
        let (server, metrics) = try start("service-reload", port: 5761)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let host = try Testbed.address
        let secret = try SessionSecret(contentsOf: server.secretFile)
        let unrelated = try await ClientSession.connect(host: host, port: server.port, export: "data", secret: secret)
        let onOld = try await ClientSession.connect(host: host, port: server.port, export: "old", secret: secret)
        let first = Array(repeating: UInt8(1), count: 1 << 20)
        let file = try await unrelated.open("kept.bin", flags: [.read, .write, .create])
        try await file.write(at: 0, first)
        try await file.flush()
        let oldFile = try await onOld.open("gone.bin", flags: [.read, .write, .create])

        // The administrator removes "old" and adds "new", then reloads.
        let text = try String(contentsOfFile: server.configPath, encoding: .utf8).replacingOccurrences(of: "name: old", with: "name: new")
            .replacingOccurrences(of: "/old", with: "/new")
        try text.write(toFile: server.configPath, atomically: true, encoding: .utf8)
        server.hangUp()
        #expect(await eventually(20) { (try? scrape(metrics)["daxshare_config_reloads_total"]) == 1 }, "log:\n\(server.log)")
        #expect(server.log.contains("configuration reloaded: exports added new, removed old"))

        // The unrelated session goes on, same connection, no new session set-up.
        let second = Array(repeating: UInt8(2), count: 1 << 20)
        try await file.write(at: UInt64(first.count), second)
        try await file.flush()
        #expect(try await file.read(at: 0, count: 2 << 20) == first + second)
        let again = try await unrelated.open("after-reload.bin", flags: [.read, .write, .create])
        try await again.write(at: 0, second)
        try await again.close()
        // The session on the removed export is told so, and stays connected.
        do {
            try await oldFile.write(at: 0, first)
            Issue.record("a write through a removed export succeeded")
        } catch {
            #expect(error.status == .exportRemoved, "\(error)")
        }
        #expect(try await onOld.echo([7]) == [7])
        let scraped = try scrape(metrics)
        #expect(scraped["daxshare_sessions"] == 2)
        // Per-client gauges by identity, labelled only with identities the configuration names:
        // these two sessions' identity is not one, so they count as "other".
        #expect(scraped[#"daxshare_identity_sessions{identity="other"}"#] == 2, "\(scraped)")
        #expect(scraped[#"daxshare_identity_sessions{identity="ops"}"#] == 0)  // named by the configuration
        #expect((scraped[#"daxshare_identity_open_files{identity="other"}"#] ?? 0) >= 2)
        #expect(scraped["daxshare_files_opened_total"].map { $0 >= 3 } == true)
        // And the new export serves a new client.
        let local = try randomTestFile(1 << 20, prefix: "daxshare-service")
        let url = "daxshare://\(host):\(server.port)/new/n.bin"
        #expect(try daxshare(server, "put", local, url).status == 0)
        #expect(FileManager.default.fileExists(atPath: NSTemporaryDirectory() + "daxshare-it-service-reload-\(getpid())/new/n.bin"))
        await onOld.close()
        try await file.close()
        await unrelated.close()
    }

    /// `daxshare stat --server --clients --json` as an administrator, while a `daxshare put`
    /// runs: the put's session is listed with the layout it holds.
    @Test func statClientsShowsAPutHoldingItsLayout() async throws {
        let (server, _) = try start("service-clients", port: 5763)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let host = try Testbed.address
        let local = try randomTestFile(256 << 20, prefix: "daxshare-service")
        defer { try? FileManager.default.removeItem(atPath: local) }
        let put = Process()
        put.executableURL = URL(fileURLWithPath: Self.cli)
        put.arguments = ["put", "--secret-file", server.secretFile, "--identity", "putter", local, try server.url + "/big.bin"]
        put.standardOutput = FileHandle.nullDevice
        try put.run()
        var seen: [String: Any]?
        let clientsURL = "daxshare://ops@\(host):\(server.port)/data"
        while put.isRunning && seen == nil {
            let r = try daxshare(server, "stat", "--server", "--clients", "--json", clientsURL, secretFile: opsSecret("service-clients"))
            #expect(r.status == 0, "stat --clients: \(r.err)")
            let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
            let clients = json?["clients"] as? [[String: Any]] ?? []
            seen = clients.first { ($0["identity"] as? String) == "putter" && !(($0["layouts"] as? [Any]) ?? []).isEmpty }
        }
        put.waitUntilExit()
        #expect(put.terminationStatus == 0)
        let putter = try #require(seen, "the put's session was never listed with a layout")
        let layout = try #require((putter["layouts"] as? [[String: Any]])?.first)
        #expect(layout["file"] as? String == "data:big.bin")
        #expect(layout["mode"] as? String == "rw")
        #expect((layout["length"] as? Int ?? 0) > 0)
        #expect((putter["openFiles"] as? Int ?? 0) >= 1)
        #expect(!(putter["address"] as? String ?? "").isEmpty)

        // Not an administrator: only itself.
        let r = try daxshare(server, "stat", "--server", "--clients", "--json", "daxshare://someone@\(host):\(server.port)/data")
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        let listed = json?["clients"] as? [[String: Any]] ?? []
        #expect(listed.count == 1 && listed.first?["identity"] as? String == "someone", "\(r.out)")
        // And the text table.
        let table = try daxshare(server, "stat", "--server", "--clients", clientsURL, secretFile: opsSecret("service-clients"))
        #expect(table.status == 0 && table.out.hasPrefix("SESSION"), "\(table.out)")
    }

    /// An export made read-only by a reload takes back the RW layouts on it: the holder is
    /// recalled (reason ADMINISTRATIVE) and returns them; its next write is refused READ_ONLY,
    /// and what it wrote before stays.
    @Test func aReloadThatMakesAnExportReadOnlyRecallsItsRWLayouts() async throws {
        let (server, metrics) = try start("service-readonly", port: 5767)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let secret = try SessionSecret(contentsOf: server.secretFile)
        let client = try await ClientSession.connect(host: try Testbed.address, port: server.port, export: "data", secret: secret)
        let file = try await client.open("held.bin", flags: [.read, .write, .create])
        let first = Array(repeating: UInt8(5), count: 1 << 20)
        try await file.write(at: 0, first)
        try await file.flush()
        #expect(try scrape(metrics)["daxshare_layouts_live"] ?? 0 >= 1, "the write took no layout")

        let text = try String(contentsOfFile: server.configPath, encoding: .utf8)
            .replacingOccurrences(of: "    path: \(server.exportDir)\n", with: "    path: \(server.exportDir)\n    read-only: true\n")
        try text.write(toFile: server.configPath, atomically: true, encoding: .utf8)
        server.hangUp()
        #expect(await eventually(20) { (try? scrape(metrics)["daxshare_config_reloads_total"]) == 1 }, "log:\n\(server.log)")
        #expect(await eventually(20) { (try? scrape(metrics)["daxshare_layouts_live"]) == 0 }, "log:\n\(server.log)")
        #expect(server.log.contains("recall (administrative)"))
        #expect(try scrape(metrics)["daxshare_layouts_revoked_total"] == 0)  // returned, not fenced
        do {
            try await file.write(at: 0, Array(repeating: 6, count: 4096))
            Issue.record("a write to a read-only export succeeded")
        } catch {
            #expect(error.status == .readOnly, "\(error)")
        }
        #expect(try await file.read(at: 0, count: first.count) == first)
        try await file.close()
        await client.close()
    }

    /// `listen:` as a list: one server, two addresses (here two ports of the testbed's one
    /// RDMA address), a client served on each.
    @Test func aServerListensOnEveryAddressItIsGiven() async throws {
        let config = Self.config.replacingOccurrences(of: "listen: {LISTEN}", with: "listen: [{LISTEN}, \"{ADDR}:5765\"]")
        let (server, _) = try start("service-listen", port: 5764, config: config)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let host = try Testbed.address
        for port in [5764, 5765] {
            let r = try daxshare(server, "stat", "--server", "daxshare://\(host):\(port)/data")
            #expect(r.status == 0, "port \(port): \(r.err)")
        }
    }

    /// What systemd's Type=notify sees, with a datagram socket standing in for systemd's:
    /// READY=1 and a status once listening, RELOADING=1 then READY=1 around a SIGHUP,
    /// STOPPING=1 at SIGTERM (sd_notify(3)).
    @Test func itTellsSystemdReadyReloadingAndStopping() async throws {
        let path = NSTemporaryDirectory() + "daxshare-notify-\(getpid()).sock"
        let systemd = try NotifyReceiver(path: path)
        let (server, _) = try start("service-notify", port: 5766, environment: ["NOTIFY_SOCKET": path])
        defer { server.stop() }
        let ready = try await systemd.next()
        #expect(ready.hasPrefix("READY=1\n") && ready.contains("STATUS=serving 2 exports on "), "\(ready)")
        server.hangUp()
        let reloading = try await systemd.next()
        #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), "\(reloading)")
        let again = try await systemd.next()
        #expect(again.hasPrefix("READY=1\n"), "\(again)")
        #expect(server.stop() == 0)
        let stopping = try await systemd.next()
        #expect(stopping.hasPrefix("STOPPING=1\n"), "\(stopping)")
    }

    @Test func aReloadOfABadFileChangesNothing() async throws {
        let (server, metrics) = try start("service-badreload", port: 5762)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let good = try String(contentsOfFile: server.configPath, encoding: .utf8)
        try (good + "\nbogus: 1\n").write(toFile: server.configPath, atomically: true, encoding: .utf8)
        server.hangUp()
        #expect(await eventually(20) { (try? scrape(metrics)["daxshare_config_reload_failures_total"]) == 1 }, "log:\n\(server.log)")
        #expect(server.log.contains("unknown key 'bogus'"))
        #expect(try scrape(metrics)["daxshare_config_reloads_total"] == 0)
        let local = try randomTestFile(4096, prefix: "daxshare-service")
        #expect(try daxshare(server, "put", local, try server.url + "/still.bin").status == 0)
    }
}

/// A bound AF_UNIX datagram socket at `path`, standing in for systemd's notify socket.
final class NotifyReceiver {
    private let fd: Int32
    private let path: String

    struct Failure: Error { let call: String; let code: Int32 }

    init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(call: "socket", code: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { close(fd); throw Failure(call: "bind", code: errno) }
    }

    /// The next datagram, waiting up to `timeout` seconds.
    func next(timeout: Double = 20) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n >= 0 { return String(decoding: buffer.prefix(n), as: UTF8.self) }
            guard errno == EAGAIN else { throw Failure(call: "recv", code: errno) }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Failure(call: "recv (no datagram within \(timeout) s)", code: ETIMEDOUT)
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
