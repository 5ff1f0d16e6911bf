import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Logging
import Synchronization

/// One client's connection: its channel, its session (authentication, trees,
/// open files) and the loop that answers its requests in order.
///
/// A message that does not decode gets BAD_MESSAGE (when its header can be
/// read) and closes this connection only; an unknown command gets
/// NOT_SUPPORTED and the connection carries on.
final class ClientConnection: @unchecked Sendable {
    let channel: MessageChannel
    let server: ServerContext
    let logger: Logger
    private let files: SessionFiles
    private let authenticator: Authenticator

    // Touched only by the serving task: requests are handled one at a time.
    private var sessionId: UInt64 = 0
    private var authenticated = false
    private var pendingAuth: (sessionId: UInt64, serverNonce: [UInt8], clientNonce: [UInt8], identity: String)?
    private var authFailures = 0
    private var negotiated = false
    private var trees: [UInt32: Export] = [:]
    private var nextTree: UInt32 = 1
    private var bounce: RegisteredBuffer?
    private let layouts: SessionLayouts
    /// The session id callbacks carry, readable from a recalling task.
    private let sessionBox: SessionIDBox

    init(channel: MessageChannel, server: ServerContext) {
        self.channel = channel
        self.server = server
        var logger = server.logger
        logger[metadataKey: "peer"] = "\(channel.connection.peerAddress)"
        self.logger = logger
        self.authenticator = Authenticator(secret: server.configuration.secret)
        self.files = SessionFiles(maxOpenFiles: server.configuration.maxOpenFiles)
        let sessionBox = SessionIDBox()
        self.sessionBox = sessionBox
        self.layouts = SessionLayouts(
            domain: channel.connection.domain, registry: server.layouts, counters: server.counters, logger: logger,
            maxLayouts: server.configuration.maxLayouts,
            prefetch: server.configuration.layoutPrefetch, peer: "\(channel.connection.peerAddress)"
        ) { [channel, logger] messageId, callback in
            let message = Message(messageId: messageId, sessionId: sessionBox.id, body: .callback(callback))
            do { try await channel.send(try message.encode()) } catch {
                logger.debug("could not send \(callback.command): \(error)")
            }
        }
    }

    /// Serves until the client leaves, breaks the protocol, or the server stops.
    func serve() async {
        logger.info("connected")
        do {
            for try await bytes in channel.messages {
                if try await !handle(bytes) { break }
            }
            logger.info("disconnected")
        } catch {
            server.counters.add(ServerCounter.protocolViolations, isViolation(error) ? 1 : 0)
            logger.warning("connection closed: \(error)")
        }
        channel.close()
        release()
    }

    /// Drops everything the session held.
    private func release() {
        // Memory regions first: no client RDMA may reach a file being closed.
        layouts.releaseAll()
        let open = files.count
        files.closeAll()
        server.counters.subtract(ServerCounter.openFiles, UInt64(open))
        if authenticated { server.counters.subtract(ServerCounter.sessions) }
        authenticated = false
        trees.removeAll()
        bounce = nil
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

    // MARK: Dispatch

    /// Handles one upper-layer message; false ends the connection.
    private func handle(_ bytes: [UInt8]) async throws -> Bool {
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
            try? await reply(.error(.badMessage, to: header))
            throw ConnectionFault(description: "bad \(header.command) message: \(error)")
        }
        if case let .callbackReply(status, .layoutRecall(ack)) = message.body {
            layouts.recallAcknowledged(ack, status: status)
            return true
        }
        guard case let .request(request) = message.body else {
            throw ConnectionFault(description: "a client sent a \(message.command) that is not a request")
        }
        let header = message.header
        if !request.command.allowedBeforeAuthentication {
            guard authenticated, message.sessionId == sessionId else {
                logger.notice("\(request.command) before authentication refused")
                try await reply(.error(.notAuthenticated, to: header))
                return true
            }
        }
        do {
            let response = try await dispatch(request, header: header)
            try await reply(response)
        } catch let failure as RequestFailure {
            // Limits and refusals an operator should see; the rest is the client's business.
            let level: Logger.Level = [.tooMany, .noSpace, .accessDenied, .readOnly].contains(failure.status) ? .notice : .debug
            logger.log(level: level, "\(request.command) failed: \(failure.status): \(failure.reason)")
            try await reply(.error(failure.status, to: header, retryAfterMs: failure.retryAfterMs))
        } catch let error as FileSystemError {
            logger.debug("\(request.command) failed: \(error)")
            try await reply(.error(error.status, to: header))
        }
        if authFailures >= server.configuration.maxAuthFailures {
            throw ConnectionFault(description: "\(authFailures) failed authentications")
        }
        return true
    }

