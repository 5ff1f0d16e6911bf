import ArgumentParser
import DaxshareBench
import DaxshareClient
import DaxshareVerbs
import Foundation

/// `daxshare-bench data`: throughput and latency of the data paths against raw verbs.
struct DataPathCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Data path: one-sided and two-sided I/O against raw RDMA baselines taken in the same run.",
        discussion: """
            Modes: raw (RDMA READ/WRITE with the verbs layer on a plain registered buffer), raw-odp (the same
            on an ODP region over a MAP_SYNC file on the fsdax mount), two-sided and one-sided (through the
            client library against a daxshared this process starts, or --url), perftest (ib_read_bw /
            ib_write_bw -R --odp, when installed). Each row's ratio is to its baseline at the same point in
            this run: raw for two-sided, raw-odp for one-sided. Figures are medians of --repeat runs.
            MB/s means 10^6 bytes/s. Writes through the client modes end each repeat with FLUSH (one-sided:
            LAYOUTCOMMIT + FLUSH) inside the measured time.

            Example (inside the testbed VM):
              daxshare-bench data --sizes 4K,64K,1M,4M --qd 1 --duration 2 --repeat 3 --svg out.svg
            """)

    @Option(help: "Comma-separated modes: raw, raw-odp, two-sided, one-sided (commits by LAYOUTCOMMIT), one-sided+flush (by RDMA FLUSH), perftest.")
    var modes = "raw,raw-odp,two-sided,one-sided,one-sided+flush,perftest"
    @Option(help: "Comma-separated operations: read, write.")
    var ops = "read,write"
    @Option(help: "Comma-separated access patterns: seq, rand.")
    var patterns = "seq"
    @Option(help: "Comma-separated I/O sizes (4K, 64K, 1M, 4M...).")
    var sizes = "4K,64K,1M,4M"
    @Option(help: "Comma-separated queue depths: I/Os each client keeps in flight.")
    var qd = "1"
    @Option(help: "Comma-separated client counts (connections, or sessions).")
    var clients = "1"
    @Option(help: "Seconds measured per point and repeat.")
    var duration = 2.0
    @Option(help: "Seconds run before measuring, per point and repeat.")
    var warmup = 0.5
    @Option(help: "Repeats per point; figures are their medians.")
    var `repeat` = 3
    @Option(help: "Bytes of target per client (offsets fall inside it).")
    var span = "32M"
    @Option(help: "RDMA address to listen and connect on (default $DAXSHARE_TEST_ADDR).")
    var address: String?
    @Option(help: "Directory on an fsdax mount for raw-odp and the server's export (default $DAXSHARE_PMEM).")
    var pmem: String?
    @Option(help: "Use a running server, daxshare://HOST[:PORT]/EXPORT, instead of starting one.")
    var url: String?
    @Option(help: "The secret file of the --url server.")
    var secretFile: String?
    @Option(help: "The --url server's pid, for its CPU time.")
    var serverPid: Int32?
    @Option(help: "The daxshared binary (default: next to this one).")
    var daxshared: String?
    @Option(help: "Port for the started daxshared.")
    var port: UInt16 = 5446
    @Option(help: "RDMA device for perftest (default: the first one).")
    var device: String?
    @Flag(help: "Busy-poll completions, as perftest does: the client's event loop spins on its completion queues while connections are open (a core), instead of sleeping until the completion channel signals.")
    var poll = false

    @Flag(help: "Make every write durable before it completes (write-through): one-sided commits each write by LAYOUTCOMMIT, one-sided+flush by an RDMA FLUSH chained behind its WRITE, two-sided writes WRITE_THROUGH. The commit is then in every write's latency; without it, one commit ends each repeat.")
    var durable = false

    @Flag(help: "Print the rows as JSON on stdout (one object per row) instead of the table.")
    var json = false
    @Option(help: "Also write the JSON rows to this file.")
    var jsonFile: String?
    @Option(help: "Write an SVG plot of throughput against I/O size to this file.")
    var svg: String?
    @Option(help: "A line under the plot's title (machine, kernel, date).")
    var subtitle = ""

    func run() async throws {
        let modeNames = modes.split(separator: ",").map { String($0).lowercased() }
        let known = ["raw", "raw-odp", "two-sided", "one-sided", "one-sided+flush", "perftest"]
        for m in modeNames where !known.contains(m) { throw ValidationError("unknown mode '\(m)' (known: \(known.joined(separator: ", ")))") }
        let opList = try ops.split(separator: ",").map { s in
            guard let o = BenchOp(rawValue: String(s)) else { throw ValidationError("unknown op '\(s)'") }
            return o
        }
        let patternList = try patterns.split(separator: ",").map { s in
            guard let p = AccessPattern(rawValue: String(s)) else { throw ValidationError("unknown pattern '\(s)'") }
            return p
        }
        let sizeList: [Int]
        do { sizeList = try ByteSize.parseList(sizes) } catch { throw ValidationError("\(error)") }
        let qdList = try positiveList(qd, "qd"), clientList = try positiveList(clients, "clients")
        guard duration > 0, warmup >= 0, self.repeat >= 1 else { throw ValidationError("duration, warmup and repeat must be positive") }
        let env = ProcessInfo.processInfo.environment
        guard let address = address ?? env["DAXSHARE_TEST_ADDR"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            throw ValidationError("give --address (the RDMA device's address) or set DAXSHARE_TEST_ADDR")
        }
        let pmemDir = pmem ?? env["DAXSHARE_PMEM"].flatMap { $0.isEmpty ? nil : $0 }
        let maxSize = sizeList.max()!, maxQd = qdList.max()!, maxClients = clientList.max()!
        var spanBytes: Int
        do { spanBytes = try ByteSize.parse(span) } catch { throw ValidationError("\(error)") }
        spanBytes = max(spanBytes, maxSize * maxQd)
        spanBytes = (spanBytes + 4095) / 4096 * 4096

        // The modes, in a fixed order: baselines first.
        var server: ServerHandle?
        var active: [any BenchMode] = []
        var perftest: PerftestRunner?
        func note(_ s: String) { FileHandle.standardError.write(Data(("daxshare-bench: " + s + "\n").utf8)) }
        // Every mode's connections and I/O tasks share one loop: completions resume their task
        // on the thread that polled them.
        let loop = poll ? EventLoop(name: "bench-poll", waiting: .busyPolling) : EventLoop.shared
        note(Device.flushSupportDescription)
        if modeNames.contains("raw") { active.append(RawMode(onDemand: false, address: address, pmemDirectory: pmemDir, loop: loop)) }
        if modeNames.contains("raw-odp") { active.append(RawMode(onDemand: true, address: address, pmemDirectory: pmemDir, loop: loop)) }
        if modeNames.contains("two-sided") || modeNames.contains("one-sided") || modeNames.contains("one-sided+flush") {
            do {
                server = try startServer(address: address, pmemDir: pmemDir)
            } catch {
                note("client modes skipped: \(error)")
            }
            if let server {
                var clientModes: [ClientMode] = []
                if modeNames.contains("two-sided") { clientModes.append(ClientMode.twoSided(server: server, loop: loop)) }
                if modeNames.contains("one-sided") { clientModes.append(ClientMode.oneSided(server: server, loop: loop)) }
                if modeNames.contains("one-sided+flush") { clientModes.append(ClientMode.oneSidedFlush(server: server, loop: loop)) }
                for m in clientModes { m.durable = durable }
                active += clientModes as [any BenchMode]
            }
        }
        if modeNames.contains("perftest") {
            if PerftestRunner.isInstalled() {
                perftest = PerftestRunner(device: device ?? Device.names().first ?? "rxe0", address: address)
            } else {
                note("perftest (ib_read_bw, ib_write_bw, timeout) not installed: no perftest rows")
            }
        }
        var ready: [any BenchMode] = []
        for mode in active {
            note("setting up \(mode.name) (\(maxClients) client(s), qd \(maxQd), \(ByteSize.format(maxSize)) I/O, span \(ByteSize.format(spanBytes)))")
            do {
                try await mode.setUp(clients: maxClients, qd: maxQd, maxSize: maxSize, span: spanBytes)
                ready.append(mode)
            } catch {
                note("\(mode.name) skipped: set-up failed: \(error)")
                await mode.tearDown()
            }
        }

        // Points in order; at each point the modes take turns per repeat (rotating who goes
        // first), so a baseline and what is judged by it are measured close together in time.
        var points: [PointKey] = []
        for c in clientList { for q in qdList { for o in opList { for p in patternList { for s in sizeList {
            points.append(PointKey(op: o, pattern: p, size: s, qd: q, clients: c))
        } } } } }
        var rows: [BenchRow] = []
        let started = Date()
        for (i, point) in points.enumerated() {
            var samples: [String: [BenchMeasurement]] = [:]
            let label = "\(point.op.rawValue) \(point.pattern.rawValue) \(ByteSize.format(point.size)) qd\(point.qd) x\(point.clients)"
            for r in 0..<self.repeat {
                let order = ready.indices.map { ready[($0 + r) % ready.count] }
                for mode in order {
                    let spec = LoadSpec(op: point.op, pattern: point.pattern, size: point.size, qd: point.qd, span: spanBytes,
                                        warmup: warmup, duration: duration, seed: UInt64(r + 1))
                    do {
                        let m = try await measure(mode, spec: spec, clients: point.clients, loop: loop)
                        samples[mode.name, default: []].append(m)
                        note("[\(i + 1)/\(points.count)] \(label) rep \(r + 1)/\(self.repeat) \(mode.name): \(TableFormat.fixed(m.mbps, 2)) MB/s, p50 \(m.latency.map { TableFormat.fixed($0.p50, 1) } ?? "-") us\(m.note.map { " (\($0))" } ?? "") [\(Int(Date().timeIntervalSince(started))) s]")
                    } catch {
                        note("[\(i + 1)/\(points.count)] \(label) \(mode.name) failed: \(error)")
                    }
                }
                if var pt = perftest, point.clients == 1, point.pattern == .seq {
                    let (m, log) = pt.measure(op: point.op, size: point.size, seconds: max(1, Int(duration.rounded())), txDepth: point.qd)
                    perftest = pt
                    if !log.isEmpty { note(log.trimmingCharacters(in: .whitespacesAndNewlines)) }
                    if let m {
                        samples["perftest", default: []].append(m)
                        note("[\(i + 1)/\(points.count)] \(label) rep \(r + 1)/\(self.repeat) perftest: \(TableFormat.fixed(m.mbps, 2)) MB/s")
                    }
                }
            }
            let names = ready.map(\.name) + (samples["perftest"] != nil ? ["perftest"] : [])
            for name in names {
                guard let ms = samples[name], !ms.isEmpty else { continue }
                let baseline = ready.first { $0.name == name }?.baseline
                rows.append(BenchRow(mode: name, point: point, baseline: baseline, repeats: ms))
            }
        }
        rows = Baselines.applyRatios(rows)

        for mode in ready { await mode.tearDown() }
        server?.stop()

        let jsonText = JSONRows.render(rows)
        if let jsonFile { try jsonText.write(toFile: jsonFile, atomically: true, encoding: .utf8) }
        if let svg { try SVGPlot.render(rows, subtitle: subtitle).write(toFile: svg, atomically: true, encoding: .utf8) }
        if json { print(jsonText, terminator: "") } else { print(TableFormat.render(rows), terminator: "") }
        if rows.isEmpty { throw ExitCode(1) }
    }

    /// One repeat of one mode at one point, with the server's CPU time around it.
    /// Counts allocations per I/O when the interposer is preloaded (`make bench` does).
    static let allocationCounter = InterposerAllocationCounter.ifLoaded()

    func measure(_ mode: any BenchMode, spec: LoadSpec, clients: Int, loop: EventLoop) async throws -> BenchMeasurement {
        let cpu0 = mode.serverCPUSeconds()
        let t0 = monotonicNanoseconds()
        let result = try await LoadGenerator.run(targets: mode.targets(clients: clients), spec: spec, executor: loop,
                                                allocations: Self.allocationCounter)
        let f0 = monotonicNanoseconds()
        let note = try await mode.finishRepeat(op: spec.op, clients: clients)
        let finish = Double(monotonicNanoseconds() - f0) / 1e9
        let cpu1 = mode.serverCPUSeconds()
        var m = result.measurement
        m.seconds += finish
        m.note = note
        if let cpu0, let cpu1 {
            m.serverCPUSeconds = max(0, cpu1 - cpu0)
            m.serverSpanBytes = result.allBytes
            m.serverSpanSeconds = Double(monotonicNanoseconds() - t0) / 1e9
        }
        return m
    }

    func startServer(address: String, pmemDir: String?) throws -> ServerHandle {
        if let url {
            let u = try DaxshareURL(url)
            guard let secretFile else { throw BenchFailure("--url needs --secret-file") }
            return ServerHandle(host: u.host, port: u.port, export: u.export, secretFile: secretFile, pid: serverPid)
        }
        guard let pmemDir else { throw BenchFailure("no --pmem (or DAXSHARE_PMEM) for the server's export") }
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        return try ServerHandle(binary: daxshared ?? here + "/daxshared", host: address, port: port, pmemDirectory: pmemDir)
    }

    func positiveList(_ text: String, _ what: String) throws -> [Int] {
        let values = text.split(separator: ",").compactMap { Int($0) }
        guard !values.isEmpty, values.count == text.split(separator: ",").count, values.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--\(what) takes positive integers separated by commas")
        }
        return values
    }
}
