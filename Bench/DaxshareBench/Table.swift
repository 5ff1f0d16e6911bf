/// The terminal table: one line per row, in the order given.
public enum TableFormat {
    public static let headers = ["mode", "op", "pattern", "size", "qd", "cl", "MB/s", "IOPS", "p50 us", "p99 us", "p99.9 us",
                                 "srv s/GiB", "srv core", "vs", "ratio", "p50 x", "x perftest", "allocs/IO"]

    public static func cells(_ r: BenchRow) -> [String] {
        [r.mode, r.point.op.rawValue, r.point.pattern.rawValue, ByteSize.format(r.point.size), "\(r.point.qd)", "\(r.point.clients)",
         fixed(r.mbps, 2), fixed(r.iops, 0), opt(r.latency?.p50, 1), opt(r.latency?.p99, 1), opt(r.latency?.p999, 1),
         opt(r.serverCPUPerGiB, 3), r.serverCoreFraction.map { fixed($0 * 100, 1) + "%" } ?? "-", r.baseline ?? "-",
         opt(r.ratio, 3), opt(r.p50Ratio, 2), opt(r.perftestRatio, 3), opt(r.allocationsPerIO, 1)]
    }

    /// Text columns left-aligned, figures right-aligned, two spaces apart.
    public static func render(_ rows: [BenchRow]) -> String {
        text(headers: headers, rows: rows.map(cells), leftAligned: [0, 1, 2, 13])
    }

    /// The same rows as a Markdown table (RESULTS.md).
    public static func markdown(_ rows: [BenchRow]) -> String {
        markdown(headers: headers, rows: rows.map(cells))
    }

    /// Any table as aligned text: the columns in `leftAligned` padded on the right, the others
    /// on the left, two spaces apart, with a rule under the headers.
    public static func text(headers: [String], rows: [[String]], leftAligned: Set<Int>) -> String {
        let all = [headers] + rows
        let widths = headers.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                let pad = String(repeating: " ", count: widths[i] - c.count)
                return leftAligned.contains(i) ? c + pad : pad + c
            }.joined(separator: "  ").benchTrimmed(" ")
        }
        return ([line(headers), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line))
            .joined(separator: "\n") + "\n"
    }

    /// Any table in Markdown.
    public static func markdown(headers: [String], rows: [[String]]) -> String {
        var out = "| " + headers.joined(separator: " | ") + " |\n"
        out += "|" + headers.map { _ in " --- " }.joined(separator: "|") + "|\n"
        for r in rows { out += "| " + r.joined(separator: " | ") + " |\n" }
        return out
    }

    public static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let v = (x * scale).rounded() / scale
        if digits == 0 { return String(Int64(v)) }
        let neg = v < 0
        let a = abs(v)
        let whole = Int64(a)
        let frac = Int64(((a - Double(whole)) * scale).rounded())
        var f = String(frac)
        while f.count < digits { f = "0" + f }
        return (neg ? "-" : "") + "\(whole)." + f
    }

    static func opt(_ x: Double?, _ digits: Int) -> String { x.map { fixed($0, digits) } ?? "-" }
}
