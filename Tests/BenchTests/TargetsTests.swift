import DaxshareBench
import Testing

@Suite("Targets and fio reports")
struct TargetsTests {
    func row(_ mode: String, _ op: BenchOp, _ size: Int, ratio: Double?, p50Ratio: Double? = nil, core: Double? = nil,
             qd: Int = 1, iops: Double = 1) -> BenchRow {
        BenchRow(mode: mode, point: PointKey(op: op, pattern: .seq, size: size, qd: qd, clients: 1), mbps: 1, iops: iops,
                 serverCoreFraction: core, baseline: "raw-odp", ratio: ratio, p50Ratio: p50Ratio)
    }

    @Test func checksEachTargetOnTheRowsItConcerns() {
        let checks = Targets.check([
            row("one-sided", .read, 1 << 20, ratio: 0.97, core: 0.01),
            row("one-sided", .read, 4096, ratio: 0.5, p50Ratio: 1.3),
            row("one-sided", .write, 65536, ratio: 0.85),
            row("two-sided", .read, 1 << 20, ratio: 0.1),
        ])
        // 1M read: ratio and CPU; 4K read: ratio and p50; 64K write: ratio; two-sided 1M read
        #expect(checks.count == 6)
        #expect(checks.contains { $0.target == "two-sided 1 MiB read >= 0.9x raw" && !$0.met })
        let read = checks.first { $0.target.hasPrefix("one-sided read") && $0.point == "read seq 1M qd1" }!
        #expect(read.met)
        #expect(checks.contains { $0.target.hasPrefix("one-sided read") && $0.point == "read seq 4K qd1" && !$0.met })
        let cpu = checks.first { $0.target.hasPrefix("server CPU") }!
        #expect(cpu.met && cpu.value == 1)
        let p50 = checks.first { $0.target.hasPrefix("4 KiB") }!
        #expect(!p50.met && abs(p50.margin - (1 - 1.3 / 1.10)) < 1e-9)
        let write = checks.first { $0.target.contains("write") }!
        #expect(!write.met && abs(write.margin - (0.85 / 0.95 - 1)) < 1e-9)
        #expect(Targets.markdown(checks).contains("**no**"))
    }

    /// Issue 14: the CLI against the sweep's one-sided 1 MiB qd1 figure, and deeper never slower.
    @Test func theCLIIsHeldAgainstOneSidedAtOneMiB() {
        func cli(_ mode: String, _ op: BenchOp, qd: Int, mbps: Double) -> BenchRow {
            BenchRow(mode: mode, point: PointKey(op: op, pattern: .seq, size: 256 << 20, qd: qd, clients: 1), mbps: mbps, iops: 0)
        }
        let data = [BenchRow(mode: "one-sided", point: PointKey(op: .read, pattern: .seq, size: 1 << 20, qd: 1, clients: 1),
                             mbps: 50, iops: 50)]
        let checks = Targets.checkCLI([cli("daxshare get", .read, qd: 1, mbps: 45), cli("daxshare get", .read, qd: 4, mbps: 42),
                                       cli("daxshare put", .write, qd: 1, mbps: 30)], data: data)
        // get: two against one-sided, one depth comparison; put: no one-sided write row here.
        #expect(checks.count == 3)
        #expect(checks.first { $0.point == "daxshare get --queue-depth 1" }?.value == 0.9)
        let deeper = checks.first { $0.target == "deeper queue depth never slower" }
        #expect(deeper?.met == false && deeper?.point == "daxshare get --queue-depth 4 vs 1")
    }

