/// One control-path figure (LAYOUTGET, LAYOUTCOMMIT, recall, fence): latencies of `samples`
/// operations, summarised, and the ratio of its median to a baseline figure measured in the
/// same run (e.g. a recall against the same local open of a file nobody holds a layout on).
public struct ControlRow: Sendable, Equatable, Codable {
    /// What was timed: `layoutget`, `layoutcommit`, `recall`, `fence`, `local-open`.
    public var figure: String
    /// The variant: `prefetch` / `no-prefetch`, a size, `deadline 1000 ms`.
    public var variant: String
    /// Clients holding layouts (recall, fence) or issuing requests.
    public var clients: Int
    public var samples: Int
    public var p50_us: Double
    public var p99_us: Double
    public var max_us: Double
    /// The figure+variant this one is compared with, and p50 / its p50.
    public var baseline: String?
    public var ratio: Double?
    public var note: String?

    public init(figure: String, variant: String, clients: Int, microseconds: [Double], baseline: String? = nil,
                note: String? = nil) {
        precondition(!microseconds.isEmpty, "a control row needs at least one sample")
        self.figure = figure
        self.variant = variant
        self.clients = clients
        samples = microseconds.count
        p50_us = Self.percentile(microseconds, 50)
        p99_us = Self.percentile(microseconds, 99)
        max_us = microseconds.max()!
        self.baseline = baseline
        self.note = note
    }

    /// `figure variant`, as baselines name it.
    public var key: String { "\(figure) \(variant)" }

    /// Nearest-rank percentile: the smallest sample with at least p% of the samples at or below it.
    public static func percentile(_ values: [Double], _ p: Double) -> Double {
        precondition(!values.isEmpty)
        let s = values.sorted()
        let rank = Int((p / 100 * Double(s.count)).rounded(.up))
        return s[min(max(rank, 1), s.count) - 1]
    }

    /// Fills `ratio` from each row's baseline row (by `key`), where it was measured.
    public static func applyRatios(_ rows: [ControlRow]) -> [ControlRow] {
        var index: [String: ControlRow] = [:]
        for r in rows { index[r.key] = r }
        return rows.map { r in
            var r = r
            r.ratio = nil
            if let b = r.baseline, let base = index[b], base.p50_us > 0 { r.ratio = r.p50_us / base.p50_us }
            return r
        }
    }

    /// The terminal (and Markdown) table.
    public static func table(_ rows: [ControlRow], markdown: Bool = false) -> String {
        let headers = ["figure", "variant", "clients", "n", "p50 ms", "p99 ms", "max ms", "vs", "p50 x", "note"]
        let body = rows.map { r in
            [r.figure, r.variant, "\(r.clients)", "\(r.samples)", TableFormat.fixed(r.p50_us / 1000, 3),
             TableFormat.fixed(r.p99_us / 1000, 3), TableFormat.fixed(r.max_us / 1000, 3), r.baseline ?? "-",
             r.ratio.map { TableFormat.fixed($0, 2) } ?? "-", r.note ?? ""]
        }
        return markdown ? TableFormat.markdown(headers: headers, rows: body)
            : TableFormat.text(headers: headers, rows: body, leftAligned: [0, 1, 7, 9])
    }
}
