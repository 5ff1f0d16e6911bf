import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Logging
import Synchronization

/// What every connection shares: configuration, exports, the one open-file
/// table, the layouts by file, counters.
final class ServerContext: Sendable {
    let configuration: ServerConfiguration
    /// What a reload replaces (`Server.reload`): the exports by name and the secrets.
    struct Live {
        var exports: [String: Export]
        var secret: [UInt8]
        var secrets: [String: [UInt8]]
        var administrators: Set<String>
    }
    private let live: Mutex<Live>
    /// The server's connections now (set by `Server`; a test's context has none).
    private let connectionList = Mutex<(@Sendable () -> [ClientConnection])?>(nil)
    let files: FileTable
    let counters: ServerCounters
    let logger: Logger
    let layouts: LayoutRegistry
    let authLimiter: AuthRateLimiter
    private let baseNegotiateResponse: NegotiateResponse
    /// Whether the device serves one-sided RC on ODP memory, by device name (`odp_caps`).
    private let odpByDevice = Mutex<[String: (odp: Bool, flush: Bool)]>([:])

    /// Two-sided data moves through registered chunks this big, at most this many per connection
    /// (8 MiB). A quarter MiB, so a large READ overlaps the `pread` of one chunk with the RDMA
    /// WRITE of the one before.
    static let bounceChunkSize = 256 << 10
    static let bounceChunks = 32
    /// A two-sided READ this long or longer goes from the file's mapping straight to the wire
    /// (`ClientConnection.readMapped`): registering the range costs less than copying it.
    static let mappedReadMinimum = 64 << 10

    init(configuration: ServerConfiguration, exports: [String: Export], counters: ServerCounters, logger: Logger) {
        self.configuration = configuration
        self.live = Mutex(Live(
            exports: exports, secret: configuration.secret, secrets: configuration.secrets,
            administrators: configuration.administrators))
        self.counters = counters
        self.logger = logger
        self.authLimiter = AuthRateLimiter(burst: configuration.authFailureBurst, refill: configuration.authFailureRefill)
        let layouts = LayoutRegistry(
            deadlineMs: configuration.recallDeadlineMs, counters: counters, logger: logger,
            leases: configuration.fileLeases ? configuration.leaseKind : nil)
        self.layouts = layouts
        self.files = FileTable(logger: logger) { layouts.forget($0) }
        self.baseNegotiateResponse = NegotiateResponse(
            maxOutstandingRequests: 64, defaultRecallDeadlineMs: configuration.recallDeadlineMs,
            capabilities: [.layouts, .odp, .callbacks, .punchHole, .serverStats, .rdmaFlush], serverId: (0..<Limits.guidLength).map { _ in UInt8.random(in: 0...255) },
            maxBufferDescriptors: UInt16(Limits.maxBufferDescriptors), maxExtentsPerLayout: UInt16(Limits.maxExtentsPerLayout),
            maxPathLength: UInt16(Limits.maxPathLength), maxListEntries: UInt16(Limits.maxListEntries),
            maxOpenFiles: UInt32(configuration.maxOpenFiles), maxLayouts: UInt32(configuration.maxLayouts))
    }

    var maxOutstandingRequests: Int { Int(baseNegotiateResponse.maxOutstandingRequests) }

    func listConnections(with provider: @escaping @Sendable () -> [ClientConnection]) {
        connectionList.withLock { $0 = provider }
    }
    func connections() -> [ClientConnection] { connectionList.withLock { $0 }?() ?? [] }

    /// Whether `identity` may see every client (SERVER_CLIENTS), as configured now.
    func isAdministrator(_ identity: String) -> Bool { live.withLock { $0.administrators.contains(identity) } }

    /// The export named `name` now.
    func export(named name: String) -> Export? { live.withLock { $0.exports[name] } }

    /// The secret `identity` authenticates with now: its own, else the shared one (nil: none).
    func secret(for identity: String) -> [UInt8]? {
        live.withLock { l in l.secrets[identity] ?? (l.secret.isEmpty ? nil : l.secret) }
    }

    var exports: [String: Export] { live.withLock { $0.exports } }

