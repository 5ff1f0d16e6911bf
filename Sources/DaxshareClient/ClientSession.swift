import DaxshareTransport
import DaxshareWire

/// A connected, authenticated session on one export of a daxshare server: the client half of
/// PROTOCOL.md §3–4.
///
/// `connect` opens the RDMA message channel (transport negotiate included), then runs
/// NEGOTIATE, SESSION_SETUP (challenge–response on the pre-shared secret, verifying the
/// server's proof too) and TREE_CONNECT. After that, any number of operations may run
/// concurrently: the dispatcher matches responses by message id, up to the server's
/// `maxOutstandingRequests` at once.
///
/// Paths are relative to the export root, `/`-separated, without a leading `/`; the empty path
/// is the root. Every failure is a `ClientError`; a non-OK status is `.status(status, command)`.
public final class ClientSession: Sendable {
    public let export: String
    public let treeId: UInt32
    public let treeFlags: TreeFlags
    public let sessionId: UInt64
    /// The server's NEGOTIATE answer: capabilities and limits.
    public let server: NegotiateResponse
    public let configuration: ClientConfiguration
    /// How open files move their bytes: `LayoutDataPath` (one-sided, falling back to two-sided
    /// per I/O) when both sides agreed to layouts, else `TwoSidedDataPath`. See `DataPath`.
    public let dataPath: any DataPath
    let dispatcher: RequestDispatcher
    let callerBuffers: CallerBuffers

    /// Unsolicited server messages, after the session has acknowledged them. See `ServerCallback`.
    public var callbacks: AsyncStream<ServerCallback> { dispatcher.callbacks }

    /// Largest READ/WRITE the server accepts in one request (negotiated by the transport).
    public var maxReadWriteSize: Int { dispatcher.transport.maxReadWriteSize }

    // MARK: Registered memory

