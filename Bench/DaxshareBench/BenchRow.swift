/// Which point of the sweep a measurement belongs to (everything but the mode).
public struct PointKey: Sendable, Hashable, Codable {
    public var op: BenchOp
    public var pattern: AccessPattern
    public var size: Int
    public var qd: Int
    public var clients: Int
    public init(op: BenchOp, pattern: AccessPattern, size: Int, qd: Int, clients: Int) {
        self.op = op
        self.pattern = pattern
        self.size = size
        self.qd = qd
        self.clients = clients
    }
}

/// What one repeat of one point measured.
public struct BenchMeasurement: Sendable, Equatable {
    /// Bytes and I/Os completed in the measured window (after warm-up).
    public var bytes: UInt64
    public var ops: UInt64
    /// Length of the measured window.
    public var seconds: Double
    public var latency: LatencySummary?
    /// Server CPU time (user + system) over the whole repeat, warm-up included, and the bytes
    /// moved over that same time: what the CPU cost per GiB is computed from.
    public var serverCPUSeconds: Double?
    public var serverSpanBytes: UInt64?
    public var serverSpanSeconds: Double?
    /// Anything the reader must know (a fallback to two-sided, a perftest retry).
    public var note: String?
    /// Heap allocations in the client process per I/O in the measured window (nil: not counted).
    public var allocationsPerIO: Double?

    public init(bytes: UInt64, ops: UInt64, seconds: Double, latency: LatencySummary? = nil,
                serverCPUSeconds: Double? = nil, serverSpanBytes: UInt64? = nil, serverSpanSeconds: Double? = nil,
                note: String? = nil) {
        self.bytes = bytes
        self.ops = ops
        self.seconds = seconds
        self.latency = latency
        self.serverCPUSeconds = serverCPUSeconds
        self.serverSpanBytes = serverSpanBytes
        self.serverSpanSeconds = serverSpanSeconds
        self.note = note
    }

    /// MB/s (10^6 bytes per second).
    public var mbps: Double { seconds > 0 ? Double(bytes) / seconds / 1e6 : 0 }
    public var iops: Double { seconds > 0 ? Double(ops) / seconds : 0 }

    /// Server CPU seconds per GiB (2^30 bytes) moved.
    public var serverCPUPerGiB: Double? {
        guard let cpu = serverCPUSeconds, let b = serverSpanBytes, b > 0 else { return nil }
        return cpu / (Double(b) / Double(1 << 30))
    }

    /// Fraction of one core the server used.
    public var serverCoreFraction: Double? {
        guard let cpu = serverCPUSeconds, let s = serverSpanSeconds, s > 0 else { return nil }
        return cpu / s
    }
}

/// One line of the report: a mode at a point, the median of its repeats, and its ratio to its
/// baseline measured in the same run. Encodes to the JSON object `--json` prints (every key
/// present; null where a figure does not apply).
public struct BenchRow: Sendable, Equatable {
    public var mode: String
    public var point: PointKey
    public var mbps: Double
    public var iops: Double
    public var latency: LatencySummary?
    public var serverCPUPerGiB: Double?
    public var serverCoreFraction: Double?
    /// The mode this row is compared with (nil for the baselines themselves).
    public var baseline: String?
    /// mbps / the baseline's mbps at the same point.
    public var ratio: Double?
    /// p50 / the baseline's p50 at the same point.
    public var p50Ratio: Double?
    /// Heap allocations of the client process per I/O in steady state (median of the repeats).
    public var allocationsPerIO: Double?
    /// mbps / perftest's mbps at the same point: every mode against the device.
    public var perftestRatio: Double?
    public var repeats: Int
    public var note: String?

    public init(mode: String, point: PointKey, mbps: Double, iops: Double, latency: LatencySummary? = nil,
                serverCPUPerGiB: Double? = nil, serverCoreFraction: Double? = nil, baseline: String? = nil,
                ratio: Double? = nil, p50Ratio: Double? = nil, repeats: Int = 1, note: String? = nil) {
        self.mode = mode
        self.point = point
        self.mbps = mbps
        self.iops = iops
        self.latency = latency
        self.serverCPUPerGiB = serverCPUPerGiB
        self.serverCoreFraction = serverCoreFraction
        self.baseline = baseline
        self.ratio = ratio
        self.p50Ratio = p50Ratio
        self.repeats = repeats
        self.note = note
    }

