import DaxshareWire
import Synchronization

/// The counters an operator (and the tests) read through SERVER_STATS: what
/// moved which way, and what is live. Names are the protocol's (`ServerCounter`).
public final class ServerCounters: Sendable {
    private let values = Mutex<[String: UInt64]>(Dictionary(uniqueKeysWithValues: ServerCounter.all.map { ($0, 0) }))

    public init() {}

    public func add(_ name: String, _ delta: UInt64 = 1) {
        values.withLock { $0[name, default: 0] &+= delta }
    }

    public func subtract(_ name: String, _ delta: UInt64 = 1) {
        values.withLock { v in
            let now = v[name, default: 0]
            v[name] = now >= delta ? now - delta : 0
        }
    }

    public subscript(name: String) -> UInt64 { values.withLock { $0[name, default: 0] } }

    /// A snapshot in the protocol's order.
    public func snapshot() -> [Counter] {
        values.withLock { v in ServerCounter.all.map { Counter(name: $0, value: v[$0, default: 0]) } }
    }
}
