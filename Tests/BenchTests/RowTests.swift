import DaxshareBench
import Testing

@Suite("Rows, ratios and output")
struct RowTests {
    let point = PointKey(op: .read, pattern: .seq, size: 65536, qd: 1, clients: 1)

    @Test func rowTakesTheMedianOfItsRepeats() {
        let ms = [10.0, 30.0, 20.0].map { BenchMeasurement(bytes: UInt64($0 * 1e6), ops: 100, seconds: 1) }
        let row = BenchRow(mode: "one-sided", point: point, baseline: "raw-odp", repeats: ms)
        #expect(row.mbps == 20)
        #expect(row.repeats == 3)
        #expect(row.iops == 100)
    }

    @Test func medianOfAnEvenSampleIsTheMeanOfTheMiddleTwo() {
        #expect(median([4, 1, 3, 2]) == 2.5)
        #expect(median([]) == nil)
    }

    @Test func ratiosComeFromTheBaselineAtTheSamePoint() {
        let other = PointKey(op: .read, pattern: .seq, size: 4096, qd: 1, clients: 1)
        let rows = Baselines.applyRatios([
            BenchRow(mode: "raw-odp", point: point, mbps: 100, iops: 1, latency: LatencySummary(p50: 10, p99: 20, p999: 30)),
            BenchRow(mode: "one-sided", point: point, mbps: 95, iops: 1, latency: LatencySummary(p50: 11, p99: 20, p999: 30),
                     baseline: "raw-odp"),
            BenchRow(mode: "one-sided", point: other, mbps: 50, iops: 1, baseline: "raw-odp"),
        ])
        #expect(rows[0].ratio == nil)
        #expect(abs(rows[1].ratio! - 0.95) < 1e-9)
        #expect(abs(rows[1].p50Ratio! - 1.1) < 1e-9)
        #expect(rows[2].ratio == nil)  // no baseline measured at 4K
    }

    @Test func serverCPUPerGiB() {
        let m = BenchMeasurement(bytes: 0, ops: 0, seconds: 1, serverCPUSeconds: 0.5, serverSpanBytes: 2 << 30,
                                 serverSpanSeconds: 10)
        #expect(m.serverCPUPerGiB == 0.25)
        #expect(m.serverCoreFraction == 0.05)
    }

    @Test func jsonRoundTripsAndNamesEveryField() throws {
        let row = BenchRow(mode: "one-sided", point: point, mbps: 12.345, iops: 188.4,
                           latency: LatencySummary(p50: 100, p99: 200, p999: 300), serverCPUPerGiB: 0.01,
                           baseline: "raw-odp", ratio: 0.9712, repeats: 3)
        let text = JSONRows.render([row])
        for key in ["mode", "op", "size", "qd", "clients", "mbps", "iops", "p50_us", "p99_us", "p999_us",
                    "server_cpu_s_per_gib", "baseline", "ratio"] {
            #expect(text.contains("\"\(key)\""), "missing \(key)")
        }
        let back = try JSONRows.parse(text)
        #expect(back.count == 1)
        #expect(back[0].mbps == 12.35)
        #expect(back[0].ratio == 0.971)
        #expect(back[0].latency?.p99 == 200)
        #expect(back[0].point == point)
    }

    @Test func tableAlignsColumns() {
        let rows = [BenchRow(mode: "raw", point: point, mbps: 1.5, iops: 22.9),
                    BenchRow(mode: "one-sided", point: point, mbps: 123.25, iops: 1880, baseline: "raw", ratio: 82.2)]
        let lines = TableFormat.render(rows).split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("mode"))
        #expect(lines[3].contains("123.25"))
        #expect(lines[3].contains("82.200"))
        #expect(TableFormat.fixed(0.05, 1) == "0.1")
        #expect(TableFormat.fixed(-2.5, 2) == "-2.50")
    }

    @Test func latencyRecorderPercentiles() throws {
        var r = LatencyRecorder()
        for us in 1...1000 { r.record(nanoseconds: UInt64(us) * 1000) }
        let s = try #require(r.summary)
        #expect(abs(s.p50 - 500) < 2)
        #expect(abs(s.p99 - 990) < 3)
        #expect(LatencyRecorder().summary == nil)
    }

    @Test func svgHasAPanelPerGroupAndALinePerMode() {
        let w = PointKey(op: .write, pattern: .seq, size: 65536, qd: 1, clients: 1)
        let rows = [BenchRow(mode: "raw-odp", point: point, mbps: 10, iops: 1),
                    BenchRow(mode: "one-sided", point: point, mbps: 9, iops: 1),
                    BenchRow(mode: "raw-odp", point: w, mbps: 8, iops: 1)]
        let panels = SVGPlot.panels(rows)
        #expect(panels.count == 2)
        #expect(panels[0].series.map(\.mode) == ["raw-odp", "one-sided"])
        let svg = SVGPlot.render(rows, subtitle: "a<b")
        #expect(svg.hasPrefix("<?xml"))
        #expect(svg.contains("a&lt;b"))
        #expect(svg.hasSuffix("</svg>\n") || svg.hasSuffix("</svg>"))
    }
}

@Suite("Control-path rows")
struct ControlRowTests {
    @Test func nearestRankPercentiles() {
        let xs = (1...100).map(Double.init).shuffled()
        #expect(ControlRow.percentile(xs, 50) == 50)
        #expect(ControlRow.percentile(xs, 99) == 99)
        #expect(ControlRow.percentile([7], 99) == 7)
        #expect(ControlRow.percentile([1, 2, 3], 50) == 2)
    }

    @Test func ratioIsAgainstTheNamedBaseline() {
        let rows = ControlRow.applyRatios([
            ControlRow(figure: "local-open", variant: "no layouts", clients: 0, microseconds: [1000, 1200, 1100]),
            ControlRow(figure: "recall", variant: "local open", clients: 4, microseconds: [3300, 3000, 3600],
                       baseline: "local-open no layouts"),
            ControlRow(figure: "fence", variant: "x", clients: 1, microseconds: [5], baseline: "missing"),
        ])
        #expect(rows[0].ratio == nil)
        #expect(rows[1].p50_us == 3300 && rows[1].max_us == 3600)
        #expect(abs(rows[1].ratio! - 3) < 1e-9)
        #expect(rows[2].ratio == nil)
        let table = ControlRow.table(rows)
        #expect(table.contains("recall") && table.contains("3.300") && table.contains("3.00"))
        #expect(ControlRow.table(rows, markdown: true).hasPrefix("| figure |"))
    }
}
