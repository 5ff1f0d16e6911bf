import DaxsharePmem
import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Logging
import Synchronization

/// One client's connection: its channel, its session (authentication, trees, open files,
/// layouts) and the loop that reads its requests (PROTOCOL.md §3.4).
///
/// Session commands (NEGOTIATE, SESSION_SETUP, LOGOFF, TREE_CONNECT, TREE_DISCONNECT), every
/// request before authentication, and LAYOUTRETURN are served by the loop itself, in order.
/// Everything else runs on a task of its own, up to `maxOutstandingRequests` at once (one more
/// gets TOO_MANY), so a request that waits for a recall holds up nothing else on the
/// connection. A message that does not decode gets BAD_MESSAGE (when its header can be read)
/// and closes this connection only; an unknown command gets NOT_SUPPORTED.
///
/// Its transport is a `RequestChannel` (a `MessageChannel`, or a fake in host unit tests), and
/// the RDMA it does itself is a `ConnectionRDMA` (none with a fake).
final class ClientConnection: Sendable {
    let channel: any RequestChannel
    let server: ServerContext
    let logger: Logger
    private let files: SessionFiles
    private let layouts: SessionLayouts
    private let rdma: ConnectionRDMA?
    private let maxOutstanding: Int

    private struct PendingAuth {
        var sessionId: UInt64
        var serverNonce: [UInt8]
        var clientNonce: [UInt8]
        var identity: String
    }
    /// Written by the loop (session commands), read by request tasks.
    private struct Session {
        var id: UInt64 = 0
        var authenticated = false
        /// The identity the session authenticated as (exports may name who may use them).
        var identity = ""
        var establishedAt: ContinuousClock.Instant?
        var pendingAuth: PendingAuth?
        var authFailures = 0
        var negotiated = false
        /// What NEGOTIATE agreed: the client's capabilities and the server's (§4.3).
        var agreed: Capabilities = []
        /// A reply that ends the connection once sent (NEGOTIATE without a common dialect).
        var closeAfterReply: String?
        var trees: [UInt32: Export] = [:]
        var nextTree: UInt32 = 1
        /// Counts session set-up deadlines armed; an older one finds it moved on.
        var deadlineGeneration = 0
        /// The armed deadline's task, cancelled once the session is set up so that an idle
        /// connection has nothing left to wake for.
        var deadline: Task<Void, Never>?
        var inFlight = 0
    }
    private let session = Mutex(Session())
    /// The session's id for callbacks, which a recalling task sends.
    private let sessionId = SessionIDBox()
    /// Two-sided bytes this connection moved (SERVER_CLIENTS), beside the server's totals.
    private let traffic = Traffic()
    /// Callbacks sent and not yet answered (§2.10: a reply to anything else is a violation).
    private let callbacks = OutstandingCallbacks()

    /// A connection over RDMA: its channel, and the verbs connection under it for the server's own RDMA.
    convenience init(channel: MessageChannel, server: ServerContext) {
        let rdma = ConnectionRDMA(
            connection: channel.connection, maxReadWriteSize: channel.negotiated.maxReadWriteSize,
            readsFromMappings: server.onDemandPaging(of: channel.connection).odp)
        self.init(channel: channel, rdma: rdma, server: server)
    }

    /// A connection over any channel; without `rdma`, two-sided READ and WRITE answer
    /// NOT_SUPPORTED and NEGOTIATE offers no layouts.
    init(channel: any RequestChannel, rdma: ConnectionRDMA?, server: ServerContext) {
        self.channel = channel
        self.rdma = rdma
        self.server = server
        var logger = server.logger
        logger[metadataKey: "peer"] = "\(channel.peerAddress)"
        self.logger = logger
        self.files = SessionFiles(maxOpenFiles: server.configuration.maxOpenFiles)
        self.maxOutstanding = server.maxOutstandingRequests
        let sessionId = self.sessionId
        let callbacks = self.callbacks
        self.layouts = SessionLayouts(
            domain: rdma?.domain, registry: server.layouts, counters: server.counters, logger: logger,
            maxLayouts: server.configuration.maxLayouts,
            prefetch: server.configuration.layoutPrefetch, peer: "\(channel.peerAddress)"
        ) { [channel, logger] messageId, callback in
            let message = Message(messageId: messageId, sessionId: sessionId.value.load(ordering: .acquiring), body: .callback(callback))
            callbacks.sent(messageId)
            do { try await channel.send(try message.encode()) } catch {
                logger.debug("could not send \(callback.command): \(error)")
            }
        }
    }

    /// Serves until the client leaves, breaks the protocol, or the server stops; then waits
    /// for its request tasks and drops everything the session held.
    ///
    /// Its loop (receiving, in-order commands) and its READ and WRITE requests run on the
    /// connection's event loop: a completion resumes them on the thread that polled it, and
    /// a two-sided transfer costs no hop between threads. Requests that may block for long
    /// (FLUSH, LAYOUTCOMMIT, a truncate, a recall…) run on the shared pool.
    func serve() async {
        await withTaskExecutorPreference(rdma?.connection.eventLoop) { await serveConnection() }
    }

    private func serveConnection() async {
        logger.info("connected")
        armSessionDeadline()
        await withDiscardingTaskGroup { group in
            let reason: String
            do {
                try await take(channel.messages, group: &group)
                logger.info("disconnected")
                reason = "closed locally"
            } catch {
                server.counters.add(ServerCounter.protocolViolations, isViolation(error) ? 1 : 0)
                logger.warning("connection closed: \(error)")
                reason = "\(error)"
            }
            // Requests still running fail on the closed channel (or finish their recall wait).
            channel.close(reason: reason)
        }
        release()
    }