    /// Applies a new set of exports and secrets to the running server, all or nothing: every new
    /// export's directory is opened first, and any failure leaves the server as it was.
    /// Established sessions stay; their trees see the change from their next request
    /// (PROTOCOL.md §4.6): a removed export answers EXPORT_REMOVED, and the layouts a change
    /// leaves without a right (all on a removed export, the RW ones on one made read-only) are
    /// recalled. An export whose directory changed is a removal and an addition.
    @discardableResult
    func reload(exports specs: [ServerConfiguration.ExportSpec], secret: [UInt8], secrets: [String: [UInt8]],
                administrators: Set<String> = []) async throws(ServerError) -> Server.ReloadSummary
    {
        try Server.check(exports: specs, secret: secret, secrets: secrets)
        let current = exports
        var opened: [String: Export] = [:]
        for spec in specs where current[spec.name].map({ $0.root != spec.path || $0.isWithdrawn }) ?? true {
            do { opened[spec.name] = try Server.open(spec, logger: logger) } catch {
                for e in opened.values { e.close() }
                throw error
            }
        }
        var summary = Server.ReloadSummary()
        var withdrawn: [Export] = []
        var madeReadOnly: [Export] = []
        live.withLock { live in
            summary.secretsChanged = live.secret != secret || live.secrets != secrets
            live.secret = secret
            live.secrets = secrets
            live.administrators = administrators
            var next: [String: Export] = [:]
            for spec in specs {
                if let fresh = opened[spec.name] {
                    if let old = live.exports[spec.name] { withdrawn.append(old); summary.removed.append(spec.name) }
                    summary.added.append(spec.name)
                    next[spec.name] = fresh
                } else if let kept = live.exports[spec.name] {
                    let policy = Export.Policy(readOnly: spec.readOnly, identities: spec.identities)
                    if kept.policy != policy {
                        if policy.readOnly && !kept.isReadOnly { madeReadOnly.append(kept) }
                        kept.policy = policy
                        summary.changed.append(spec.name)
                    }
                    next[spec.name] = kept
                }
            }
            for (name, old) in live.exports where next[name] == nil {
                withdrawn.append(old)
                summary.removed.append(name)
            }
            live.exports = next
        }
        for export in withdrawn { export.policy.withdrawn = true }
        // Each file once (several sessions may have it open): all its layouts if any export it
        // was opened through went away, else its RW ones.
        var byFile: [ObjectIdentifier: (layouts: FileLayouts, writesOnly: Bool)] = [:]
        let connections = self.connections()
        for export in withdrawn + madeReadOnly {
            let writesOnly = !export.isWithdrawn
            for connection in connections {
                for file in connection.sharedFiles(openedThrough: export) {
                    guard let layouts = layouts.existingLayouts(file.key) else { continue }
                    let id = ObjectIdentifier(layouts)
                    byFile[id] = (layouts, (byFile[id]?.writesOnly ?? true) && writesOnly)
                }
            }
        }
        let recalls = byFile.values.map { ($0.layouts, $0.writesOnly) }
        // All at once: each may wait up to the recall deadline for its holder.
        summary.layoutsRecalled = await withTaskGroup(of: Int.self) { group in
            for (layouts, writesOnly) in recalls {
                group.addTask { await layouts.recall(range: nil, except: nil, writesOnly: writesOnly, reason: .administrative).recalled }
            }
            return await group.reduce(0, +)
        }
        counters.add(ServerCounter.configReloads)
        logger.notice("configuration reloaded: \(summary)")
        for spec in specs where summary.added.contains(spec.name) {
            logger.info("export \(spec.name) = \(spec.path)\(spec.readOnly ? " (read-only)" : "")")
        }
        return summary
    }


    /// Whether `connection`'s device serves RC READ and WRITE on on-demand-paging memory (the
    /// only way fsdax memory registers), and RDMA FLUSH to persistence on it; asked once per device.
    func onDemandPaging(of connection: Connection) -> (odp: Bool, flush: Bool) {
        let name = connection.device.name
        return odpByDevice.withLock { cache -> (Bool, Bool) in
            if let known = cache[name] { return known }
            let attributes = try? connection.device.attributes()
            let supported = (attributes?.odp.supportsOneSidedRC ?? false, attributes?.flushesOnDemandMemory ?? false)
            cache[name] = supported
            if !supported.1 {
                logger.info("device \(name): RDMA FLUSH to persistence on ODP memory is not offered (\(Device.flushSupportDescription); device FLUSH_PERSISTENT \(attributes?.flushPersistent ?? false), ODP FLUSH \(attributes?.odp.rcFlush ?? false))")
            }
            return supported
        }
    }

