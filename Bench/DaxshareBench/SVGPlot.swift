/// Throughput against I/O size as a hand-written SVG: one panel per (op, pattern, qd, clients),
/// one line per mode; baselines dashed, so every mode sits next to the baseline it is judged by.
public enum SVGPlot {
    public static let baselineModes: Set<String> = ["raw", "raw-odp", "perftest"]
    static let palette: [String: String] = [
        "raw": "#7f7f7f", "raw-odp": "#1f77b4", "perftest": "#2ca02c", "two-sided": "#d62728", "one-sided": "#ff7f0e",
    ]
    static let fallbackColors = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]

    /// A series: one mode's points in one panel.
    public struct Series: Equatable, Sendable {
        public var mode: String
        public var points: [(size: Int, mbps: Double)]
        public static func == (a: Series, b: Series) -> Bool {
            a.mode == b.mode && a.points.map(\.size) == b.points.map(\.size) && a.points.map(\.mbps) == b.points.map(\.mbps)
        }
    }

    public struct Panel: Equatable, Sendable {
        public var title: String
        public var series: [Series]
    }

    /// Groups rows into panels (in order of first appearance) and series (sizes ascending).
    public static func panels(_ rows: [BenchRow]) -> [Panel] {
        var order: [String] = []
        var groups: [String: [BenchRow]] = [:]
        for r in rows {
            let p = r.point
            let title = "\(p.op.rawValue) \(p.pattern.rawValue), qd \(p.qd), \(p.clients) client\(p.clients == 1 ? "" : "s")"
            if groups[title] == nil { order.append(title) }
            groups[title, default: []].append(r)
        }
        return order.map { title in
            let rs = groups[title]!
            var modes: [String] = []
            for r in rs where !modes.contains(r.mode) { modes.append(r.mode) }
            let series = modes.map { m in
                Series(mode: m, points: rs.filter { $0.mode == m }.map { ($0.point.size, $0.mbps) }.sorted { $0.size < $1.size })
            }
            return Panel(title: title, series: series)
        }
    }

    /// The whole document. `subtitle` goes under the title (machine, kernel, date).
    public static func render(_ rows: [BenchRow], title: String = "daxshare-bench: throughput against I/O size",
                              subtitle: String = "") -> String {
        let panels = panels(rows)
        let pw = 460.0, ph = 300.0, columns = max(1, min(2, panels.count))
        let rowsOfPanels = (panels.count + columns - 1) / columns
        let top = 60.0
        let width = Double(columns) * pw + 20
        let height = top + Double(max(1, rowsOfPanels)) * ph + 20
        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(n(width))" height="\(n(height))" viewBox="0 0 \(n(width)) \(n(height))" font-family="sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(n(width / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(escape(title))</text>
        <text x="\(n(width / 2))" y="40" text-anchor="middle" fill="#555">\(escape(subtitle))</text>

        """
        if panels.isEmpty {
            s += "<text x=\"\(n(width / 2))\" y=\"\(n(top + 40))\" text-anchor=\"middle\">no data</text>\n"
        }
        for (i, panel) in panels.enumerated() {
            let x0 = 10 + Double(i % columns) * pw, y0 = top + Double(i / columns) * ph
            s += renderPanel(panel, x: x0, y: y0, width: pw, height: ph)
        }
        s += "</svg>\n"
        return s
    }

    static func renderPanel(_ panel: Panel, x: Double, y: Double, width: Double, height: Double) -> String {
        let left = x + 60, right = x + width - 20, top = y + 25, bottom = y + height - 80
        let sizes = Array(Set(panel.series.flatMap { $0.points.map(\.size) })).sorted()
        let maxY = niceCeiling(panel.series.flatMap { $0.points.map(\.mbps) }.max() ?? 1)
        let lo = log2(Double(sizes.first ?? 1)), hi = log2(Double(sizes.last ?? 2))
        func px(_ size: Int) -> Double {
            hi > lo ? left + (log2(Double(size)) - lo) / (hi - lo) * (right - left) : (left + right) / 2
        }
        func py(_ v: Double) -> Double { bottom - v / maxY * (bottom - top) }
        var s = "<g class=\"panel\">\n"
        s += "<text x=\"\(n((left + right) / 2))\" y=\"\(n(y + 14))\" text-anchor=\"middle\" font-weight=\"bold\">\(escape(panel.title))</text>\n"
        // Axes, grid and ticks.
        s += "<line x1=\"\(n(left))\" y1=\"\(n(bottom))\" x2=\"\(n(right))\" y2=\"\(n(bottom))\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(n(left))\" y1=\"\(n(top))\" x2=\"\(n(left))\" y2=\"\(n(bottom))\" stroke=\"black\"/>\n"
        for k in 0...4 {
            let v = maxY * Double(k) / 4, yy = py(v)
            s += "<line x1=\"\(n(left))\" y1=\"\(n(yy))\" x2=\"\(n(right))\" y2=\"\(n(yy))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(n(left - 5))\" y=\"\(n(yy + 4))\" text-anchor=\"end\">\(TableFormat.fixed(v, v < 10 ? 1 : 0))</text>\n"
        }
        for size in sizes {
            s += "<text x=\"\(n(px(size)))\" y=\"\(n(bottom + 15))\" text-anchor=\"middle\">\(ByteSize.format(size))</text>\n"
        }
        s += "<text x=\"\(n((left + right) / 2))\" y=\"\(n(bottom + 30))\" text-anchor=\"middle\">I/O size</text>\n"
        s += "<text transform=\"translate(\(n(x + 14)) \(n((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">MB/s</text>\n"
        // Series.
        var extra = 0
        for (j, series) in panel.series.enumerated() {
            let color = palette[series.mode] ?? fallbackColors[extra % fallbackColors.count]
            if palette[series.mode] == nil { extra += 1 }
            let dash = baselineModes.contains(series.mode) ? " stroke-dasharray=\"6 4\"" : ""
            let pts = series.points.map { "\(n(px($0.size))),\(n(py($0.mbps)))" }.joined(separator: " ")
            s += "<polyline class=\"series\" data-mode=\"\(escape(series.mode))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash) points=\"\(pts)\"/>\n"
            for p in series.points {
                s += "<circle cx=\"\(n(px(p.size)))\" cy=\"\(n(py(p.mbps)))\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            // Legend under the axis.
            let lx = left + Double(j % 3) * 125, ly = bottom + 45 + Double(j / 3) * 14
            s += "<line x1=\"\(n(lx))\" y1=\"\(n(ly - 4))\" x2=\"\(n(lx + 20))\" y2=\"\(n(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>\n"
            s += "<text x=\"\(n(lx + 25))\" y=\"\(n(ly))\">\(escape(series.mode))\(baselineModes.contains(series.mode) ? " (baseline)" : "")</text>\n"
        }
        s += "</g>\n"
        return s
    }

    /// 1, 2, 2.5 or 5 times a power of ten, at least `x`.
    static func niceCeiling(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return 1 }
        var p = 1.0
        while p * 10 < x { p *= 10 }
        while p > x { p /= 10 }
        for m in [1.0, 2.0, 2.5, 5.0, 10.0] where m * p >= x { return m * p }
        return 10 * p
    }

    static func log2(_ x: Double) -> Double {
        var v = x, r = 0.0
        while v >= 2 { v /= 2; r += 1 }
        // Linear between powers of two is enough for placing ticks.
        return r + (v - 1)
    }

    static func n(_ x: Double) -> String { TableFormat.fixed(x, 1) }

    public static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }
}
