import DaxshareClient
import DaxshareTransport
import DaxshareWire
import Foundation
import Testing

/// A bounded soak (issue 8): library clients, half one-sided (layouts) and half two-sided,
/// write, make durable (FLUSH, with LAYOUTCOMMIT first on the layout path) and read back
/// their own files while a storm task recalls their layouts: local processes open the files
/// O_RDWR (lease breaks) and another client truncates their tails (SET_SIZE). At the end no
/// byte a client was told was durable is lost, and once the clients leave the server holds
/// no layout, memory region or open file.
@Suite(.serialized) struct ReliabilitySoakTests {
    init() { Reliability.prepare() }

    /// Each client owns a file of `fileSize` bytes and writes only below `dataEnd`; the storm
    /// cuts the file back to `cutSize` (recalling every layout that reaches the tail) and grows
    /// it again, so the recalls are real but the client's bytes are never touched.
    static let fileSize = 256 << 10, dataEnd = 192 << 10, cutSize = 240 << 10

    struct ClientReport: Sendable {
        var index: Int
        var oneSided: Bool
        var writes = 0, bytesAcknowledged = 0, reads = 0
        var errors: [String] = []
        var model: [UInt8] = []
        /// Ranges of writes that failed and could not be read back: their bytes may or may not
        /// have landed (a connection or server that died mid-write); nothing is promised there.
        var uncertain: [Range<Int>] = []
        var usage = ""
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.withLock { value } }
        func set() { lock.withLock { value = true } }
    }

    /// `exportDir`: where the server's files are, for diagnosing a read that differs.
    static func client(_ index: Int, host: String, port: UInt16, secret: SessionSecret, until end: ContinuousClock.Instant,
                       exportDir: String? = nil) async -> ClientReport {
        var report = ClientReport(index: index, oneSided: index % 2 == 0)
        var config = ClientConfiguration()
        config.useLayouts = report.oneSided
        config.identity = "soak-\(index)"
        config.layouts.window = 1 << 20
        config.layouts.queueDepth = 4
        config.layouts.maxWorkRequest = 256 << 10
        config.bounceBufferBytes = 1 << 20
        var model = [UInt8](repeating: 0, count: dataEnd)
        var rng = SeededGenerator(seed: 0x50A4 &+ UInt64(index))
        do {
            let session = try await ClientSession.connect(host: host, port: port, export: "data", secret: secret, config: config)
            let file = try await session.open("soak-\(index).bin", flags: [.read, .write, .create])
            _ = try await file.setSize(UInt64(fileSize))
            /// Each acknowledged write and the path it took, for diagnosis.
            var history: [(range: Range<Int>, path: String)] = []
            while ContinuousClock.now < end {
                let length = [512, 4096, 8192, 12_288, 65_536][Int(rng.next() % 5)]
                let offset = Int(rng.next() % UInt64(dataEnd - length))
                let data = seededBytes(length, seed: rng.next())
                do {
                    let before = file.usage.twoSidedBytes
                    try await file.write(at: UInt64(offset), data)
                    try await file.flush()
                    // Acknowledged: from here these bytes must survive.
                    model.replaceSubrange(offset..<(offset + length), with: data)
                    history.append((offset..<(offset + length), file.usage.twoSidedBytes > before ? "two-sided" : "one-sided"))
                    report.writes += 1
                    report.bytesAcknowledged += length
                    // A verified read of another range.
                    let at = Int(rng.next() % UInt64(dataEnd - 16_384))
                    let back = try await file.read(at: UInt64(at), count: 16_384)
                    report.reads += 1
                    let want = Array(model[at..<(at + 16_384)])
                    if back != want {
                        let first = zip(back, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                        let differing = zip(back, want).filter { $0 != $1 }.count
                        // Diagnosis: the paths this file's I/O took so far, and whether the same
                        // read, made again at once, sees the acknowledged bytes.
                        let usageThen = "\(file.usage)"
                        let again = try? await file.read(at: UInt64(at), count: 16_384)
                        let onPmem = exportDir.flatMap { dir -> [UInt8]? in
                            guard let h = FileHandle(forReadingAtPath: dir + "/soak-\(index).bin") else { return nil }
                            defer { try? h.close() }
                            try? h.seek(toOffset: UInt64(at))
                            return (try? h.read(upToCount: 16_384)).map { [UInt8]($0) }
                        }
                        let writers = first.map { f in history.enumerated().filter { $0.element.range.contains(at + f) }
                            .map { "write \($0.offset + 1) \($0.element.range) \($0.element.path)" }.joined(separator: ", ") } ?? "-"
                        report.errors.append("read of 16384 at \(at) after write \(report.writes) (\(offset)+\(length)) got \(back.count) bytes, \(differing) differing, first difference at +\(first.map(String.init) ?? "the end") (got \(first.map { String(back[$0]) } ?? "-"), acknowledged \(first.map { String(want[$0]) } ?? "-")); read again: \(again.map { $0 == want ? "matches" : "differs" } ?? "failed"); the file itself: \(onPmem.map { $0 == want ? "matches" : "differs" } ?? "not read"); written by: \(writers); paths so far: \(usageThen)")
                    }
                } catch {
                    // The bytes of a failed write are not acknowledged but may have landed: re-read
                    // the range, unless the connection is gone. A range that cannot be re-read is
                    // uncertain, and the session is done.
                    report.errors.append("write \(report.writes + 1) at \(offset)+\(length): \(error)")
                    let back: [UInt8]? = if case .transport = error { nil } else { try? await file.read(at: UInt64(offset), count: length) }
                    guard let back else {
                        report.uncertain.append(offset..<(offset + length))
                        break
                    }
                    model.replaceSubrange(offset..<(offset + length), with: back)
                }
            }
            report.usage = "\(file.usage)"
            try await file.close()
            await session.close()
        } catch {
            report.errors.append("session: \(error)")
        }
        report.model = model
        return report
    }

    @Test(.timeLimit(.minutes(60))) func clientsUnderRecallStormsLoseNoAcknowledgedByte() async throws {
        let scale = Reliability.scale
        let clients = scale > 1 ? 16 : 8
        let seconds = 40 * min(scale, 10)
        let server = try ServerProcess(name: "rel-soak", port: 5621, arguments: ["--recall-deadline-ms", "10000"])
        defer { _ = stopBounded(server) }
        let host = try Testbed.address
        let secret = try SessionSecret(contentsOf: server.secretFile)
        let end = ContinuousClock.now + .seconds(seconds)
        let started = ContinuousClock.now

        // The storm: every ~2 s a local open of one client's file, or a truncate of its tail
        // and a growth back by another client.
        let stop = Flag()
        let storm = Task { () -> (opens: Int, truncates: Int, problems: [String]) in
            var opens = 0, truncates = 0
            var problems: [String] = []
            var rng = SeededGenerator(seed: 0x5702)
            let truncator = try await ClientSession.connect(host: host, port: server.port, export: "data", secret: secret)
            try await Task.sleep(for: .seconds(3))
            while !stop.isSet {
                let victim = Int(rng.next() % UInt64(clients))
                let path = "soak-\(victim).bin"
                guard FileManager.default.fileExists(atPath: server.exportDir + "/" + path) else {
                    try await Task.sleep(for: .milliseconds(500))
                    continue
                }
                if rng.next() % 2 == 0 {
                    let (opened, took) = await localOpen(server.exportDir + "/" + path, limit: 60)
                    opens += 1
                    if !opened || took > .seconds(12) { problems.append("local open of \(path): opened \(opened), took \(took)") }
                } else {
                    do {
                        _ = try await truncator.truncate(path, to: UInt64(Self.cutSize))
                        _ = try await truncator.truncate(path, to: UInt64(Self.fileSize))
                        truncates += 1
                    } catch {
                        problems.append("truncate of \(path): \(error)")
                    }
                }
                try await Task.sleep(for: .milliseconds(1500 + Int(rng.next() % 1000)))
            }
            await truncator.close()
            return (opens, truncates, problems)
        }

        let reports = await withTaskGroup(of: ClientReport.self) { group in
            for i in 0..<clients {
                group.addTask { await Self.client(i, host: host, port: server.port, secret: secret, until: end, exportDir: server.exportDir) }
            }
            var all: [ClientReport] = []
            for await r in group { all.append(r) }
            return all.sorted { $0.index < $1.index }
        }
        stop.set()
        let stormResult = try await withDeadline(120, "the storm task's end") { try await storm.value }

        // What each client was told is durable is on the server's pmem, byte for byte.
        var lost: [String] = []
        for r in reports {
            let data = (try? Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/soak-\(r.index).bin"))).map(Array.init) ?? []
            if data.count < Self.dataEnd || Array(data.prefix(Self.dataEnd)) != r.model {
                let diffs = zip(data, r.model).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
                lost.append("client \(r.index) (\(r.oneSided ? "layouts" : "two-sided"), \(r.usage)): file \(data.count) bytes, \(diffs.count) bytes differ, first at \(diffs.first.map(String.init) ?? "the end"), last at \(diffs.last.map(String.init) ?? "-")")
            }
            if data.count > Self.dataEnd, data[Self.dataEnd...].contains(where: { $0 != 0 }) {
                lost.append("client \(r.index): bytes past \(Self.dataEnd) that nobody wrote")
            }
        }
        let errors = reports.flatMap { r in r.errors.map { "client \(r.index) (\(r.oneSided ? "layouts" : "two-sided")): \($0)" } }
        #expect(lost.isEmpty, "acknowledged bytes lost:\n\(lost.joined(separator: "\n"))")
        #expect(errors.isEmpty, "client errors:\n\(errors.prefix(30).joined(separator: "\n"))")
        #expect(stormResult.problems.isEmpty, "storm:\n\(stormResult.problems.joined(separator: "\n"))")
        #expect(reports.allSatisfy { $0.writes > 0 }, "every client wrote: \(reports.map(\.writes))")
        #expect(stormResult.opens + stormResult.truncates > 0)
        #expect(server.process.isRunning)

        // After the clients leave: no layout, MR or open file left behind.
        var counters: [String: UInt64] = [:]
        let clean = await eventually(30) {
            let c = try await serverCounters(server)
            return c["layouts_live"] == 0 && c["mrs_live"] == 0 && c["open_files"] == 0
        }
        counters = try await serverCounters(server)
        #expect(clean, "counters after the soak: \(counters)")
        #expect((counters["bytes_layout_granted"] ?? 0) > 0 && (counters["bytes_written_two_sided"] ?? 0) > 0,
                "both data paths were used: \(counters)")
        #expect((counters["layouts_recalled"] ?? 0) > 0, "the storm recalled layouts: \(counters)")
        let status = await onThread { stopBounded(server) }
        #expect(status == "exit 0", "SIGTERM after the soak: \(status); log:\n\(server.log.suffix(10_000))")

        let acked = reports.reduce(0) { $0 + $1.bytesAcknowledged }
        Reliability.report("soak: \(clients) clients for \(ContinuousClock.now - started): \(reports.reduce(0) { $0 + $1.writes }) durable writes (\(acked >> 10) KiB), \(reports.reduce(0) { $0 + $1.reads }) verified reads, \(stormResult.opens) local opens, \(stormResult.truncates) truncates, \(counters["layouts_recalled"] ?? 0) layouts recalled, \(counters["layouts_revoked"] ?? 0) revoked, \(lost.count) files with lost bytes; live layouts/MRs/open files after: \(counters["layouts_live"] ?? 0)/\(counters["mrs_live"] ?? 0)/\(counters["open_files"] ?? 0)")
    }
}