    /// NEGOTIATE's answer on `connection`: layouts (and ODP) are offered only where its device
    /// can serve one-sided READ and WRITE on on-demand-paging memory, the only way fsdax
    /// memory registers; never without one (a connection served over a fake channel).
    /// RDMA_FLUSH only where the device also places FLUSH to persistence on such memory and this
    /// build has FLUSH (`DeviceAttributes.flushesOnDemandMemory`), and the configuration allows it.
    func negotiateResponse(for connection: Connection?) -> NegotiateResponse {
        var response = baseNegotiateResponse
        guard let connection else {
            response.capabilities.subtract([.layouts, .odp, .rdmaFlush])
            return response
        }
        let name = connection.device.name
        let (odp, flush) = onDemandPaging(of: connection)
        if !odp {
            response.capabilities.subtract([.layouts, .odp, .rdmaFlush])
            logger.notice("device \(name) has no RC on-demand paging: layouts are not offered")
        }
        if !flush || !configuration.rdmaFlush { response.capabilities.remove(.rdmaFlush) }
        return response
    }
}

/// The daxshare server: listens with rdma_cm, serves every connection on its
/// own task, and stops cleanly.
public final class Server: Sendable {
    public let configuration: ServerConfiguration
    public let counters = ServerCounters()
    private let context: ServerContext
    /// One per listen address (`ServerConfiguration.host`/`port`, then `alsoListen`).
    private let listeners: [Listener]
    /// Connections' completions and their two-sided data are served on these, one loop per
    /// connection (`ServerConfiguration.eventLoops`).
    private let loops: EventLoopGroup
    private let logger: Logger
    private struct State {
        var connections: [ObjectIdentifier: ClientConnection] = [:]
        var stopping = false
    }
    private let state = Mutex(State())

    /// Opens every export and binds the listener; nothing is served until `run`.
    public init(configuration: ServerConfiguration, logger: Logger = Logger(label: "daxshared")) throws {
        try Self.check(exports: configuration.exports, secret: configuration.secret, secrets: configuration.secrets)
        var exports: [String: Export] = [:]
        for spec in configuration.exports { exports[spec.name] = try Self.open(spec, logger: logger) }
        self.configuration = configuration
        self.logger = logger
        self.context = ServerContext(configuration: configuration, exports: exports, counters: counters, logger: logger)
        var listeners = [try Listener(host: configuration.host, port: configuration.port)]
        for (host, port) in configuration.alsoListen {
            do { listeners.append(try Listener(host: host, port: port)) } catch {
                for l in listeners { l.close() }
                throw error
            }
        }
        self.listeners = listeners
        self.loops = EventLoopGroup(name: "verbs-loop", count: configuration.eventLoops)
        context.listConnections { [weak self] in self?.state.withLock { Array($0.connections.values) } ?? [] }
        for spec in configuration.exports {
            logger.info("export \(spec.name) = \(spec.path)\(spec.readOnly ? " (read-only)" : "")")
        }
    }

    /// What start-up and a reload both refuse: no exports, one name twice, no secret, an empty one.
    static func check(exports specs: [ServerConfiguration.ExportSpec], secret: [UInt8], secrets: [String: [UInt8]])
        throws(ServerError)
    {
        guard !specs.isEmpty else { throw ServerError.configuration("no exports") }
        var seen = Set<String>()
        for spec in specs where !seen.insert(spec.name).inserted {
            throw ServerError.configuration("export '\(spec.name)' given twice")
        }
        guard !secret.isEmpty || !secrets.isEmpty else { throw ServerError.configuration("no secret") }
        if let (identity, _) = secrets.first(where: { $0.value.isEmpty }) {
            throw ServerError.configuration("the secret of '\(identity)' is empty")
        }
    }

