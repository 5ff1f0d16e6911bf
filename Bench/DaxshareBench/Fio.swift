import Foundation

/// fio's `--output-format=json` report, as the peer measurement (`make bench-peers`) uses it:
/// one job, reads or writes, bandwidth, IOPS and completion-latency percentiles.
public enum Fio {
    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The row for one fio run at `point`, labelled `mode` (e.g. "nfs-rdma"); its baseline is
    /// `baseline` (a mode measured in the same boot, e.g. "perftest").
    public static func row(json text: String, mode: String, point: PointKey, baseline: String?) throws -> BenchRow {
        // fio may print warnings before the JSON object.
        guard let start = text.firstIndex(of: "{") else { throw ParseError(description: "no JSON object in fio's output") }
        let object = try JSONSerialization.jsonObject(with: Data(text[start...].utf8))
        guard let root = object as? [String: Any], let jobs = root["jobs"] as? [[String: Any]], let job = jobs.first else {
            throw ParseError(description: "fio's JSON has no jobs")
        }
        let side = point.op == .read ? "read" : "write"
        guard let stats = job[side] as? [String: Any], let bw = number(stats["bw_bytes"]), let iops = number(stats["iops"]) else {
            throw ParseError(description: "fio's job has no \(side) bandwidth")
        }
        if let err = number(job["error"]), err != 0 { throw ParseError(description: "fio's job failed with error \(Int(err))") }
        var latency: LatencySummary?
        if let clat = stats["clat_ns"] as? [String: Any], let pct = clat["percentile"] as? [String: Any],
           let p50 = number(pct["50.000000"]), let p99 = number(pct["99.000000"]), let p999 = number(pct["99.900000"]) {
            latency = LatencySummary(p50: p50 / 1000, p99: p99 / 1000, p999: p999 / 1000)
        }
        return BenchRow(mode: mode, point: point, mbps: bw / 1e6, iops: iops, latency: latency, baseline: baseline)
    }

    /// The row for several fio runs of the same job at `point` (repeats taken in turn with the
    /// other mount's): the median of each figure, as the sweep's rows are.
    public static func row(jsons texts: [String], mode: String, point: PointKey, baseline: String?) throws -> BenchRow {
        let runs = try texts.map { try Fio.row(json: $0, mode: mode, point: point, baseline: baseline) }
        guard let first = runs.first else { throw ParseError(description: "no fio report") }
        guard runs.count > 1 else { return first }
        var merged = first
        merged.mbps = median(runs.map(\.mbps)) ?? 0
        merged.iops = median(runs.map(\.iops)) ?? 0
        let lats = runs.compactMap(\.latency)
        if lats.count == runs.count, let p50 = median(lats.map(\.p50)), let p99 = median(lats.map(\.p99)),
           let p999 = median(lats.map(\.p999)) {
            merged.latency = LatencySummary(p50: p50, p99: p99, p999: p999)
        } else {
            merged.latency = nil
        }
        merged.repeats = runs.count
        return merged
    }

    static func number(_ any: Any?) -> Double? {
        if let n = any as? NSNumber { return n.doubleValue }
        return nil
    }
}