    /// Takes the client's messages until they end or one ends the connection (it throws).
    private func take(_ messages: some AsyncSequence<[UInt8], any Error>, group: inout DiscardingTaskGroup) async throws {
        for try await bytes in messages {
            if try await !receive(bytes, group: &group) { return }
        }
    }

    /// Drops everything the session held.
    private func release() {
        // Memory regions first: no client RDMA may reach a file being closed.
        layouts.releaseAll()
        rdma?.mappedRegions?.dropAll()
        let open = files.count
        files.closeAll()
        server.counters.subtract(ServerCounter.openFiles, UInt64(open))
        let wasAuthenticated = session.withLock { s in
            defer { s.authenticated = false; s.trees.removeAll() }
            return s.authenticated
        }
        if wasAuthenticated { server.counters.subtract(ServerCounter.sessions) }
    }

    func close(reason: String) { channel.close(reason: reason) }

    private func isViolation(_ error: any Error) -> Bool {
        if case .violation = error as? TransportError { return true }
        return error is ConnectionFault
    }

    /// A request that ends the connection (after any reply was sent).
    struct ConnectionFault: Error, CustomStringConvertible {
        var description: String
    }

    /// §3.4: a connection without a session this long after it was made (or after a LOGOFF)
    /// is closed, so peers that never authenticate cannot hold connection slots.
    private func armSessionDeadline() {
        let generation = session.withLock { s in
            s.deadlineGeneration += 1
            return s.deadlineGeneration
        }
        let timeout = server.configuration.sessionSetupTimeout
        let task = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            guard let self, !Task.isCancelled else { return }
            let expired = session.withLock { !$0.authenticated && $0.deadlineGeneration == generation }
            guard expired, !channel.isClosed else { return }
            logger.notice("no session set up within \(timeout): closing the connection")
            server.counters.add(ServerCounter.protocolViolations)
            channel.close(reason: "no session set up within \(timeout)")
        }
        // The one to cancel: the deadline this one replaces, or this one if a newer was armed.
        let moot = session.withLock { s -> Task<Void, Never>? in
            guard s.deadlineGeneration == generation else { return task }
            defer { s.deadline = task }
            return s.deadline
        }
        moot?.cancel()
    }

    // MARK: Dispatch

    /// Takes one upper-layer message; false ends the connection.
    private func receive(_ bytes: [UInt8], group: inout DiscardingTaskGroup) async throws -> Bool {
        let message: Message
        do {
            message = try Message.decode(bytes)
        } catch {
            guard let header = try? MessageHeader.decode(bytes) else {
                throw ConnectionFault(description: "undecodable message (\(bytes.count) bytes): \(error)")
            }
            // Only a request may name a command this server does not know (PROTOCOL.md §3.8);
            // a response or callback reply that does is malformed.
            if case .unknownCommand = error, header.flags.isDisjoint(with: [.response, .callback]) {
                try await reply(.error(.notSupported, to: header))
                return true
            }
            // A malformed request is answered; a malformed response or callback reply is not (§3.8).
            if header.flags.isDisjoint(with: [.response, .callback]) { try? await reply(.error(.badMessage, to: header)) }
            throw ConnectionFault(description: "bad \(header.command) message: \(error)")
        }
        if case let .callbackReply(status, .layoutRecall(ack)) = message.body {
            guard callbacks.answered(message.messageId) else {
                throw ConnectionFault(description: "a callback reply to \(message.messageId), which is no outstanding callback")
            }
            layouts.recallAcknowledged(ack, status: status)
            return true
        }
        guard case let .request(request) = message.body else {
            throw ConnectionFault(description: "a client sent a \(message.command) that is not a request")
        }
        let header = message.header
        let (authenticated, sessionId) = session.withLock { ($0.authenticated, $0.id) }
        if !request.command.allowedBeforeAuthentication {
            guard authenticated, header.sessionId == sessionId else {
                logger.notice("\(request.command) before authentication refused")
                try await reply(.error(.notAuthenticated, to: header))
                return true
            }
        }
        if !authenticated || request.servedInOrder {
            await serve(request, header: header)
            let (failures, close) = session.withLock { ($0.authFailures, $0.closeAfterReply) }
            if let close { throw ConnectionFault(description: close) }
            if failures >= server.configuration.maxAuthFailures {
                throw ConnectionFault(description: "\(failures) failed authentications")
            }
            return true
        }
        let admitted = session.withLock { s -> Bool in
            guard s.inFlight < maxOutstanding else { return false }
            s.inFlight += 1
            return true
        }
        guard admitted else {
            logger.notice("\(request.command) refused: \(maxOutstanding) requests already in flight")
            try await reply(.error(.tooMany, to: header))
            return true
        }
        // `addTask()` inherits the loop's preference from `serve()`; `addTask(executorPreference:
        // nil)` would not: it asks for none, and the task would run on the global pool.
        if request.servedOnEventLoop {
            group.addTask { [self] in await serveCounted(request, header: header) }
        } else {
            group.addTask(executorPreference: server.configuration.requestExecutor) { [self] in
                await serveCounted(request, header: header)
            }
        }
        return true
    }

    /// `serve` for a request admitted against `maxOutstanding`.
    private func serveCounted(_ request: Request, header: MessageHeader) async {
        // No close follows these replies: the task ends once its reply is posted.
        await serve(request, header: header, awaitingReply: false)
        session.withLock { $0.inFlight -= 1 }
    }

    /// Runs one request and sends its reply (or its error).
    private func serve(_ request: Request, header: MessageHeader, awaitingReply: Bool = true) async {
        let response: Message
        do {
            response = try await dispatch(request, header: header)
        } catch let failure as RequestFailure {
            // Limits and refusals an operator should see; the rest is the client's business.
            let level: Logger.Level = [.tooMany, .noSpace, .accessDenied, .readOnly].contains(failure.status) ? .notice : .debug
            logger.log(level: level, "\(request.command) failed: \(failure.status): \(failure.reason)")
            response = .error(failure.status, to: header, retryAfterMs: failure.retryAfterMs)
        } catch let error as FileSystemError {
            logger.debug("\(request.command) failed: \(error)")
            response = .error(error.status, to: header)
        } catch {
            // An RDMA transfer failed (the client's buffer, or the connection): the channel
            // says which; the reply, if it can still go, says IO_ERROR.
            logger.info("\(request.command) failed: \(error)")
            response = .error(.ioError, to: header)
        }
        do { try await reply(response, awaitingCompletion: awaitingReply) } catch {
            logger.debug("reply to \(request.command) not sent: \(error)")
        }
    }

    private func reply(_ message: Message, awaitingCompletion: Bool = true) async throws {
        try await channel.send(try message.encode(), awaitingCompletion: awaitingCompletion)
    }

    private func dispatch(_ request: Request, header: MessageHeader) async throws -> Message {
        func ok(_ r: Response) -> Message { .response(r, to: header) }
        switch request {
        case let .negotiate(n):
            // Once per connection (PROTOCOL.md §3.4).
            let first = session.withLock { s in
                defer { s.negotiated = true }
                return !s.negotiated
            }
            guard first else { throw RequestFailure(status: .invalidArgument, reason: "a second NEGOTIATE") }
            guard (n.minDialect...n.maxDialect).contains(Limits.version1) else {
                session.withLock { $0.closeAfterReply = "no common dialect (the client speaks \(n.minDialect)...\(n.maxDialect))" }
                throw RequestFailure(status: .notSupported, reason: "dialects \(n.minDialect)...\(n.maxDialect)")
            }
            var response = server.negotiateResponse(for: rdma?.connection)
            response.capabilities.formIntersection(n.capabilities)
            session.withLock { [agreed = response.capabilities] in $0.agreed = agreed }
            return ok(.negotiate(response))
        case let .sessionSetup(setup):
            return try await sessionSetup(setup, header: header)
        case .logoff:
            release()
            armSessionDeadline()
            return ok(.logoff)
        case let .treeConnect(t):
            guard let export = server.export(named: t.exportName) else {
                throw RequestFailure(status: .notFound, reason: "no export '\(t.exportName)'")
            }
            let identity = session.withLock { $0.identity }
            guard export.allows(identity) else {
                throw RequestFailure(status: .accessDenied, reason: "'\(identity)' may not use export '\(t.exportName)'")
            }
            let id = session.withLock { s in
                let id = s.nextTree
                s.nextTree &+= 1
                s.trees[id] = export
                return id
            }
            logger.info("tree connect \(t.exportName) as \(id)")
            return ok(.treeConnect(TreeConnectResponse(treeId: id, flags: export.isReadOnly ? [.readOnly] : [])))
        case let .treeDisconnect(t):
            guard session.withLock({ $0.trees.removeValue(forKey: t.treeId) }) != nil else {
                throw RequestFailure(status: .staleFile, reason: "no tree \(t.treeId)")
            }
            return ok(.treeDisconnect)
        case let .echo(e):
            return ok(.echo(e))
        case .serverStats:
            return ok(.serverStats(ServerStatsResponse(counters: server.counters.snapshot())))
        case .serverClients:
            return ok(.serverClients(serverClients()))
        case let .open(o):
            return ok(.open(try await open(o)))
        case let .close(c):
            _ = try files.file(FileID(rawValue: c.fileId))
            layouts.releaseAll(fileId: c.fileId)
            rdma?.mappedRegions?.drop(c.fileId)
            try files.close(FileID(rawValue: c.fileId))
            server.counters.subtract(ServerCounter.openFiles)
            return ok(.close)
        case let .stat(s):
            switch s {
            case let .fileId(id):
                let file = try openFile(id)
                return ok(.stat(.init(try file.status(), dax: file.shared.isPmem)))
            case let .path(treeId, path):
                return ok(.stat(.init(try tree(treeId).status(of: path))))
            }
        case let .list(l):
            return ok(.list(try list(l)))
        case let .setSize(s):
            let file = try writable(s.fileId)
            guard s.size <= UInt64(Int.max) else { throw RequestFailure(status: .fileTooLarge, reason: "size \(s.size)") }
            // This session's own layouts on the file end first (PROTOCOL.md §5.6); other
            // sessions' over the cut are recalled, and none is granted until the cut is made.
            layouts.releaseAll(fileId: s.fileId)
            let cut = ByteRange(offset: s.size, length: UInt64(Int.max) - s.size)
            // Large READs the NIC takes from the mapping end first, awaited, not blocking this loop.
            try await file.shared.afterNICReads {
                try await server.layouts.layouts(of: file.shared).recalling(range: cut, except: layouts, reason: .truncate) {
                    try file.setSize(s.size)
                }
            }
            return ok(.setSize(.init(try file.status(), dax: file.shared.isPmem)))
        case let .punchHole(p):
            let file = try writable(p.fileId)
            _ = try fileRange(p.range.offset, p.range.length, "PUNCH_HOLE")  // refused before anything is recalled
            layouts.releaseAll(fileId: p.fileId)
            try await server.layouts.layouts(of: file.shared).recalling(range: p.range, except: layouts, reason: .punchHole) {
                try file.punchHole(offset: p.range.offset, length: p.range.length)
            }
            return ok(.punchHole)
        case let .unlink(u):
            let export = try mutableTree(u.treeId)
            try await recallingPaths([u.path], in: export, reason: .unlink) {
                try export.unlink(u.path, directory: u.flags.contains(.directory))
            }
            return ok(.unlink)
        case let .rename(r):
            let export = try mutableTree(r.treeId)
            try await recallingPaths([r.from, r.to], in: export, reason: .rename) {
                try export.rename(r.from, to: r.to, noReplace: r.flags.contains(.noReplace))
            }
            return ok(.rename)
        case let .mkdir(m):
            let export = try mutableTree(m.treeId)
            let status = try export.makeDirectory(m.path, permissions: .init(rawValue: m.mode & 0o7777))
            return ok(.mkdir(.init(status)))
        case let .setAttributes(a):
            // Times and mode only: nothing a layout maps changes, so nothing is recalled.
            let change = FileAttributeChange(a.change)
            switch a.target {
            case let .fileId(id):
                let file = try openFile(id)
                guard !file.export.isReadOnly else {
                    throw RequestFailure(status: .readOnly, reason: "export \(file.export.name) is read-only")
                }
                return ok(.setAttributes(.init(try file.setAttributes(change), dax: file.shared.isPmem)))
            case let .path(treeId, path):
                let export = try mutableTree(treeId)
                return ok(.setAttributes(.init(try server.files.setAttributes(of: path, in: export, change))))
            }
        case let .statfs(f):
            return ok(.statfs(.init(try tree(f.treeId).space())))
        case let .allocate(a):
            let file = try writable(a.fileId)
            guard a.range.end <= UInt64(Int.max) else {
                throw RequestFailure(status: .fileTooLarge, reason: "ALLOCATE to \(a.range.offset)+\(a.range.length)")
            }
            // Growing recalls nothing (as SET_SIZE up): every layout still maps what it mapped.
            try file.allocate(offset: a.range.offset, length: a.range.length, keepSize: a.flags.contains(.keepSize))
            return ok(.allocate(.init(try file.status(), dax: file.shared.isPmem)))
        case let .flush(f):
            // Any range: it is clipped to the file (past its end, only size and times remain).
            try openFile(f.fileId).flush(offset: f.offset, length: f.length)
            return ok(.flush)
        case let .read(r):
            return ok(.read(try await read(r)))
        case let .write(w):
            return ok(.write(try await write(w)))
        case let .layoutGet(g):
            guard session.withLock({ $0.agreed }).isSuperset(of: [.layouts, .callbacks]) else {
                throw RequestFailure(status: .notSupported, reason: "LAYOUTGET without LAYOUTS and CALLBACKS agreed in NEGOTIATE")
            }
            let flush = session.withLock { $0.agreed }.contains(.rdmaFlush)
            return ok(.layoutGet(try await layouts.get(g, file: try openFile(g.fileId), flush: flush)))
        case let .layoutCommit(c):
            return ok(.layoutCommit(try layouts.commit(c)))
        case let .layoutReturn(r):
            try layouts.returnLayout(r)
            return ok(.layoutReturn)
        }
    }

    /// A client's (offset, length) as a range of the file, refused when it does not fit one.
    private func fileRange(_ offset: UInt64, _ length: UInt64, _ what: String) throws -> (Int, Int) {
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= UInt64(Int.max) else {
            throw RequestFailure(status: .invalidArgument, reason: "\(what) range \(offset)+\(length) does not fit a file")
        }
        return (Int(offset), Int(length))
    }

    // MARK: Session

    private func sessionSetup(_ setup: SessionSetupRequest, header: MessageHeader) async throws -> Message {
        // §4.4.4: one session per connection at a time; LOGOFF ends it.
        guard !session.withLock({ $0.authenticated }) else {
            throw RequestFailure(status: .invalidArgument, reason: "SESSION_SETUP on an established session")
        }
        let address = channel.peerAddress.host
        if let wait = server.authLimiter.wait(for: address) {
            session.withLock { $0.pendingAuth = nil }
            server.counters.add(ServerCounter.authRefusals)
            let ms = UInt32(clamping: Int64((wait / .milliseconds(1)).rounded(.up)))
            logger.notice("authentication refused for \(ms) ms: too many failures from \(address)")
            throw RequestFailure(status: .tryLater, reason: "too many failed authentications from \(address)", retryAfterMs: ms)
        }
        switch setup {
        case let .begin(identity, clientNonce):
            var id: UInt64 = 0
            while id == 0 { id = UInt64.random(in: 1...UInt64.max) }
            let nonce = Authenticator.nonce()
            session.withLock { $0.pendingAuth = PendingAuth(sessionId: id, serverNonce: nonce, clientNonce: clientNonce, identity: identity) }
            return Message(messageId: header.messageId, sessionId: id, body: .response(.sessionSetup(.challenge(serverNonce: nonce))))
        case let .proof(proof):
            guard let p = session.withLock({ s in defer { s.pendingAuth = nil }; return s.pendingAuth }), header.sessionId == p.sessionId else {
                throw RequestFailure(status: .invalidArgument, reason: "session setup proof without a challenge")
            }
            // The secret as configured now: a reload may have rotated it since the challenge.
            let authenticator = server.secret(for: p.identity).map(Authenticator.init(secret:))
            guard let authenticator, authenticator.verifyClient(
                proof, sessionId: p.sessionId, serverNonce: p.serverNonce, clientNonce: p.clientNonce, identity: p.identity)
            else {
                let failures = session.withLock { s in
                    s.authFailures += 1
                    return s.authFailures
                }
                server.counters.add(ServerCounter.authFailures)
                server.authLimiter.recordFailure(from: address)
                logger.warning("authentication failed for '\(p.identity)'\(authenticator == nil ? " (no secret for that identity)" : "") (\(failures) of \(server.configuration.maxAuthFailures))")
                // Slow down guessing (§4.4.4: at least 1 s); each failure costs the client more time.
                try? await Task.sleep(for: .seconds(failures))
                throw RequestFailure(status: .authFailed, reason: "bad proof")
            }
            let deadline = session.withLock { s in
                s.authenticated = true
                s.id = p.sessionId
                s.identity = p.identity
                s.establishedAt = .now
                defer { s.deadline = nil }
                return s.deadline
            }
            deadline?.cancel()
            sessionId.value.store(p.sessionId, ordering: .releasing)
            server.counters.add(ServerCounter.sessions)
            logger.info("session \(String(p.sessionId, radix: 16)) for '\(p.identity)'")
            let serverProof = authenticator.serverProof(
                sessionId: p.sessionId, serverNonce: p.serverNonce, clientNonce: p.clientNonce, identity: p.identity)
            return Message(messageId: header.messageId, sessionId: p.sessionId, body: .response(.sessionSetup(.confirmed(serverProof: serverProof))))
        }
    }

    // MARK: Files

    /// Runs `change` on the names `paths` once every layout on the files they name (those open
    /// here) has been recalled, with new grants held off until it is done. The change is the
    /// server's own change to those files (`FileLayouts.ownChange`): a delegation on them is
    /// given up around it, or the unlink or rename would wait for the server's own delegation.
    private func recallingPaths<T>(
        _ paths: [String], in export: Export, reason: RecallReason, _ change: () throws -> T
    ) async throws -> T {
        var states: [FileLayouts] = []
        for path in paths {
            guard let status = try? export.status(of: path),
                let state = server.layouts.existingLayouts(FileKey(device: status.device, inode: status.inode)),
                !states.contains(where: { $0 === state })
            else { continue }
            states.append(state)
        }
        // One order for every request, so two renames of the same pair never wait on each other.
        states.sort { ObjectIdentifier($0) < ObjectIdentifier($1) }
        return try await recalling(states, from: 0, reason: reason, change)
    }

    /// Recalls the layouts of `states[index...]`, one file after the other; the change runs
    /// once, inside every recall.
    private func recalling<T>(
        _ states: [FileLayouts], from index: Int, reason: RecallReason, _ change: () throws -> T
    ) async throws -> T {
        guard index < states.count else { return try Self.ownChanges(of: states[...], change) }
        return try await states[index].recalling(range: nil, except: layouts, reason: reason) {
            try await recalling(states, from: index + 1, reason: reason, change)
        }
    }

    private static func ownChanges<T>(of states: ArraySlice<FileLayouts>, _ change: () throws -> T) throws -> T {
        guard let first = states.first else { return try change() }
        return try first.ownChange(expectingUnlink: true) { try ownChanges(of: states.dropFirst(), change) }
    }

    /// The tree's export, as the configuration has it now (PROTOCOL.md §4.6).
    private func tree(_ id: UInt32) throws -> Export {
        guard let export = session.withLock({ $0.trees[id] }) else {
            throw RequestFailure(status: .staleFile, reason: "no tree \(id)")
        }
        try checkStillAllowed(export)
        return export
    }

    // MARK: Who holds what

    /// This session as SERVER_CLIENTS lists it; nil before it is established.
    func clientEntry() -> ClientEntry? {
        guard let (id, identity, since) = session.withLock({ s in
            s.authenticated ? s.establishedAt.map { (s.id, s.identity, $0) } : nil
        }) else { return nil }
        let l = layouts.summary(limit: Limits.maxLayoutsListed)
        let age = (ContinuousClock.now - since).components.seconds
        return ClientEntry(
            sessionId: id, ageSeconds: UInt32(clamping: age), openFiles: UInt32(clamping: files.count),
            bytesReadTwoSided: traffic.read.load(ordering: .relaxed), bytesWrittenTwoSided: traffic.written.load(ordering: .relaxed),
            bytesLayoutGranted: l.granted, bytesCommittedOneSided: l.committed,
            layoutsHeld: UInt32(clamping: l.held), layouts: l.listed,
            address: String("\(channel.peerAddress)".utf8.prefix(255)) ?? "?", identity: identity)
    }

    /// SERVER_CLIENTS (PROTOCOL.md §4.9.1): every session for an administrator, else its own.
    private func serverClients() -> ServerClientsResponse {
        let identity = session.withLock { $0.identity }
        guard server.isAdministrator(identity) else {
            let mine = clientEntry().map { [$0] } ?? []
            return ServerClientsResponse(clients: mine, total: UInt32(mine.count))
        }
        let connections = server.connections()
        var all = connections.compactMap { $0.clientEntry() }
        if !connections.contains(where: { $0 === self }), let mine = clientEntry() { all.append(mine) }
        all.sort { $0.sessionId < $1.sessionId }
        return ServerClientsResponse(clients: Array(all.prefix(Limits.maxClientsListed)), total: UInt32(clamping: all.count))
    }

    /// An open file, if the export it was opened through still lets this session use it
    /// (PROTOCOL.md §4.6); CLOSE needs no such check.
    private func openFile(_ id: UInt64) throws -> OpenFile {
        let file = try files.file(FileID(rawValue: id))
        try checkStillAllowed(file.export)
        return file
    }

    /// What a reload may have changed since the tree was connected (PROTOCOL.md §4.6): the
    /// export removed, or this session's identity no longer allowed. The session's identity is
    /// read only for an export that names identities (READ and WRITE come through here).
    private func checkStillAllowed(_ export: Export) throws {
        let policy = export.policy
        if policy.withdrawn { throw RequestFailure(status: .exportRemoved, reason: "export \(export.name) was removed") }
        if let allowed = policy.identities {
            let identity = session.withLock { $0.identity }
            guard allowed.contains(identity) else {
                throw RequestFailure(status: .accessDenied, reason: "'\(identity)' may no longer use export \(export.name)")
            }
        }
    }

    /// The files this session holds open through `export` (a reload recalls their layouts).
    func sharedFiles(openedThrough export: Export) -> [SharedFile] {
        files.openFiles.filter { $0.export === export }.map(\.shared)
    }

    /// A tree that may be changed: a read-only export is refused before anything is recalled.
    private func mutableTree(_ id: UInt32) throws -> Export {
        let export = try tree(id)
        guard !export.isReadOnly else { throw RequestFailure(status: .readOnly, reason: "export \(export.name) is read-only") }
        return export
    }

    private func writable(_ id: UInt64) throws -> OpenFile {
        let file = try openFile(id)
        guard file.canWrite else {
            throw RequestFailure(status: file.export.isReadOnly ? .readOnly : .accessDenied, reason: "file \(id) is open read-only")
        }
        return file
    }

    /// OPEN. With TRUNCATE the file is opened first (so a symlink is followed to the file it
    /// names, inside the export), then cut once its layouts are recalled.
    private func open(_ o: OpenRequest) async throws -> OpenResponse {
        let export = try tree(o.treeId)
        guard !files.isFull else {
            throw RequestFailure(status: .tooMany, reason: "\(files.count) files open")
        }
        guard !o.flags.isDisjoint(with: [.read, .write]) else {
            throw RequestFailure(status: .invalidArgument, reason: "OPEN with neither READ nor WRITE")
        }
        var options = FileOpenOptions(
            read: o.flags.contains(.read), write: o.flags.contains(.write),
            create: o.flags.contains(.create), exclusive: o.flags.contains(.exclusive),
            truncate: o.flags.contains(.truncate), writeThrough: o.flags.contains(.writeThrough),
            permissions: .init(rawValue: o.mode & 0o777))
        let truncate = options.truncate
        if truncate {
            guard !export.isReadOnly else { throw RequestFailure(status: .readOnly, reason: "export \(export.name) is read-only") }
            guard options.write else { throw RequestFailure(status: .invalidArgument, reason: "TRUNCATE without WRITE") }
            options.truncate = false
        }
        let file = try server.files.open(o.path, in: export, options: options)
        if truncate {
            do {
                try await file.shared.afterNICReads {
                    try await server.layouts.layouts(of: file.shared).recalling(range: nil, except: layouts, reason: .truncate) {
                        try file.setSize(0)
                    }
                }
            } catch {
                file.close()
                throw error
            }
        }
        let id = try files.insert(file)
        server.counters.add(ServerCounter.openFiles)
        server.counters.add(ServerCounter.filesOpened)
        return OpenResponse(fileId: id.rawValue, attributes: .init(try file.status(), dax: file.shared.isPmem))
    }

    private func list(_ l: ListRequest) throws -> ListResponse {
        let export = try tree(l.treeId)
        let max = Int(min(l.maxEntries == 0 ? UInt16(Limits.maxListEntries) : l.maxEntries, UInt16(Limits.maxListEntries)))
        // A page ends before its reply would outgrow what the client reassembles.
        let budget = Int(channel.negotiated.maxOutgoingMessageSize) - Limits.headerSize - 64
        var used = 0
        let page = try export.list(l.path, cookie: l.cookie, maxEntries: max) { entry in
            used += FileAttributes.size + 8 + entry.name.utf8.count
            return used <= budget
        }
        let entries = page.entries.map { ListEntry(attributes: .init($0.status), name: $0.name) }
        return ListResponse(entries: entries, nextCookie: page.nextCookie ?? 0, isEnd: page.nextCookie == nil)
    }

    // MARK: Two-sided data

    private func checkTransfer(offset: UInt64, length: UInt32, descriptors: [BufferDescriptor]) throws -> Int {
        guard length <= channel.negotiated.maxReadWriteSize else {
            throw RequestFailure(status: .invalidArgument, reason: "length \(length) above maxReadWriteSize")
        }
        let room = descriptors.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        guard room >= UInt64(length) else {
            throw RequestFailure(status: .invalidArgument, reason: "descriptors hold \(room) of \(length) bytes")
        }
        return try fileRange(offset, UInt64(length), "transfer").0
    }

    /// The RDMA two-sided READ and WRITE move data with; a connection without it refuses them.
    private func twoSided() throws -> ConnectionRDMA {
        guard let rdma else {
            throw RequestFailure(status: .notSupported, reason: "two-sided data needs an RDMA connection")
        }
        return rdma
    }

    /// RDMA-READs the transfer's bytes `[at, at + count)` from the client's descriptors into
    /// `chunk`, one RDMA READ per descriptor touched, and waits for them.
    private func readFromClient(
        on rdma: ConnectionRDMA, into chunk: RegisteredBuffer, count: Int, at: Int, _ descriptors: [BufferDescriptor]
    ) async throws {
        var done = 0
        for piece in descriptors.pieces(offset: at, length: count) {
            let d = descriptors[piece.descriptor]
            let local = chunk.region.segment(offset: done, length: piece.length)
            let remote = RemoteMemory(address: d.address &+ piece.offset, rkey: d.rkey, length: UInt64(piece.length))
            try await rdma.connection.read(into: local, from: remote)
            done += piece.length
        }
    }

    /// READ: the file's bytes into the client's buffer by RDMA WRITE, then the reply. A large
    /// READ goes from the file's pages (`readMapped`), the rest through chunks (`readChunks`).
    /// The WRITEs are posted, not awaited: the reply goes out behind them on the same queue
    /// pair, which delivers it only once their bytes are in place (RC ordering), so a READ
    /// costs no wait for their completion.
    private func read(_ r: ReadRequest) async throws -> ReadResponse {
        let offset = try checkTransfer(offset: r.offset, length: r.length, descriptors: r.descriptors)
        let file = try openFile(r.fileId)
        let rdma = try twoSided()
        let length = Int(r.length)
        var total = 0, endOfFile = false, mappedBytes = 0
        if let regions = rdma.mappedRegions, length >= ServerContext.mappedReadMinimum {
            // Soft-RoCE's on-demand paging (Linux 7.2 rxe) misplaces a transfer that starts
            // inside a page (`LayoutSettings.remoteAlignment` says the same of layouts): the
            // bytes up to the first page boundary go through a chunk.
            let page = PmemMapping.pageSize
            let head = (page - offset % page) % page
            if head > 0 { (total, endOfFile) = try await readChunks(r, file, on: rdma, from: 0, to: head) }
            if !endOfFile, let mapped = try file.mappedRange(at: UInt64(offset + total), count: length - total),
                try await readMapped(r, mapped, at: total, on: rdma, regions)
            {
                mappedBytes = mapped.count
                total += mapped.count
                endOfFile = mapped.endOfFile  // else a hole cut it short: chunks for the rest
            }
        }
        if !endOfFile && total < length { (total, endOfFile) = try await readChunks(r, file, on: rdma, from: total, to: length) }
        server.counters.add(ServerCounter.bytesReadTwoSided, UInt64(total))
        if mappedBytes > 0 { server.counters.add(ServerCounter.bytesReadFromMappings, UInt64(mappedBytes)) }
        traffic.read.add(UInt64(total), ordering: .relaxed)
        return ReadResponse(bytesRead: UInt32(total), flags: endOfFile ? [.endOfFile] : [])
    }

    /// The transfer's bytes `[from, to)`: the file into a chunk (`pread`), the chunk into the
    /// client's buffer (RDMA WRITE), chunk by chunk, until `to` or end of file. Each chunk goes
    /// back to the pool when its last WRITE completes (an RC send queue completes in order).
    /// Returns where the transfer got to, and whether that is the end of the file.
    private func readChunks(
        _ r: ReadRequest, _ file: OpenFile, on rdma: ConnectionRDMA, from: Int, to: Int
    ) async throws -> (total: Int, endOfFile: Bool) {
        var total = from
        while total < to {
            let chunk = try await rdma.bounce.acquire()
            let want = min(rdma.bounce.chunkSize, to - total)
            let result: ReadResult
            do {
                // The whole chunk: a chunk with room to spare learns end of file without an fstat.
                result = try file.read(at: r.offset + UInt64(total), count: want, into: chunk.bytes)
            } catch {
                rdma.bounce.give(chunk)
                throw error
            }
            if result.count > 0 {
                try await postWrites(on: rdma, chunk, count: result.count, at: total, r.descriptors)
            } else {
                rdma.bounce.give(chunk)
            }
            total += result.count
            if result.endOfFile || result.count < want { return (total, true) }
        }
        return (total, false)
    }

    /// The transfer's bytes from `at` on, `mapped` in the file's mapping, with no copy by the
    /// server: the NIC RDMA-WRITEs them from the file's pages (their window in `MappedRegions`,
    /// an on-demand region with local access only in this connection's domain). The size was
    /// taken from fstat just now, and the server's own size changes wait for the WRITEs
    /// (`MappedRange.read`); a file another process shrinks under a WRITE still going makes
    /// the NIC's page fault fail, which closes this connection, never the server. False when
    /// no region can be registered: chunks then.
    private func readMapped(
        _ r: ReadRequest, _ mapped: MappedRange, at: Int, on rdma: ConnectionRDMA, _ regions: MappedRegions
    ) async throws -> Bool {
        guard let address = mapped.address, mapped.count > 0 else { return true }
        let region: MemoryRegion
        do { region = try regions.region(for: r.fileId, mapped) } catch {
            logger.debug("READ from the mapping: registering failed (\(error)); copying through chunks")
            return false
        }
        var done = 0
        let start = address - region.address
        for piece in r.descriptors.pieces(offset: at, length: mapped.count) {
            let d = r.descriptors[piece.descriptor]
            let local = region.segment(offset: start + done, length: piece.length)
            let remote = RemoteMemory(address: d.address &+ piece.offset, rkey: d.rkey, length: UInt64(piece.length))
            // The handler holds the region until the WRITE is done, should the window move on,
            // and the read, which holds off the server's own cuts of the mapping until then.
            try await rdma.connection.postWrite(from: local, to: remote) { [logger, read = mapped.read] result in
                if case let .failure(error) = result { logger.debug("RDMA WRITE for a READ failed: \(error)") }
                withExtendedLifetime((region, read)) {}
            }
            done += piece.length
        }
        return true
    }

    /// Posts RDMA WRITEs of `chunk`'s first `count` bytes to the transfer's bytes
    /// `[at, at + count)` in the client's descriptors; the chunk goes back to the pool when the
    /// last of them completes. A failed WRITE breaks the queue pair, so the reply never arrives
    /// and the connection ends: it is only logged here.
    private func postWrites(
        on rdma: ConnectionRDMA, _ chunk: RegisteredBuffer, count: Int, at: Int, _ descriptors: [BufferDescriptor]
    ) async throws {
        let pieces = Array(descriptors.pieces(offset: at, length: count))
        var done = 0
        for (i, piece) in pieces.enumerated() {
            let d = descriptors[piece.descriptor]
            let local = chunk.region.segment(offset: done, length: piece.length)
            let remote = RemoteMemory(address: d.address &+ piece.offset, rkey: d.rkey, length: UInt64(piece.length))
            let last = i == pieces.count - 1
            try await rdma.connection.postWrite(from: local, to: remote) { [bounce = rdma.bounce, logger] result in
                if case let .failure(error) = result { logger.debug("RDMA WRITE for a READ failed: \(error)") }
                if last { bounce.give(chunk) }
            }
            done += piece.length
        }
    }

    /// WRITE: the client's buffer into a chunk (RDMA READ), the chunk into the file (`pwrite`),
    /// chunk by chunk.
    private func write(_ w: WriteRequest) async throws -> WriteResponse {
        let offset = try checkTransfer(offset: w.offset, length: w.length, descriptors: w.descriptors)
        let file = try writable(w.fileId)
        let writeThrough = w.flags.contains(.writeThrough) || file.writeThrough
        let rdma = try twoSided()
        try await rdma.bounce.withChunk { chunk in
            var done = 0
            while done < Int(w.length) {
                let n = min(rdma.bounce.chunkSize, Int(w.length) - done)
                try await readFromClient(on: rdma, into: chunk, count: n, at: done, w.descriptors)
                try file.write(UnsafeRawBufferPointer(rebasing: chunk.bytes[0..<n]), at: offset + done, writeThrough: writeThrough)
                done += n
            }
        }
        server.counters.add(ServerCounter.bytesWrittenTwoSided, UInt64(w.length))
        traffic.written.add(UInt64(w.length), ordering: .relaxed)
        return WriteResponse(bytesWritten: w.length)
    }
}

