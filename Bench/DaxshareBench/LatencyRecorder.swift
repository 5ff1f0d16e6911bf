import Histogram

/// Latencies of one run in nanoseconds (HdrHistogram, 3 significant digits, 1 ns to 1 hour).
/// One recorder per slot (no locking); merged at the end.
public struct LatencyRecorder: Sendable {
    public private(set) var histogram: Histogram<UInt64>

    public init() {
        histogram = Histogram(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
    }

    public mutating func record(nanoseconds: UInt64) {
        _ = histogram.record(Swift.max(1, Swift.min(nanoseconds, histogram.highestTrackableValue)))
    }

    public mutating func merge(_ other: LatencyRecorder) {
        histogram.add(other.histogram)
    }

    public var count: UInt64 { histogram.totalCount }

    /// p50, p99 and p99.9 in microseconds (nil without samples).
    public var summary: LatencySummary? {
        guard histogram.totalCount > 0 else { return nil }
        func us(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1000 }
        return LatencySummary(p50: us(50), p99: us(99), p999: us(99.9))
    }
}

/// Latency percentiles in microseconds.
public struct LatencySummary: Sendable, Equatable, Codable {
    public var p50: Double
    public var p99: Double
    public var p999: Double
    public init(p50: Double, p99: Double, p999: Double) {
        self.p50 = p50
        self.p99 = p99
        self.p999 = p999
    }
}

/// Median of a sample: the middle value, or the mean of the two middle ones.
public func median(_ values: [Double]) -> Double? {
    guard !values.isEmpty else { return nil }
    let s = values.sorted()
    let m = s.count / 2
    return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
