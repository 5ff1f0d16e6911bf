import CoreMetrics
import DaxshareServer
import DaxshareWire
import Synchronization

/// Per-client gauges with a bounded label set: by identity, and only the identities the
/// configuration names (own secrets, administrators, export identity lists); every other
/// identity (chosen by the client, so unbounded) is counted as "other". Addresses and session
/// ids are never labels. Refreshed at each scrape.
final class IdentityGauges: Sendable {
    private struct State {
        var known: Set<String> = []
        /// Labels reported before: one no longer known is set to 0 once, then dropped.
        var reported: Set<String> = []
    }
    private let state = Mutex(State())

    static let other = "other"

    /// The identities to label from a configuration (again after each reload).
    func configure(_ c: ServerConfiguration) {
        var known = Set(c.secrets.keys).union(c.administrators)
        for e in c.exports { known.formUnion(e.identities ?? []) }
        state.withLock { $0.known = known }
    }

    /// Sets the gauges from the sessions now.
    func refresh(from clients: [ClientEntry]) {
        var totals: [String: (sessions: Int, layouts: Int, openFiles: Int)] = [:]
        let (known, stale) = state.withLock { s -> (Set<String>, Set<String>) in
            let labels = s.known.union([Self.other])
            defer { s.reported = labels }
            return (s.known, s.reported.subtracting(labels))
        }
        for label in known.union([Self.other]) { totals[label] = (0, 0, 0) }
        for c in clients {
            let label = known.contains(c.identity) ? c.identity : Self.other
            totals[label]!.sessions += 1
            totals[label]!.layouts += Int(c.layoutsHeld)
            totals[label]!.openFiles += Int(c.openFiles)
        }
        for label in stale { totals[label] = (0, 0, 0) }
        for (label, t) in totals {
            let dimensions = [("identity", label)]
            Gauge(label: "daxshare_identity_sessions", dimensions: dimensions).record(t.sessions)
            Gauge(label: "daxshare_identity_layouts", dimensions: dimensions).record(t.layouts)
            Gauge(label: "daxshare_identity_open_files", dimensions: dimensions).record(t.openFiles)
        }
    }
}