/// The message ids of callbacks sent and not yet answered. Bounded: past `limit`, the oldest
/// are forgotten (a client that leaves thousands of recalls unanswered is fenced anyway).
final class OutstandingCallbacks: Sendable {
    static let limit = 4096
    private let ids = Mutex<(set: Set<UInt64>, order: [UInt64])>(([], []))

    func sent(_ id: UInt64) {
        ids.withLock { s in
            guard s.set.insert(id).inserted else { return }
            s.order.append(id)
            if s.order.count > Self.limit { s.set.remove(s.order.removeFirst()) }
        }
    }

    /// Whether `id` was outstanding; it no longer is.
    func answered(_ id: UInt64) -> Bool {
        ids.withLock { s in
            guard s.set.remove(id) != nil else { return false }
            s.order.removeAll { $0 == id }
            return true
        }
    }
}

/// The session id, set once authentication succeeds and read by callbacks.
final class SessionIDBox: Sendable {
    let value = Atomic<UInt64>(0)
}

/// A connection's two-sided bytes, counted on the data path without a lock.
final class Traffic: Sendable {
    let read = Atomic<UInt64>(0)
    let written = Atomic<UInt64>(0)
}

extension Request {
    /// READ and WRITE: copies between a registered chunk and the file (`pread`/`pwrite`) and
    /// RDMA, nothing that waits long; served on the connection's event loop (see `serve`).
    var servedOnEventLoop: Bool {
        switch self {
        case .read, .write: true
        default: false
        }
    }

    /// Session commands and LAYOUTRETURN: served by the connection's loop, in arrival order
    /// (PROTOCOL.md §3.4); LAYOUTRETURN so that it is never held up behind other requests.
    var servedInOrder: Bool {
        switch self {
        case .negotiate, .sessionSetup, .logoff, .treeConnect, .treeDisconnect, .layoutReturn: true
        default: false
        }
    }
}
