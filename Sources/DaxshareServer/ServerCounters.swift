import CoreMetrics
import DaxsharePmem
import DaxshareWire
import Synchronization

/// The counters an operator (and the tests) read through SERVER_STATS: what
/// moved which way, and what is live. Names are the protocol's (`ServerCounter`).
///
/// Each is also reported through swift-metrics, as `daxshare_NAME_total` (a counter) or
/// `daxshare_NAME` (a gauge, for what is live): a no-op until the process bootstraps a
/// backend before making the server (daxshared's Prometheus endpoint).
public final class ServerCounters: Sendable {
    private let values = Mutex<[String: UInt64]>(Dictionary(uniqueKeysWithValues: ServerCounter.all.map { ($0, 0) }))
    private let metricCounters: [String: CoreMetrics.Counter]
    private let metricGauges: [String: CoreMetrics.Gauge]

    /// The counters that say what is live now (they go down as well as up).
    public static let gauges: Set<String> = [
        ServerCounter.layoutsLive, ServerCounter.mrsLive, ServerCounter.openFiles, ServerCounter.connections,
        ServerCounter.sessions, ServerCounter.recallsInProgress, ServerCounter.bytesRegistered,
    ]

    public init() {
        var counters: [String: CoreMetrics.Counter] = [:]
        var gauges: [String: CoreMetrics.Gauge] = [:]
        for name in ServerCounter.all {
            if Self.gauges.contains(name) {
                gauges[name] = Gauge(label: "daxshare_\(name)")
            } else {
                counters[name] = CoreMetrics.Counter(label: "daxshare_\(name)_total")
            }
        }
        metricCounters = counters
        metricGauges = gauges
    }

    public func add(_ name: String, _ delta: UInt64 = 1) {
        values.withLock { v in
            v[name, default: 0] &+= delta
            metricGauges[name]?.record(Int64(clamping: v[name]!))
        }
        metricCounters[name]?.increment(by: Int64(clamping: delta))
    }

    /// Only for the gauges (`gauges`): a counter never goes down.
    public func subtract(_ name: String, _ delta: UInt64 = 1) {
        assert(Self.gauges.contains(name), "\(name) is a counter")
        values.withLock { v in
            let now = v[name, default: 0]
            v[name] = now >= delta ? now - delta : 0
            metricGauges[name]?.record(Int64(clamping: v[name]!))
        }
    }

    /// A recall's duration, from its start to the last layout returned or fenced, by reason
    /// (8 reasons: the histogram's labels stay few).
    func recallTook(_ duration: Duration, reason: RecallReason) {
        CoreMetrics.Timer(label: "daxshare_recall_duration_seconds", dimensions: [("reason", "\(reason)")])
            .recordNanoseconds(duration.nanoseconds)
    }

    public subscript(name: String) -> UInt64 {
        if name == ServerCounter.pmemPersists { return PmemMapping.persistCalls.load(ordering: .relaxed) }
        return values.withLock { $0[name, default: 0] }
    }

    /// A snapshot in the protocol's order. pmem_persists is the process's (`PmemMapping.persistCalls`).
    public func snapshot() -> [WireCounter] {
        let persists = PmemMapping.persistCalls.load(ordering: .relaxed)
        return values.withLock { v in
            ServerCounter.all.map { WireCounter(name: $0, value: $0 == ServerCounter.pmemPersists ? persists : v[$0, default: 0]) }
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}