    private func reply(_ message: Message) async throws {
        try await channel.send(try message.encode())
    }

    private func dispatch(_ request: Request, header: MessageHeader) async throws -> Message {
        func ok(_ r: Response) -> Message { .response(r, to: header) }
        switch request {
        case .negotiate:
            // Once per connection (PROTOCOL.md §3.4).
            guard !negotiated else { throw RequestFailure(status: .invalidArgument, reason: "a second NEGOTIATE") }
            negotiated = true
            return ok(.negotiate(server.negotiateResponse))
        case let .sessionSetup(setup):
            return try await sessionSetup(setup, header: header)
        case .logoff:
            layouts.releaseAll()
            release()
            return ok(.logoff)
        case let .treeConnect(t):
            guard let export = server.exports[t.exportName] else {
                throw RequestFailure(status: .notFound, reason: "no export '\(t.exportName)'")
            }
            let id = nextTree
            nextTree &+= 1
            trees[id] = export
            logger.info("tree connect \(t.exportName) as \(id)")
            return ok(.treeConnect(TreeConnectResponse(treeId: id, flags: export.isReadOnly ? [.readOnly] : [])))
        case let .treeDisconnect(t):
            guard trees.removeValue(forKey: t.treeId) != nil else {
                throw RequestFailure(status: .invalidArgument, reason: "no tree \(t.treeId)")
            }
            return ok(.treeDisconnect)
        case let .echo(e):
            return ok(.echo(e))
        case .serverStats:
            return ok(.serverStats(ServerStatsResponse(counters: server.counters.snapshot())))
        case let .open(o):
            if o.flags.contains(.truncate) { await recallAll(path: o.path, in: try tree(o.treeId), reason: .truncate) }
            return ok(.open(try open(o)))
        case let .close(c):
            _ = try files.file(FileID(rawValue: c.fileId))
            layouts.releaseAll(fileId: c.fileId)
            try files.close(FileID(rawValue: c.fileId))
            server.counters.subtract(ServerCounter.openFiles)
            return ok(.close)
        case let .stat(s):
            switch s {
            case let .fileId(id):
                let file = try files.file(FileID(rawValue: id))
                return ok(.stat(.init(try file.status(), dax: file.shared.isPmem)))
            case let .path(treeId, path):
                return ok(.stat(.init(try tree(treeId).status(of: path))))
            }
        case let .list(l):
            return ok(.list(try list(l)))
        case let .setSize(s):
            let file = try writable(s.fileId)
            guard s.size <= UInt64(Int.max) else { throw RequestFailure(status: .fileTooLarge, reason: "size \(s.size)") }
            // This session's own layouts on the file end first (PROTOCOL.md §5.6);
            // other sessions' are recalled (issue 6).
            layouts.releaseAll(fileId: s.fileId)
            if s.size < UInt64(try file.status().size) {
                await server.layouts.recall(
                    file.shared.key, range: ByteRange(offset: s.size, length: UInt64(Int.max) - s.size),
                    requester: layouts, reason: .truncate)
            }
            try file.setSize(Int(s.size))
            return ok(.setSize(.init(try file.status(), dax: file.shared.isPmem)))
        case let .punchHole(p):
            let file = try writable(p.fileId)
            layouts.releaseAll(fileId: p.fileId)
            await server.layouts.recall(file.shared.key, range: p.range, requester: layouts, reason: .punchHole)
            try file.punchHole(offset: Int(p.range.offset), length: Int(p.range.length))
            return ok(.punchHole)
        case let .unlink(u):
            await recallAll(path: u.path, in: try tree(u.treeId), reason: .unlink)
            try tree(u.treeId).unlink(u.path, directory: u.flags.contains(.directory))
            return ok(.unlink)
        case let .rename(r):
            let export = try tree(r.treeId)
            await recallAll(path: r.from, in: export, reason: .rename)
            await recallAll(path: r.to, in: export, reason: .rename)
            try export.rename(r.from, to: r.to, noReplace: r.flags.contains(.noReplace))
            return ok(.rename)
        case let .flush(f):
            let file = try files.file(FileID(rawValue: f.fileId))
            try file.flush(offset: Int(f.offset), length: Int(f.length))
            return ok(.flush)
        case let .read(r):
            return ok(.read(try await read(r)))
        case let .write(w):
            return ok(.write(try await write(w)))
        case let .layoutGet(g):
            return ok(.layoutGet(try await layouts.get(g, file: try files.file(FileID(rawValue: g.fileId)))))
        case let .layoutCommit(c):
            return ok(.layoutCommit(try layouts.commit(c)))
        case let .layoutReturn(r):
            try layouts.returnLayout(r)
            return ok(.layoutReturn)
        }
    }

