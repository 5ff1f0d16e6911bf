import DaxshareWire

/// Everything about a client session that is not the server's address, export or secret.
/// The defaults suit the CLI; the benchmarks vary `queueDepth` and `bounceBufferBytes`.
public struct ClientConfiguration: Sendable {
    /// Credits, message sizes and reassembly limit (PROTOCOL.md §2.11 defaults).
    public var transport = TransportConfig()
    /// Which of the server's secrets to use; empty for its default secret.
    public var identity = ""
    /// What this client supports. LAYOUTS, ODP and CALLBACKS are not advertised until the
    /// layout engine exists: a server grants layouts only to a client that says it handles
    /// recalls.
    public var capabilities: Capabilities = [.punchHole, .dax, .serverStats]
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
    /// How CB_LAYOUTRECALL is acknowledged. Without layouts the client holds nothing a server
    /// could recall, so the answer is BAD_STATEID ("I hold no such layout").
    public var recallAcknowledger: RecallAcknowledger = { _ in .badStateid }

    public init() {}

    /// Random per process.
    public static let processClientId: [UInt8] = {
        var g = SystemRandomNumberGenerator()
        return (0..<Limits.guidLength).map { _ in UInt8.random(in: .min ... .max, using: &g) }
    }()
}
