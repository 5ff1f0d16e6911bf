/// The targets issues #14 (one-sided, and the verbs layer against the device) and #13 (two-sided)
/// set, checked against one run's rows (ratios only: same run, same device). #14's supersede
/// #7's (0.95x raw-odp at every size instead of from 64 KiB, writes too; p50 1.10x, not 1.15x).
public enum Targets {
    public struct Check: Sendable, Equatable {
        public var target: String
        /// The row it was read from, e.g. "read seq 1M qd1".
        public var point: String
        public var value: Double
        public var limit: Double
        /// Whether bigger is better (ratios of throughput) or smaller (latency, CPU).
        public var atLeast: Bool
        public var met: Bool { atLeast ? value >= limit : value <= limit }
        /// How far from the limit, as a fraction of it (negative: short of it).
        public var margin: Double { atLeast ? value / limit - 1 : 1 - value / limit }
    }

    public static func check(_ rows: [BenchRow]) -> [Check] {
        var out: [Check] = []
        func label(_ r: BenchRow) -> String {
            "\(r.point.op.rawValue) \(r.point.pattern.rawValue) \(ByteSize.format(r.point.size)) qd\(r.point.qd)"
                + (r.point.clients > 1 ? " x\(r.point.clients)" : "")
        }
        // Issue 14: the device's figures at 4 KiB and 64 KiB, depth 1 and 8.
        func devicePoint(_ r: BenchRow) -> Bool {
            [4096, 64 << 10].contains(r.point.size) && [1, 8].contains(r.point.qd) && r.point.clients == 1
        }
        for r in rows where r.mode == "raw" && devicePoint(r) {
            guard let ratio = r.perftestRatio else { continue }
            out.append(Check(target: "raw >= 0.9x perftest", point: label(r), value: ratio, limit: 0.9, atLeast: true))
        }
        for r in rows where r.mode == "one-sided" {
            if r.point.op == .read, let ratio = r.ratio {
                out.append(Check(target: "one-sided read >= 0.95x raw-odp", point: label(r), value: ratio,
                                 limit: 0.95, atLeast: true))
            }
            if r.point.op == .write, let ratio = r.ratio {
                out.append(Check(target: "one-sided write + commit >= 0.95x raw-odp write", point: label(r), value: ratio,
                                 limit: 0.95, atLeast: true))
            }
            if devicePoint(r), let ratio = r.perftestRatio {
                out.append(Check(target: "one-sided >= 0.85x perftest", point: label(r), value: ratio, limit: 0.85, atLeast: true))
            }
            if r.point.op == .read, r.point.size == 4096, r.point.qd == 1, r.point.clients == 1, let p = r.p50Ratio {
                out.append(Check(target: "4 KiB read p50 <= 1.10x raw-odp", point: label(r), value: p, limit: 1.10, atLeast: false))
            }
            if r.point.size >= 64 << 10, let core = r.serverCoreFraction {
                out.append(Check(target: "server CPU while streaming one-sided <= 2% of a core", point: label(r),
                                 value: core * 100, limit: 2, atLeast: false))
            }
        }
        // Issue 13: queue depth buys two-sided throughput, and large two-sided reads near raw.
        let twoSided = rows.filter { $0.mode == "two-sided" && $0.point.clients == 1 }
        for r in twoSided where r.point.op == .read && r.point.size == 4096 && r.point.qd == 8 {
            guard let one = twoSided.first(where: {
                $0.point.op == .read && $0.point.size == 4096 && $0.point.qd == 1 && $0.point.pattern == r.point.pattern
            }), one.iops > 0 else { continue }
            out.append(Check(target: "two-sided 4 KiB read IOPS at qd8 >= 4x qd1", point: label(r), value: r.iops / one.iops,
                             limit: 4, atLeast: true))
        }
        for r in twoSided where r.point.op == .read && r.point.size == 1 << 20 {
            guard let ratio = r.ratio else { continue }
            out.append(Check(target: "two-sided 1 MiB read >= 0.9x raw", point: label(r), value: ratio, limit: 0.9, atLeast: true))
        }
        return out
    }

