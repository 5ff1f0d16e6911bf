import ArgumentParser
import DaxshareBench
import DaxshareClient
import DaxshareVerbs
import DaxshareWire
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `daxshare-bench control`: the layout control path, against daxshared processes it starts.
///
/// - LAYOUTGET (RW, then LAYOUTRETURN) with and without the server's prefetch (`--no-layout-prefetch`).
/// - LAYOUTCOMMIT after a one-sided write of the size (pmem_persist of the range plus the size update).
/// - Recall: a local process's open(O_RDWR) of a file on which N clients hold READ layouts, from
///   exec to the opener's exit, against the same open of a file nobody holds a layout on.
/// - Fence: the same open with one client that ignores recalls: the server's deadline, then on.
struct ControlPathCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Control path: LAYOUTGET, LAYOUTCOMMIT, recall and fence latencies.")

    @Option(help: "RDMA address to listen and connect on (default $DAXSHARE_TEST_ADDR).")
    var address: String?
    @Option(help: "Directory on an fsdax mount for the servers' exports (default $DAXSHARE_PMEM).")
    var pmem: String?
    @Option(help: "The daxshared binary (default: next to this one).")
    var daxshared: String?
    @Option(help: "First port for the started servers (two are used).")
    var port: UInt16 = 5456
    @Option(help: "Samples per LAYOUTGET/LAYOUTCOMMIT figure.")
    var samples = 40
    @Option(help: "Local opens per recall figure.")
    var recalls = 8
    @Option(help: "Local opens for the fence figure (each with a fresh silent client).")
    var fences = 2
    @Option(help: "Comma-separated numbers of clients holding layouts during a recall.")
    var clients = "1,4,16"
    @Option(help: "Comma-separated layout sizes for LAYOUTGET and LAYOUTCOMMIT.")
    var sizes = "64K,1M"
    @Option(help: "The servers' recall deadline in ms (what a fence waits).")
    var deadlineMs = 1000
    @Flag(help: "Print the rows as JSON instead of the table.")
    var json = false
    @Option(help: "Also write the JSON rows to this file.")
    var jsonFile: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let address = address ?? env["DAXSHARE_TEST_ADDR"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            throw ValidationError("give --address (the RDMA device's address) or set DAXSHARE_TEST_ADDR")
        }
        guard let pmemDir = pmem ?? env["DAXSHARE_PMEM"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            throw ValidationError("give --pmem (a directory on an fsdax mount) or set DAXSHARE_PMEM")
        }
        let sizeList: [Int]
        do { sizeList = try ByteSize.parseList(sizes) } catch { throw ValidationError("\(error)") }
        let clientList = clients.split(separator: ",").compactMap { Int($0) }
        guard !clientList.isEmpty, clientList.allSatisfy({ $0 > 0 }), samples > 0, recalls > 0, fences >= 0 else {
            throw ValidationError("--clients, --samples and --recalls take positive numbers")
        }
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let binary = daxshared ?? here + "/daxshared"
        let deadline = ["--recall-deadline-ms", "\(deadlineMs)"]
        let server = try ServerHandle(binary: binary, host: address, port: port, pmemDirectory: pmemDir, extraArguments: deadline)
        let noPrefetch = try ServerHandle(binary: binary, host: address, port: port + 1, pmemDirectory: pmemDir,
                                          extraArguments: deadline + ["--no-layout-prefetch"])
        defer { server.stop(); noPrefetch.stop() }

        var rows: [ControlRow] = []
        func add(_ row: ControlRow) {
            rows.append(row)
            note("\(row.key), \(row.clients) client(s): p50 \(TableFormat.fixed(row.p50_us / 1000, 3)) ms over \(row.samples)")
        }
        for size in sizeList {
            add(try await layoutGet(server, size: size, variant: "prefetch \(ByteSize.format(size))"))
            add(try await layoutGet(noPrefetch, size: size, variant: "no-prefetch \(ByteSize.format(size))",
                                    baseline: "layoutget prefetch \(ByteSize.format(size))"))
        }
        for size in sizeList {
            if let row = try await layoutCommit(server, size: size, flush: false) { add(row) }
            // Where the server offers RDMA FLUSH (PROTOCOL.md §5.8): the same commit by FLUSH.
            if let row = try await layoutCommit(server, size: size, flush: true) { add(row) }
        }
        add(ControlRow(figure: "local-open", variant: "no layouts", clients: 0,
                       microseconds: try (0..<max(recalls, 5)).map { _ in try localOpen(server.exportDirectory! + "/ctl-baseline.dat", create: true) }))
        for n in clientList { add(try await recall(server, clients: n)) }
        if fences > 0 { add(try await fence(server)) }
        rows = ControlRow.applyRatios(rows)

        let jsonText = JSONRows.render(rows)
        if let jsonFile { try jsonText.write(toFile: jsonFile, atomically: true, encoding: .utf8) }
        print(json ? jsonText : ControlRow.table(rows), terminator: "")
    }

    func note(_ s: String) { FileHandle.standardError.write(Data(("daxshare-bench: " + s + "\n").utf8)) }

    func connect(_ server: ServerHandle, _ adjust: (inout ClientConfiguration) -> Void = { _ in }) async throws -> ClientSession {
        var config = ClientConfiguration()
        adjust(&config)
        return try await ClientSession.connect(host: server.host, port: server.port, export: server.export,
                                               secret: try SessionSecret(contentsOf: server.secretFile), config: config)
    }

    /// LAYOUTGET (RW over `size` bytes of a file that long) until the reply, then LAYOUTRETURN.
    func layoutGet(_ server: ServerHandle, size: Int, variant: String, baseline: String? = nil) async throws -> ControlRow {
        // Layouts on (the server grants them only to a client that agreed LAYOUTS and CALLBACKS,
        // PROTOCOL.md §4.3); the engine reads and writes nothing here, so it takes none itself.
        let session = try await connect(server)
        let file = try await session.open("ctl-layoutget-\(size).dat", flags: [.read, .write, .create, .truncate])
        _ = try await file.setSize(UInt64(size))
        var us: [Double] = []
        for i in 0..<(samples + 3) {
            let t0 = monotonicNanoseconds()
            let layout = try await session.layoutGet(file, .readWrite, offset: 0, length: UInt64(size))
            let t1 = monotonicNanoseconds()
            try await session.layoutReturn(layout.stateid)
            if i >= 3 { us.append(Double(t1 - t0) / 1000) }  // the first ones map the file
        }
        try await file.close()
        await session.close()
        return ControlRow(figure: "layoutget", variant: variant, clients: 1, microseconds: us, baseline: baseline)
    }

    /// A one-sided write of `size` bytes through the client's layout engine, then its commit
    /// (`RemoteFile.commit`), timed until it is durable: LAYOUTCOMMIT until its reply
    /// (`layoutcommit`), or with `flush` RDMA FLUSH until its completion (`flush-commit`, held
    /// against `layoutcommit` of the size; nil where FLUSH was not agreed). Each sample rewrites
    /// the same bytes, inside the size after the first: no size to commit.
    func layoutCommit(_ server: ServerHandle, size: Int, flush: Bool) async throws -> ControlRow? {
        let session = try await connect(server) { $0.layouts.flushCommits = flush }
        if flush && !session.server.capabilities.contains(.rdmaFlush) {
            note("flush-commit skipped: RDMA FLUSH not agreed (\(Device.flushSupportDescription))")
            await session.close()
            return nil
        }
        let file = try await session.open("ctl-commit-\(size).dat", flags: [.read, .write, .create, .truncate])
        file.expectWrites(upTo: UInt64(size))
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var us: [Double] = []
        for i in 0..<(samples + 2) {
            try await file.write(at: 0, data)
            let t0 = monotonicNanoseconds()
            try await file.commit()
            if i >= 2 { us.append(Double(monotonicNanoseconds() - t0) / 1000) }
        }
        let usage = file.usage
        try await file.close()
        await session.close()
        var notes: [String] = []
        if usage.twoSidedBytes > 0 { notes.append("\(usage.twoSidedBytes) bytes went two-sided") }
        if flush && usage.flushCommits < samples { notes.append("only \(usage.flushCommits) commits by FLUSH") }
        return ControlRow(figure: flush ? "flush-commit" : "layoutcommit", variant: ByteSize.format(size), clients: 1,
                          microseconds: us, baseline: flush ? "layoutcommit \(ByteSize.format(size))" : nil,
                          note: notes.isEmpty ? nil : notes.joined(separator: "; "))
    }

    /// `clients` sessions hold READ layouts on one file; a local process opens it O_RDWR.
    func recall(_ server: ServerHandle, clients n: Int) async throws -> ControlRow {
        let name = "ctl-recall-\(n).dat"
        let setup = try await connect(server) { $0.useLayouts = false }
        _ = try await setup.truncate(name, to: 1 << 20, create: true)
        var sessions: [ClientSession] = []
        var files: [RemoteFile] = []
        for _ in 0..<n {
            let s = try await connect(server) { $0.layouts.recallBackoffMs = 100 }
            sessions.append(s)
            files.append(try await s.open(name, flags: [.read]))
        }
        var us: [Double] = []
        var regrantFailures = 0
        let before = try await counters(setup)
        for _ in 0..<recalls {
            if try await !holdLayouts(files, setup: setup, count: n) { regrantFailures += 1 }
            us.append(try localOpen(server.exportDirectory! + "/" + name))
        }
        let after = try await counters(setup)
        let recalled = files.reduce(0) { $0 + $1.usage.recalls }
        for f in files { try? await f.close() }
        for s in sessions { await s.close() }
        await setup.close()
        var notes = ["server: \(after["layouts_recalled", default: 0] - before["layouts_recalled", default: 0]) recalled, "
                     + "\(after["layouts_revoked", default: 0] - before["layouts_revoked", default: 0]) revoked; clients answered \(recalled)"]
        if regrantFailures > 0 { notes.append("\(regrantFailures) opens with fewer than \(n) layouts held") }
        return ControlRow(figure: "recall", variant: "local open", clients: n, microseconds: us,
                          baseline: "local-open no layouts", note: notes.joined(separator: "; "))
    }

    /// One client that ignores recalls holds a READ layout: the opener waits for the fence.
    func fence(_ server: ServerHandle) async throws -> ControlRow {
        let name = "ctl-fence.dat"
        let setup = try await connect(server) { $0.useLayouts = false }
        _ = try await setup.truncate(name, to: 1 << 20, create: true)
        var us: [Double] = []
        let before = try await counters(setup)
        for _ in 0..<fences {
            let s = try await connect(server) { $0.layouts.ignoreRecallsForTesting = true }
            let f = try await s.open(name, flags: [.read])
            _ = try await holdLayouts([f], setup: setup, count: 1)
            us.append(try localOpen(server.exportDirectory! + "/" + name))
            await s.close()
        }
        let revoked = try await counters(setup)["layouts_revoked", default: 0] - before["layouts_revoked", default: 0]
        await setup.close()
        return ControlRow(figure: "fence", variant: "deadline \(deadlineMs) ms", clients: 1, microseconds: us,
                          baseline: "local-open no layouts", note: "server: \(revoked) revoked")
    }

    func counters(_ session: ClientSession) async throws -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for c in try await session.serverStats() { out[c.name] = c.value }
        return out
    }

    /// Reads through each file until the server counts `count` live layouts (the clients
    /// re-acquire them after a recall, once their back-off has passed). False after 20 s.
    func holdLayouts(_ files: [RemoteFile], setup: ClientSession, count: Int) async throws -> Bool {
        let started = monotonicNanoseconds()
        while monotonicNanoseconds() - started < 20_000_000_000 {
            for f in files { _ = try await f.read(at: 0, count: 4096) }
            let live = try await setup.serverStats().first { $0.name == "layouts_live" }?.value ?? 0
            if live >= count { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// `sh -c 'exec 3<>FILE'` as a separate process, from spawn to exit, in microseconds.
    func localOpen(_ path: String, create: Bool = false) throws -> Double {
        if create, !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: Data(count: 4096))
        }
        let t0 = monotonicNanoseconds()
        let status = ChildProcess.wait(try ChildProcess.spawn(["/bin/sh", "-c", "exec 3<>\"$0\"", path]))
        let t1 = monotonicNanoseconds()
        guard status == 0 else { throw BenchFailure("the local open of \(path) failed (status \(status))") }
        return Double(t1 - t0) / 1000
    }
}