    /// The median of each figure over the repeats (figures a repeat lacks are left out of
    /// their median). Notes are joined, duplicates dropped.
    public init(mode: String, point: PointKey, baseline: String?, repeats: [BenchMeasurement]) {
        precondition(!repeats.isEmpty, "a row needs at least one measurement")
        self.mode = mode
        self.point = point
        self.baseline = baseline
        self.repeats = repeats.count
        mbps = median(repeats.map(\.mbps)) ?? 0
        iops = median(repeats.map(\.iops)) ?? 0
        let lats = repeats.compactMap(\.latency)
        if let p50 = median(lats.map(\.p50)), let p99 = median(lats.map(\.p99)), let p999 = median(lats.map(\.p999)) {
            latency = LatencySummary(p50: p50, p99: p99, p999: p999)
        }
        serverCPUPerGiB = median(repeats.compactMap(\.serverCPUPerGiB))
        serverCoreFraction = median(repeats.compactMap(\.serverCoreFraction))
        allocationsPerIO = median(repeats.compactMap(\.allocationsPerIO))
        var notes: [String] = []
        for n in repeats.compactMap(\.note) where !notes.contains(n) { notes.append(n) }
        note = notes.isEmpty ? nil : notes.joined(separator: "; ")
    }
}

extension BenchRow: Codable {
    enum CodingKeys: String, CodingKey {
        case mode, op, pattern, size, qd, clients, mbps, iops
        case p50_us, p99_us, p999_us, server_cpu_s_per_gib, server_cpu_core_fraction
        case baseline, ratio, p50_ratio, perftest_ratio, allocations_per_io, repeats, note
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mode, forKey: .mode)
        try c.encode(point.op, forKey: .op)
        try c.encode(point.pattern, forKey: .pattern)
        try c.encode(point.size, forKey: .size)
        try c.encode(point.qd, forKey: .qd)
        try c.encode(point.clients, forKey: .clients)
        try c.encode(Self.rounded(mbps), forKey: .mbps)
        try c.encode(Self.rounded(iops), forKey: .iops)
        try c.encode(latency.map { Self.rounded($0.p50) }, forKey: .p50_us)
        try c.encode(latency.map { Self.rounded($0.p99) }, forKey: .p99_us)
        try c.encode(latency.map { Self.rounded($0.p999) }, forKey: .p999_us)
        try c.encode(serverCPUPerGiB.map { Self.rounded($0, digits: 4) }, forKey: .server_cpu_s_per_gib)
        try c.encode(serverCoreFraction.map { Self.rounded($0, digits: 4) }, forKey: .server_cpu_core_fraction)
        try c.encode(baseline, forKey: .baseline)
        try c.encode(ratio.map { Self.rounded($0, digits: 3) }, forKey: .ratio)
        try c.encode(p50Ratio.map { Self.rounded($0, digits: 3) }, forKey: .p50_ratio)
        try c.encode(perftestRatio.map { Self.rounded($0, digits: 3) }, forKey: .perftest_ratio)
        try c.encode(allocationsPerIO.map { Self.rounded($0, digits: 2) }, forKey: .allocations_per_io)
        try c.encode(repeats, forKey: .repeats)
        try c.encode(note, forKey: .note)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mode = try c.decode(String.self, forKey: .mode)
        point = PointKey(op: try c.decode(BenchOp.self, forKey: .op), pattern: try c.decode(AccessPattern.self, forKey: .pattern),
                         size: try c.decode(Int.self, forKey: .size), qd: try c.decode(Int.self, forKey: .qd),
                         clients: try c.decode(Int.self, forKey: .clients))
        mbps = try c.decode(Double.self, forKey: .mbps)
        iops = try c.decode(Double.self, forKey: .iops)
        if let p50 = try c.decodeIfPresent(Double.self, forKey: .p50_us), let p99 = try c.decodeIfPresent(Double.self, forKey: .p99_us),
           let p999 = try c.decodeIfPresent(Double.self, forKey: .p999_us) {
            latency = LatencySummary(p50: p50, p99: p99, p999: p999)
        }
        serverCPUPerGiB = try c.decodeIfPresent(Double.self, forKey: .server_cpu_s_per_gib)
        serverCoreFraction = try c.decodeIfPresent(Double.self, forKey: .server_cpu_core_fraction)
        baseline = try c.decodeIfPresent(String.self, forKey: .baseline)
        ratio = try c.decodeIfPresent(Double.self, forKey: .ratio)
        p50Ratio = try c.decodeIfPresent(Double.self, forKey: .p50_ratio)
        perftestRatio = try c.decodeIfPresent(Double.self, forKey: .perftest_ratio)
        allocationsPerIO = try c.decodeIfPresent(Double.self, forKey: .allocations_per_io)
        repeats = try c.decodeIfPresent(Int.self, forKey: .repeats) ?? 1
        note = try c.decodeIfPresent(String.self, forKey: .note)
    }

    static func rounded(_ x: Double, digits: Int = 2) -> Double {
        guard x.isFinite else { return 0 }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        return (x * scale).rounded() / scale
    }
}