    // MARK: Session

    private func sessionSetup(_ setup: SessionSetupRequest, header: MessageHeader) async throws -> Message {
        // §4.4.4: one session per connection at a time; LOGOFF ends it.
        guard !authenticated else {
            throw RequestFailure(status: .invalidArgument, reason: "SESSION_SETUP on an established session")
        }
        let address = channel.connection.peerAddress.host
        if let wait = server.authLimiter.wait(for: address) {
            pendingAuth = nil
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
            pendingAuth = (id, nonce, clientNonce, identity)
            return Message(messageId: header.messageId, sessionId: id, body: .response(.sessionSetup(.challenge(serverNonce: nonce))))
        case let .proof(proof):
            guard let p = pendingAuth, header.sessionId == p.sessionId else {
                throw RequestFailure(status: .invalidArgument, reason: "session setup proof without a challenge")
            }
            pendingAuth = nil
            guard authenticator.verifyClient(
                proof, sessionId: p.sessionId, serverNonce: p.serverNonce, clientNonce: p.clientNonce, identity: p.identity)
            else {
                authFailures += 1
                server.counters.add(ServerCounter.authFailures)
                server.authLimiter.recordFailure(from: address)
                logger.warning("authentication failed for '\(p.identity)' (\(authFailures) of \(server.configuration.maxAuthFailures))")
                // Slow down guessing (§4.4.4: at least 1 s); each failure costs the client more time.
                try? await Task.sleep(for: .seconds(authFailures))
                throw RequestFailure(status: .authFailed, reason: "bad proof")
            }
            if !authenticated { server.counters.add(ServerCounter.sessions) }
            authenticated = true
            sessionId = p.sessionId
            sessionBox.id = p.sessionId
            logger.info("session \(String(sessionId, radix: 16)) for '\(p.identity)'")
            let serverProof = authenticator.serverProof(
                sessionId: p.sessionId, serverNonce: p.serverNonce, clientNonce: p.clientNonce, identity: p.identity)
            return Message(messageId: header.messageId, sessionId: p.sessionId, body: .response(.sessionSetup(.confirmed(serverProof: serverProof))))
        }
    }

    // MARK: Files

    /// Recalls every layout on the file at `path`, if it is open here at all.
    private func recallAll(path: String, in export: Export, reason: RecallReason) async {
        guard let status = try? export.status(of: path) else { return }
        let key = FileKey(device: status.device, inode: status.inode)
        await server.layouts.recall(key, range: nil, requester: layouts, reason: reason)
    }

    private func tree(_ id: UInt32) throws -> Export {
        guard let export = trees[id] else { throw RequestFailure(status: .invalidArgument, reason: "no tree \(id)") }
        return export
    }

    private func writable(_ id: UInt64) throws -> OpenFile {
        let file = try files.file(FileID(rawValue: id))
        guard file.canWrite else {
            throw RequestFailure(status: file.export.isReadOnly ? .readOnly : .accessDenied, reason: "file \(id) is open read-only")
        }
        return file
    }