    /// Issue 17's targets, on `daxshare-bench data --durable` rows (every write committed) and the
    /// control path's commit latencies: writes + FLUSH cost the server no CPU for the data path and
    /// are at least as fast as writes + LAYOUTCOMMIT at every point, and a commit by FLUSH has a
    /// lower p50 than a LAYOUTCOMMIT of the same size.
    public static func checkDurable(_ rows: [BenchRow], control: [ControlRow] = []) -> [Check] {
        var out: [Check] = []
        func label(_ r: BenchRow) -> String {
            "\(r.point.op.rawValue) \(r.point.pattern.rawValue) \(ByteSize.format(r.point.size)) qd\(r.point.qd)"
                + (r.point.clients > 1 ? " x\(r.point.clients)" : "")
        }
        for r in rows where r.mode == "one-sided+flush" && r.point.op == .write {
            if let perGiB = r.serverCPUPerGiB {
                out.append(Check(target: "write + FLUSH: server CPU s/GiB = 0", point: label(r), value: perGiB, limit: 0, atLeast: false))
            }
            guard let lc = rows.first(where: { $0.mode == "one-sided" && $0.point == r.point }) else { continue }
            if lc.mbps > 0 {
                out.append(Check(target: "write + FLUSH >= write + LAYOUTCOMMIT (throughput)", point: label(r),
                                 value: r.mbps / lc.mbps, limit: 1.0, atLeast: true))
            }
            if let f = r.latency?.p50, let l = lc.latency?.p50, l > 0 {
                out.append(Check(target: "durable write p50: FLUSH < LAYOUTCOMMIT", point: label(r), value: f / l, limit: 1.0, atLeast: false))
            }
        }
        for f in control where f.figure == "flush-commit" {
            guard let l = control.first(where: { $0.figure == "layoutcommit" && $0.variant == f.variant }), l.p50_us > 0 else { continue }
            out.append(Check(target: "commit p50: FLUSH < LAYOUTCOMMIT", point: f.variant, value: f.p50_us / l.p50_us, limit: 1.0, atLeast: false))
        }
        return out
    }

    /// Issue 14's targets for what a user runs: `daxshare get`/`put` (rows of `scripts/bench-cli`,
    /// mode "daxshare get"/"daxshare put", one per queue depth) at least 0.8x the sweep's
    /// one-sided figure at 1 MiB qd1 for the same operation, and a deeper queue depth never slower.
    public static func checkCLI(_ cli: [BenchRow], data: [BenchRow]) -> [Check] {
        var out: [Check] = []
        for command in ["daxshare get", "daxshare put"] {
            let rows = cli.filter { $0.mode == command }.sorted { $0.point.qd < $1.point.qd }
            for (i, r) in rows.enumerated() {
                let point = "\(command) --queue-depth \(r.point.qd)"
                if let one = data.first(where: {
                    $0.mode == "one-sided" && $0.point.op == r.point.op && $0.point.pattern == .seq && $0.point.size == 1 << 20
                        && $0.point.qd == 1 && $0.point.clients == 1
                }), one.mbps > 0 {
                    out.append(Check(target: "CLI >= 0.8x one-sided 1 MiB qd1", point: point, value: r.mbps / one.mbps,
                                     limit: 0.8, atLeast: true))
                }
                if i > 0, rows[i - 1].mbps > 0 {
                    out.append(Check(target: "deeper queue depth never slower", point: "\(point) vs \(rows[i - 1].point.qd)",
                                     value: r.mbps / rows[i - 1].mbps, limit: 1, atLeast: true))
                }
            }
        }
        return out
    }

    /// Issue 15's targets for `daxshare mount` (rows of `make bench-peers`): fio through the mount
    /// at least 1.3x fio through the NFS over RDMA mount for 1 MiB sequential reads and writes at
    /// depth 1, and at least 1.0x for 4 KiB random reads (every depth measured).
    public static func checkMount(_ peers: [BenchRow], mount: String = "daxshare-mount", nfs: String = "nfs-rdma") -> [Check] {
        var out: [Check] = []
        for r in peers where r.mode == mount && r.point.clients == 1 {
            guard let n = peers.first(where: { $0.mode == nfs && $0.point == r.point }), n.mbps > 0 else { continue }
            let p = r.point
            let label = "\(p.op.rawValue) \(p.pattern.rawValue) \(ByteSize.format(p.size)) qd\(p.qd)"
            if p.pattern == .seq && p.size == 1 << 20 && p.qd == 1 {
                out.append(Check(target: "mount >= 1.3x NFS over RDMA (1 MiB sequential, qd1)", point: label,
                                 value: r.mbps / n.mbps, limit: 1.3, atLeast: true))
            }
            if p.op == .read && p.pattern == .rand && p.size == 4096 {
                out.append(Check(target: "mount >= 1.0x NFS over RDMA (4 KiB random read)", point: label,
                                 value: r.mbps / n.mbps, limit: 1.0, atLeast: true))
            }
        }
        return out
    }

    /// A Markdown table of the checks.
    public static func markdown(_ checks: [Check]) -> String {
        var s = "| target | point | value | limit | met | margin |\n| --- | --- | --- | --- | --- | --- |\n"
        for c in checks {
            s += "| \(c.target) | \(c.point) | \(TableFormat.fixed(c.value, 3)) | \(c.atLeast ? ">=" : "<=") \(TableFormat.fixed(c.limit, 2)) "
            s += "| \(c.met ? "yes" : "**no**") | \(c.margin >= 0 ? "+" : "")\(TableFormat.fixed(c.margin * 100, 1))% |\n"
        }
        return s
    }
}