    static func open(_ spec: ServerConfiguration.ExportSpec, logger: Logger) throws(ServerError) -> Export {
        do {
            return try Export(name: spec.name, root: spec.path, readOnly: spec.readOnly, identities: spec.identities, logger: logger)
        } catch {
            throw ServerError.configuration("export '\(spec.name)' (\(spec.path)): \(error)")
        }
    }

    /// What a reload changed, for the log and the metrics.
    public struct ReloadSummary: Sendable, Equatable, CustomStringConvertible {
        public var added: [String] = []
        public var removed: [String] = []
        /// Same directory, other read-only flag or identities.
        public var changed: [String] = []
        public var secretsChanged = false
        /// Layouts recalled because an export went away or became read-only.
        public var layoutsRecalled = 0

        public var description: String {
            func list(_ names: [String]) -> String { names.isEmpty ? "none" : names.sorted().joined(separator: ",") }
            return "exports added \(list(added)), removed \(list(removed)), changed \(list(changed)); secrets \(secretsChanged ? "changed" : "unchanged")"
        }
    }

    /// Applies a new set of exports and secrets to the running server (`ServerContext.reload`).
    @discardableResult
    public func reload(exports specs: [ServerConfiguration.ExportSpec], secret: [UInt8], secrets: [String: [UInt8]],
                       administrators: Set<String> = []) async throws(ServerError) -> ReloadSummary
    {
        try await context.reload(exports: specs, secret: secret, secrets: secrets, administrators: administrators)
    }

    /// Every established session as SERVER_CLIENTS lists it (the metrics' per-identity gauges).
    public func clientEntries() -> [ClientEntry] { context.connections().compactMap { $0.clientEntry() } }

    /// The exports served now (a reload changes them).
    public var exportNames: [String] { context.exports.keys.sorted() }

    /// The address actually bound (port 0 picks one): the first listen address's.
    public var address: SocketAddress { listeners[0].address }
    /// Every address bound, in the configuration's order.
    public var addresses: [SocketAddress] { listeners.map(\.address) }

    /// Accepts and serves connections on every listen address until `stop()`; returns once
    /// every connection has been closed.
    public func run() async {
        logger.info("listening on \(addresses.map { "\($0)" }.joined(separator: ", "))")
        await withDiscardingTaskGroup { group in
            for listener in listeners {
                group.addTask { [self] in await accept(from: listener) }
            }
        }
        logger.info("stopped")
    }

    private func accept(from listener: Listener) async {
        await withDiscardingTaskGroup { group in
            for await request in listener.requests {
                let refusal: ConnectPrivateData.RejectReason? = state.withLock { s in
                    if s.stopping { return .shuttingDown }
                    if s.connections.count >= configuration.maxConnections { return .tooManyConnections }
                    return nil
                }
                if let refusal {
                    logger.notice("refused connection from \(request.peer): \(refusal == .shuttingDown ? "shutting down" : "too many connections")")
                    request.reject(privateData: (try? ConnectPrivateData(kind: .reject, reason: refusal).encode()) ?? [])
                    continue
                }
                group.addTask { [self] in await serve(request) }
            }
        }
    }

    private func serve(_ request: ConnectionRequest) async {
        let channel: MessageChannel
        do {
            channel = try await MessageChannel.accept(request, config: configuration.transport, loop: loops.nextLoop(), logger: logger)
        } catch {
            logger.warning("connection from \(request.peer) failed to set up: \(error)")
            return
        }
        let connection = ClientConnection(channel: channel, server: context)
        let id = ObjectIdentifier(connection)
        let admitted = state.withLock { s -> Bool in
            if s.stopping { return false }
            s.connections[id] = connection
            return true
        }
        guard admitted else { channel.close(reason: "server stopping"); return }
        counters.add(ServerCounter.connections)
        await connection.serve()
        counters.subtract(ServerCounter.connections)
        state.withLock { _ = $0.connections.removeValue(forKey: id) }
    }

    /// Stops accepting, closes every connection (in-flight requests fail on
    /// their closed channels), and lets `run` return. Idempotent.
    public func stop() {
        let connections = state.withLock { s -> [ClientConnection] in
            s.stopping = true
            return Array(s.connections.values)
        }
        logger.info("stopping: closing \(connections.count) connection(s)")
        for listener in listeners { listener.close() }
        for c in connections { c.close(reason: "server stopping") }
    }
}