    private func open(_ o: OpenRequest) throws -> OpenResponse {
        let export = try tree(o.treeId)
        guard !files.isFull else {
            throw RequestFailure(status: .tooMany, reason: "\(files.count) files open")
        }
        let options = FileOpenOptions(
            read: o.flags.contains(.read) || !o.flags.contains(.write), write: o.flags.contains(.write),
            create: o.flags.contains(.create), exclusive: o.flags.contains(.exclusive),
            truncate: o.flags.contains(.truncate), writeThrough: o.flags.contains(.writeThrough),
            permissions: .init(rawValue: o.mode & 0o777))
        let file = try server.files.open(o.path, in: export, options: options)
        let id = try files.insert(file)
        server.counters.add(ServerCounter.openFiles)
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

    /// The registered buffer data passes through on its way between the
    /// client's memory and the file.
    private func bounceBuffer() throws -> RegisteredBuffer {
        if let b = bounce { return b }
        let b = try RegisteredBuffer(
            domain: channel.connection.domain, length: Int(channel.negotiated.maxReadWriteSize), access: [.localWrite])
        bounce = b
        return b
    }

    private func checkTransfer(length: UInt32, descriptors: [BufferDescriptor]) throws {
        guard length <= channel.negotiated.maxReadWriteSize else {
            throw RequestFailure(status: .invalidArgument, reason: "length \(length) above maxReadWriteSize")
        }
        let room = descriptors.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        guard room >= UInt64(length) else {
            throw RequestFailure(status: .invalidArgument, reason: "descriptors hold \(room) of \(length) bytes")
        }
    }

    /// Moves `count` bytes between the bounce buffer and the client's
    /// descriptors, one RDMA operation per descriptor.
    private func transfer(_ count: Int, _ descriptors: [BufferDescriptor], toClient: Bool, buffer: RegisteredBuffer) async throws {
        var done = 0
        for d in descriptors where done < count {
            let n = min(count - done, Int(d.length))
            let local = buffer.region.segment(offset: done, length: n)
            let remote = RemoteMemory(address: d.address, rkey: d.rkey, length: UInt64(n))
            if toClient {
                try await channel.connection.write(from: [local], to: remote)
            } else {
                try await channel.connection.read(into: [local], from: remote)
            }
            done += n
        }
    }

    private func read(_ r: ReadRequest) async throws -> ReadResponse {
        try checkTransfer(length: r.length, descriptors: r.descriptors)
        let file = try files.file(FileID(rawValue: r.fileId))
        guard r.offset <= UInt64(Int.max - Int(r.length)) else { throw RequestFailure(status: .invalidArgument, reason: "offset") }
        let buffer = try bounceBuffer()
        let result = try file.read(at: Int(r.offset), into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<Int(r.length)]))
        try await transfer(result.count, r.descriptors, toClient: true, buffer: buffer)
        server.counters.add(ServerCounter.bytesReadTwoSided, UInt64(result.count))
        return ReadResponse(bytesRead: UInt32(result.count), flags: result.endOfFile ? [.endOfFile] : [])
    }

    private func write(_ w: WriteRequest) async throws -> WriteResponse {
        try checkTransfer(length: w.length, descriptors: w.descriptors)
        let file = try writable(w.fileId)
        guard w.offset <= UInt64(Int.max - Int(w.length)) else { throw RequestFailure(status: .invalidArgument, reason: "offset") }
        let buffer = try bounceBuffer()
        try await transfer(Int(w.length), w.descriptors, toClient: false, buffer: buffer)
        try file.write(
            UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<Int(w.length)]), at: Int(w.offset),
            writeThrough: w.flags.contains(.writeThrough) || file.writeThrough)
        server.counters.add(ServerCounter.bytesWrittenTwoSided, UInt64(w.length))
        return WriteResponse(bytesWritten: w.length)
    }
}

/// The session id, set once authentication succeeds and read by callbacks.
final class SessionIDBox: @unchecked Sendable {
    private let value = Atomic<UInt64>(0)
    var id: UInt64 {
        get { value.load(ordering: .acquiring) }
        set { value.store(newValue, ordering: .releasing) }
    }
}