    /// Issue 14: raw and one-sided against the device (perftest) at 4 KiB and 64 KiB, depth 1
    /// and 8; the ratio is filled by `Baselines.applyRatios` from perftest's row at the point.
    @Test func rawAndOneSidedAreHeldAgainstPerftest() {
        func measured(_ mode: String, _ size: Int, qd: Int, mbps: Double) -> BenchRow {
            BenchRow(mode: mode, point: PointKey(op: .read, pattern: .seq, size: size, qd: qd, clients: 1), mbps: mbps, iops: 1,
                     baseline: Baselines.defaults[mode])
        }
        let rows = Baselines.applyRatios([
            measured("perftest", 4096, qd: 1, mbps: 10), measured("raw", 4096, qd: 1, mbps: 9.5),
            measured("raw-odp", 4096, qd: 1, mbps: 9), measured("one-sided", 4096, qd: 1, mbps: 8),
            measured("raw", 1 << 20, qd: 1, mbps: 50),  // no perftest row there: no device check
        ])
        #expect(rows.first { $0.mode == "raw" && $0.point.size == 4096 }?.perftestRatio == 0.95)
        #expect(rows.first { $0.mode == "perftest" }?.perftestRatio == nil)
        let checks = Targets.check(rows)
        let raw = checks.first { $0.target == "raw >= 0.9x perftest" }
        #expect(raw?.met == true && raw?.point == "read seq 4K qd1")
        let one = checks.first { $0.target == "one-sided >= 0.85x perftest" }
        #expect(one?.value == 0.8 && one?.met == false)
        #expect(checks.filter { $0.target == "raw >= 0.9x perftest" }.count == 1)
    }

    @Test func durableWritesHoldFlushAgainstLayoutCommitAtEachPoint() {
        let p = PointKey(op: .write, pattern: .seq, size: 4096, qd: 1, clients: 1)
        let q = PointKey(op: .write, pattern: .seq, size: 1 << 20, qd: 1, clients: 1)
        func l(_ p50: Double) -> LatencySummary { LatencySummary(p50: p50, p99: p50 * 2, p999: p50 * 3) }
        let checks = Targets.checkDurable([
            BenchRow(mode: "one-sided", point: p, mbps: 10, iops: 1, latency: l(100), serverCPUPerGiB: 2),
            BenchRow(mode: "one-sided+flush", point: p, mbps: 30, iops: 1, latency: l(40), serverCPUPerGiB: 0),
            BenchRow(mode: "one-sided", point: q, mbps: 100, iops: 1, latency: l(1000), serverCPUPerGiB: 0.5),
            BenchRow(mode: "one-sided+flush", point: q, mbps: 95, iops: 1, latency: l(1100), serverCPUPerGiB: 0.01),
        ], control: [
            ControlRow(figure: "layoutcommit", variant: "4K", clients: 1, microseconds: [100, 120]),
            ControlRow(figure: "flush-commit", variant: "4K", clients: 1, microseconds: [30, 40]),
        ])
        #expect(checks.count == 7)  // per point: CPU, throughput, p50; and the control commit p50
        #expect(checks.filter { $0.point == "write seq 4K qd1" }.allSatisfy { $0.met })
        #expect(checks.filter { $0.point == "write seq 1M qd1" }.allSatisfy { !$0.met })
        #expect(checks.first { $0.target.hasPrefix("commit p50") }?.met == true)
    }

    @Test func twoSidedQueueDepthIsTheRatioOfIOPSAtTheSamePoint() {
        let checks = Targets.check([
            row("two-sided", .read, 4096, ratio: 0.2, iops: 30),
            row("two-sided", .read, 4096, ratio: 0.3, qd: 8, iops: 150),
            row("two-sided", .write, 4096, ratio: 0.3, qd: 8, iops: 900),
        ])
        let depth = checks.first { $0.target.hasPrefix("two-sided 4 KiB") }
        #expect(checks.count == 1)
        #expect(depth?.value == 5 && depth?.met == true && depth?.point == "read seq 4K qd8")
    }

    static let fioJSON = """
    note: both iodepth >= 1 and synchronous I/O engine are selected
    {
      "fio version" : "fio-3.33",
      "jobs" : [ { "jobname" : "seq", "error" : 0,
        "read" : { "io_bytes" : 104857600, "bw_bytes" : 52428800, "iops" : 50.0,
                   "clat_ns" : { "percentile" : { "50.000000" : 19000000, "99.000000" : 25000000, "99.900000" : 30000000 } } },
        "write" : { "io_bytes" : 0, "bw_bytes" : 0, "iops" : 0.0 } } ]
    }
    """