    /// Registers `buffer` with this session's connection (`ibv_reg_mr`) so that every read
    /// into it and write from it, one- or two-sided, moves between it and the server with no
    /// copy (see `CallerBuffers`). Registration pins the pages and costs a system call: do it
    /// once per buffer and reuse it. The memory must stay allocated until `deregister`.
    public func register(_ buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> BufferRegistration {
        try callerBuffers.register(buffer)
    }

    /// Registers `buffer` for writes from it only (`ibv_reg_mr` with remote-read access and no
    /// write access): what a read-only mapping of a file can be (`put` registers the file's
    /// pages this way). Reads into it still go through staging copies.
    public func register(readOnly buffer: UnsafeRawBufferPointer) throws(ClientError) -> BufferRegistration {
        try callerBuffers.register(readOnly: buffer)
    }

    /// Ends a registration; I/O into the buffer goes through staging copies again.
    public func deregister(_ registration: BufferRegistration) {
        callerBuffers.deregister(registration)
    }

    private init(export: String, treeId: UInt32, treeFlags: TreeFlags, sessionId: UInt64, server: NegotiateResponse,
                 configuration: ClientConfiguration, dataPath: any DataPath, dispatcher: RequestDispatcher,
                 callerBuffers: CallerBuffers) {
        self.callerBuffers = callerBuffers
        self.export = export
        self.treeId = treeId
        self.treeFlags = treeFlags
        self.sessionId = sessionId
        self.server = server
        self.configuration = configuration
        self.dataPath = dataPath
        self.dispatcher = dispatcher
    }

    // MARK: Connecting

    /// Connects to `host:port` over RDMA and sets up a session on `export`.
    public static func connect(
        host: String, port: UInt16 = DaxshareURL.defaultPort, export: String, secret: SessionSecret,
        config configuration: ClientConfiguration = .init()
    ) async throws(ClientError) -> ClientSession {
        let channel: MessageChannel
        do {
            channel = try await MessageChannel.connect(host: host, port: port, config: configuration.transport,
                                                      loop: configuration.eventLoop,
                                                      flushOperations: configuration.advertisedCapabilities.contains(.rdmaFlush))
        } catch {
            throw ClientError(transportFailure: error)
        }
        return try await establish(over: channel, registrar: VerbsBufferRegistrar(domain: channel.connection.domain),
                                   remoteAccess: VerbsRemoteAccess(connection: channel.connection),
                                   export: export, secret: secret, config: configuration)
    }

    /// Connects to the server and export a URL names; its `IDENTITY@`, if any, overrides the
    /// configuration's identity.
    public static func connect(
        to url: DaxshareURL, secret: SessionSecret, config configuration: ClientConfiguration = .init()
    ) async throws(ClientError) -> ClientSession {
        var config = configuration
        if let identity = url.identity { config.identity = identity }
        return try await connect(host: url.host, port: url.port, export: url.export, secret: secret, config: config)
    }

    /// Runs the upper-layer handshake over an established transport (the real channel, or a
    /// test's fake). On failure the transport is closed. Without `remoteAccess` (how to post
    /// one-sided RDMA on this connection) the session never takes layouts.
    public static func establish(
        over transport: any MessageTransport, registrar: any BufferRegistrar, remoteAccess: (any RemoteMemoryAccess)? = nil,
        export: String, secret: SessionSecret,
        config configuration: ClientConfiguration = .init()
    ) async throws(ClientError) -> ClientSession {
        guard configuration.queueDepth >= 1 else { throw .invalidArgument("queue depth must be at least 1") }
        guard configuration.layouts.queueDepth >= 1, configuration.layouts.maxWorkRequest >= 1,
              configuration.layouts.window >= UInt64(ChunkPlan.pageSize), configuration.layouts.window % UInt64(ChunkPlan.pageSize) == 0
        else { throw .invalidArgument("layout queue depth, work request size and window must be positive (the window whole pages)") }
        let dispatcher = RequestDispatcher(transport: transport, acknowledger: configuration.recallAcknowledger)
        dispatcher.start()
        do throws(ClientError) {
            // NEGOTIATE: dialect, capabilities, the server's limits.
            guard case let .negotiate(server) = try await dispatcher.call(
                .negotiate(NegotiateRequest(capabilities: configuration.advertisedCapabilities(flushing: remoteAccess?.canFlush == true),
                                            clientId: configuration.clientId)))
            else { throw ClientError.protocol("NEGOTIATE answered with another body") }
            guard server.dialect == Limits.version1 else {
                throw ClientError.protocol("the server chose dialect 0x\(String(server.dialect, radix: 16)), not 1.0")
            }
            dispatcher.outstanding.setPermits(Int(server.maxOutstandingRequests))

            // SESSION_SETUP round 1: our nonce; the server's nonce and the session id.
            let identity = configuration.identity
            let clientNonce = SessionProof.nonce()
            let challenge = try await dispatcher.exchange(.sessionSetup(.begin(identity: identity, clientNonce: clientNonce)))
            guard case let .sessionSetup(.challenge(serverNonce)) = try RequestDispatcher.successBody(of: challenge) else {
                throw ClientError.protocol("SESSION_SETUP round 1 answered without a challenge")
            }
            let sessionId = challenge.sessionId
            guard sessionId != 0 else { throw ClientError.protocol("SESSION_SETUP assigned session id 0") }
            dispatcher.sessionId = sessionId

            // Round 2: prove we know the secret; the server proves it too.
            let proof = SessionProof.client(secret: secret, sessionId: sessionId, serverNonce: serverNonce,
                                            clientNonce: clientNonce, identity: identity)
            guard case let .sessionSetup(.confirmed(serverProof)) = try await dispatcher.call(.sessionSetup(.proof(clientProof: proof)))
            else { throw ClientError.protocol("SESSION_SETUP round 2 answered without a proof") }
            let expected = SessionProof.server(secret: secret, sessionId: sessionId, serverNonce: serverNonce,
                                               clientNonce: clientNonce, identity: identity)
            guard SessionProof.equalInConstantTime(serverProof, expected) else {
                throw ClientError.authentication("the server's proof does not match: it does not know our secret")
            }

            // TREE_CONNECT.
            guard case let .treeConnect(tree) = try await dispatcher.call(.treeConnect(TreeConnectRequest(exportName: export)))
            else { throw ClientError.protocol("TREE_CONNECT answered with another body") }

            let geometry = ChunkPlan.bounceGeometry(maxReadWriteSize: transport.maxReadWriteSize,
                                                    budget: configuration.bounceBufferBytes,
                                                    queueDepth: configuration.queueDepth)
            let pool = BouncePool(registrar: registrar, slotSize: geometry.slotSize, slotCount: geometry.slotCount)
            let callerBuffers = CallerBuffers(registrar: registrar)
            let twoSided = TwoSidedDataPath(dispatcher: dispatcher, pool: pool, queueDepth: configuration.queueDepth,
                                            callerBuffers: callerBuffers)
            var dataPath: any DataPath = twoSided
            if configuration.useLayouts, let remoteAccess, server.capabilities.isSuperset(of: [.layouts, .callbacks]) {
                let settings = configuration.layouts
                let staging = BouncePool(registrar: registrar, slotSize: settings.maxWorkRequest, slotCount: settings.queueDepth)
                let layouts = LayoutDataPath(dispatcher: dispatcher, twoSided: twoSided, access: remoteAccess,
                                             staging: staging, settings: settings, callerBuffers: callerBuffers,
                                             flushAgreed: server.capabilities.contains(.rdmaFlush))
                dispatcher.setAcknowledger { [weak layouts] recall in layouts?.acknowledge(recall) ?? .badStateid }
                dataPath = layouts
            }
            return ClientSession(export: export, treeId: tree.treeId, treeFlags: tree.flags, sessionId: sessionId,
                                 server: server, configuration: configuration, dataPath: dataPath, dispatcher: dispatcher,
                                 callerBuffers: callerBuffers)
        } catch {
            dispatcher.shutdown(error, reason: "session setup failed: \(error)")
            throw error
        }
    }

    // MARK: Namespace

    /// Attributes of `path` (lstat: a symlink is described, not followed). "" is the root.
    public func stat(_ path: String) async throws(ClientError) -> FileAttributes {
        guard case let .stat(a) = try await dispatcher.call(.stat(.path(treeId: treeId, path: path))) else {
            throw .protocol("STAT answered with another body")
        }
        return a
    }

    /// One page of a directory listing. Pass 0 first, then the previous page's `nextCookie`
    /// until a page `isEnd`.
    public func listPage(_ path: String, cookie: UInt64 = 0, maxEntries: UInt16? = nil) async throws(ClientError) -> ListResponse {
        let n = min(maxEntries ?? configuration.listPageSize, server.maxListEntries)
        guard case let .list(page) = try await dispatcher.call(
            .list(ListRequest(treeId: treeId, maxEntries: max(1, n), cookie: cookie, path: path)))
        else { throw .protocol("LIST answered with another body") }
        return page
    }

    /// The whole directory, following pages to the end, in the server's order.
    public func list(_ path: String) async throws(ClientError) -> [ListEntry] {
        var entries: [ListEntry] = []
        var cookie: UInt64 = 0
        while true {
            let page = try await listPage(path, cookie: cookie)
            entries += page.entries
            if page.isEnd { return entries }
            cookie = page.nextCookie
        }
    }

    /// Opens (or with `.create`, creates) a regular file.
    public func open(_ path: String, flags: OpenFlags = [.read], mode: UInt32 = 0o644) async throws(ClientError) -> RemoteFile {
        guard case let .open(reply) = try await dispatcher.call(
            .open(OpenRequest(treeId: treeId, flags: flags, mode: mode, path: path)))
        else { throw .protocol("OPEN answered with another body") }
        return RemoteFile(session: self, path: path, fileId: reply.fileId, flags: flags, attributes: reply.attributes)
    }

    /// Removes a file, or an empty directory with `directory: true`.
    public func remove(_ path: String, directory: Bool = false) async throws(ClientError) {
        _ = try await dispatcher.call(.unlink(UnlinkRequest(treeId: treeId, flags: directory ? [.directory] : [], path: path)))
    }

    /// Renames within the export; with `replace: false` an existing target gives `.exists`.
    public func rename(from: String, to: String, replace: Bool = true) async throws(ClientError) {
        _ = try await dispatcher.call(.rename(RenameRequest(treeId: treeId, flags: replace ? [] : [.noReplace], from: from, to: to)))
    }

    /// Creates a directory with permission bits `mode` (≤ 0o7777; the server's umask applies,
    /// as for a created file) and returns its attributes. Durable when it returns. An existing
    /// name gives `.exists`, a missing parent `.notFound`, a read-only export `.readOnly`; a
    /// server that predates MKDIR `.status(.notSupported, .mkdir)`.
    public func makeDirectory(_ path: String, mode: UInt32 = 0o755) async throws(ClientError) -> FileAttributes {
        guard mode & ~0o7777 == 0 else { throw .invalidArgument("mode 0o\(String(mode, radix: 8)) is not a set of permission bits") }
        guard case let .mkdir(a) = try await dispatcher.call(.mkdir(MkdirRequest(treeId: treeId, mode: mode, path: path))) else {
            throw .protocol("MKDIR answered with another body")
        }
        return a
    }

    /// Changes the permission bits and times of `path` itself (a final symlink is not
    /// followed; "" is the export root) and returns its attributes after the change; durable
    /// when it returns. Pending one-sided writes of a file this session has open are not
    /// committed first (their LAYOUTCOMMIT would set the modification time to its own "now"):
    /// use `RemoteFile.setAttributes` on an open file. A mode on a symlink gives
    /// `.notSupported`, as does a server that predates SET_ATTRIBUTES.
    public func setAttributes(_ path: String, _ change: AttributeChange) async throws(ClientError) -> FileAttributes {
        try Self.check(change)
        guard case let .setAttributes(a) = try await dispatcher.call(
            .setAttributes(SetAttributesRequest(.path(treeId: treeId, path: path), change)))
        else { throw .protocol("SET_ATTRIBUTES answered with another body") }
        return a
    }

    static func check(_ change: AttributeChange) throws(ClientError) {
        if let mode = change.mode, mode & ~0o7777 != 0 {
            throw .invalidArgument("mode 0o\(String(mode, radix: 8)) is not a set of permission bits")
        }
    }

    /// The space and inodes of the file system the export is on (`statvfs` on the server).
    /// A server that predates STATFS gives `.status(.notSupported, .statfs)`.
    public func fileSystemStatistics() async throws(ClientError) -> FileSystemStatistics {
        guard case let .statfs(s) = try await dispatcher.call(.statfs(StatfsRequest(treeId: treeId))) else {
            throw .protocol("STATFS answered with another body")
        }
        return s
    }

    /// Sets a file's size (shrinking or growing with zeros); durable when it returns.
    /// With `create`, a missing file is created first.
    public func truncate(_ path: String, to size: UInt64, create: Bool = false) async throws(ClientError) -> FileAttributes {
        let file = try await open(path, flags: create ? [.write, .create] : [.write])
        do throws(ClientError) {
            let attributes = try await file.setSize(size)
            try await file.close()
            return attributes
        } catch {
            try? await file.close()
            throw error
        }
    }

    /// The server's counters (whole server): bytes moved two-sided, layouts, connections.
    public func serverStats() async throws(ClientError) -> [Counter] {
        guard case let .serverStats(s) = try await dispatcher.call(.serverStats) else {
            throw .protocol("SERVER_STATS answered with another body")
        }
        return s.counters
    }

    /// The connected clients (SERVER_CLIENTS, PROTOCOL.md §4.9.1): every one if this session's
    /// identity is one of the server's administrators, else this session only.
    public func serverClients() async throws(ClientError) -> ServerClientsResponse {
        guard case let .serverClients(r) = try await dispatcher.call(.serverClients) else {
            throw .protocol("SERVER_CLIENTS answered with another body")
        }
        return r
    }

    /// Sends bytes and returns what came back (a liveness check above the transport).
    public func echo(_ data: [UInt8] = []) async throws(ClientError) -> [UInt8] {
        guard case let .echo(e) = try await dispatcher.call(.echo(EchoMessage(data: data))) else {
            throw .protocol("ECHO answered with another body")
        }
        return e.data
    }

    /// Ends the session on the server (its trees and files are closed); the connection stays.
    public func logoff() async throws(ClientError) {
        _ = try await dispatcher.call(.logoff)
    }

    /// LOGOFF (best effort) and disconnect. Requests still waiting fail with "session closed".
    public func close() async {
        if dispatcher.router.closedError == nil { try? await logoff() }
        dispatcher.shutdown(.transport("the session was closed"), reason: "client closed the session")
    }
}
