import DaxshareVerbs
import DaxshareWire

/// Everything about a client session that is not the server's address, export or secret.
/// The defaults suit the CLI; the benchmarks vary `queueDepth` and `bounceBufferBytes`.
public struct ClientConfiguration: Sendable {
    /// Credits, message sizes and reassembly limit (PROTOCOL.md §2.11 defaults).
    public var transport = TransportConfig()
    /// The thread the connection's completions arrive on. A busy-polling loop
    /// (`EventLoop(name:waiting: .busyPolling)`, the CLI's `--poll`) spins on it while the
    /// session lives, for latency. Tasks that run with it as executor preference (as `get` and
    /// `put` run their batches) resume from a completion without a hop to the pool.
    public var eventLoop: EventLoop = .shared
    /// Which of the server's secrets to use; empty for its default secret.
    public var identity = ""
    /// What this client supports. LAYOUTS, ODP and CALLBACKS are advertised only while
    /// `useLayouts` is set (a server grants layouts only to a client that says it handles
    /// recalls).
    public var capabilities: Capabilities = Capabilities.allV1.union(.rdmaFlush)
    /// Move file data one-sided through layouts (PROTOCOL.md §5) when the server agrees to
    /// LAYOUTS and CALLBACKS; false forces the two-sided path (`--two-sided`).
    public var useLayouts = true
    /// The one-sided path: queue depth, work request size, layout window, retries, and the
    /// test-only switch that makes the client ignore recalls.
    public var layouts = LayoutSettings()
    /// 16 bytes, the same for every session of this process (the server's logs and limits
    /// recognise a reconnecting client by it).
    public var clientId: [UInt8] = ClientConfiguration.processClientId
    /// READ/WRITE requests one transfer keeps in flight.
    public var queueDepth = 4
    /// Registered bounce memory per session, split into `queueDepth` slots (each also at most
    /// the server's maxReadWriteSize).
    public var bounceBufferBytes = 4 << 20
    /// Entries asked for per LIST page (the server may send fewer).
    public var listPageSize: UInt16 = 1024
    /// How CB_LAYOUTRECALL is acknowledged while the session holds no layouts: it holds
    /// nothing a server could recall, so the answer is BAD_STATEID ("I hold no such layout").
    /// A session that takes layouts installs the layout engine's acknowledger instead.
    public var recallAcknowledger: RecallAcknowledger = { _ in .badStateid }

    public init() {}

    /// The capabilities NEGOTIATE advertises: without `useLayouts`, none of the layout bits;
    /// RDMA_FLUSH only with `layouts.flushCommits` (and, at NEGOTIATE, a queue pair that can
    /// post FLUSH: `advertisedCapabilities(flushing:)`).
    public var advertisedCapabilities: Capabilities {
        var c = useLayouts ? capabilities : capabilities.subtracting([.layouts, .callbacks, .odp, .rdmaFlush])
        if !layouts.flushCommits { c.remove(.rdmaFlush) }
        return c
    }

    /// What NEGOTIATE advertises on a connection whose queue pair can (or cannot) post FLUSH.
    public func advertisedCapabilities(flushing canFlush: Bool) -> Capabilities {
        canFlush ? advertisedCapabilities : advertisedCapabilities.subtracting(.rdmaFlush)
    }

    /// The environment variable that sets `layouts.ignoreRecallsForTesting` in the CLI. TEST
    /// ONLY: a client that ignores recalls gets fenced and loses its uncommitted writes.
    public static let ignoreRecallsVariable = "DAXSHARE_TEST_IGNORE_RECALLS"

    /// Random per process.
    public static let processClientId: [UInt8] = {
        var g = SystemRandomNumberGenerator()
        return (0..<Limits.guidLength).map { _ in UInt8.random(in: .min ... .max, using: &g) }
    }()
}