    @Test func readsFioBandwidthAndLatency() throws {
        let point = PointKey(op: .read, pattern: .seq, size: 1 << 20, qd: 1, clients: 1)
        let r = try Fio.row(json: Self.fioJSON, mode: "nfs-rdma", point: point, baseline: "perftest")
        #expect(r.mbps == 52.4288)
        #expect(r.iops == 50)
        #expect(r.latency == LatencySummary(p50: 19000, p99: 25000, p999: 30000))
        #expect(r.baseline == "perftest")
    }

    @Test func repeatsOfOnePointGiveTheMedianOfEachFigure() throws {
        let point = PointKey(op: .read, pattern: .seq, size: 1 << 20, qd: 1, clients: 1)
        func run(_ bw: Int, _ iops: Double, _ p50: Int) -> String {
            #"{"jobs":[{"error":0,"read":{"bw_bytes":\#(bw),"iops":\#(iops),"clat_ns":{"percentile":{"50.000000":\#(p50),"99.000000":9000000,"99.900000":9500000}}}}]}"#
        }
        let r = try Fio.row(jsons: [run(70_000_000, 66, 15_000_000), run(90_000_000, 86, 11_000_000), run(80_000_000, 76, 12_000_000)],
                            mode: "daxshare-mount", point: point, baseline: "perftest")
        #expect(r.mbps == 80)
        #expect(r.iops == 76)
        #expect(r.latency?.p50 == 12000)
        #expect(r.repeats == 3)
        #expect(throws: Fio.ParseError.self) { try Fio.row(jsons: [run(1, 1, 1), "fio: file not found"], mode: "m", point: point, baseline: nil) }
    }

    @Test func rejectsAFailedOrEmptyFioReport() {
        let point = PointKey(op: .read, pattern: .seq, size: 4096, qd: 1, clients: 1)
        #expect(throws: Fio.ParseError.self) { try Fio.row(json: "fio: file not found", mode: "nfs", point: point, baseline: nil) }
        #expect(throws: Fio.ParseError.self) {
            try Fio.row(json: #"{"jobs":[{"error":5,"read":{"bw_bytes":0,"iops":0}}]}"#, mode: "nfs", point: point, baseline: nil)
        }
    }
}

@Suite("RESULTS.md")
struct ResultsReportTests {
    @Test func peerTablePivotsModesAgainstPerftest() {
        let p = PointKey(op: .read, pattern: .seq, size: 1 << 20, qd: 8, clients: 1)
        let rows = [BenchRow(mode: "nfs-rdma", point: p, mbps: 30, iops: 1),
                    BenchRow(mode: "perftest", point: p, mbps: 40, iops: 1),
                    BenchRow(mode: "one-sided", point: p, mbps: 38, iops: 1)]
        let table = ResultsReport.peerTable(rows)
        let lines = table.split(separator: "\n")
        #expect(lines[0] == "| op | size | qd | perftest MB/s | vs perftest | nfs-rdma MB/s | vs perftest | one-sided MB/s | vs perftest |")
        #expect(lines[2] == "| read | 1M | 8 | 40.00 | 1.00x | 30.00 | 0.75x | 38.00 | 0.95x |")
    }

    @Test func documentHasEverySectionThatHasRows() {
        let p = PointKey(op: .read, pattern: .seq, size: 1 << 20, qd: 1, clients: 1)
        let data = [BenchRow(mode: "one-sided", point: p, mbps: 9, iops: 9, baseline: "raw-odp", ratio: 0.9)]
        let control = [ControlRow(figure: "fence", variant: "deadline 1000 ms", clients: 1, microseconds: [1_000_500])]
        let doc = ResultsReport.markdown(data: data, control: control, peers: [], environment: "kernel 7.2\n",
                                         notes: "## Notes\nwhy", plot: "results/throughput.svg")
        #expect(doc.contains("## Targets") && doc.contains("## Data path") && doc.contains("## Control path"))
        #expect(!doc.contains("NFS server over RDMA"))
        #expect(doc.contains("kernel 7.2") && doc.hasSuffix("## Notes\nwhy\n"))
        #expect(doc.contains("![throughput against I/O size](results/throughput.svg)"))
    }
}
