/// Which measurement each mode is judged against: always one taken by the same harness, in the
/// same run, on the same device.
public enum Baselines {
    /// two-sided against raw verbs on a plain registered buffer; one-sided against raw verbs on an
    /// ODP region over a MAP_SYNC file on the same fsdax mount (the limit a layout can approach).
    public static let defaults: [String: String] = ["two-sided": "raw", "one-sided": "raw-odp", "one-sided+flush": "raw-odp"]

    /// The device: perftest on the same rxe, the reference every mode is also held against.
    public static let device = "perftest"

    /// Fills `ratio` and `p50Ratio` of every row that names a baseline, from the baseline's row at
    /// the same point, and `perftestRatio` of every other row from perftest's row there; rows
    /// whose reference was not measured keep nil.
    public static func applyRatios(_ rows: [BenchRow]) -> [BenchRow] {
        var index: [String: BenchRow] = [:]
        for r in rows { index[key(r.mode, r.point)] = r }
        return rows.map { row in
            var row = row
            row.ratio = nil
            row.p50Ratio = nil
            row.perftestRatio = nil
            if row.mode != device, let d = index[key(device, row.point)], d.mbps > 0 { row.perftestRatio = row.mbps / d.mbps }
            guard let b = row.baseline, let base = index[key(b, row.point)] else { return row }
            if base.mbps > 0 { row.ratio = row.mbps / base.mbps }
            if let p = row.latency?.p50, let q = base.latency?.p50, q > 0 { row.p50Ratio = p / q }
            return row
        }
    }

    static func key(_ mode: String, _ p: PointKey) -> String {
        "\(mode)|\(p.op.rawValue)|\(p.pattern.rawValue)|\(p.size)|\(p.qd)|\(p.clients)"
    }
}
