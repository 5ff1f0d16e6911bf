@testable import DaxshareClient
import DaxshareWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Registered memory stand-in for hosts without RDMA: plain heap memory whose descriptor
/// address is its real address, so the in-process fake server can "RDMA" with memcpy.
final class HostMemory: RegisteredMemory, @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    init(length: Int) {
        bytes = .allocate(byteCount: length, alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }
    deinit { bytes.deallocate() }
    func descriptor(offset: Int, length: Int) -> BufferDescriptor {
        BufferDescriptor(address: UInt64(UInt(bitPattern: bytes.baseAddress! + offset)), rkey: 0xCAFE, length: UInt32(length))
    }
}

final class HostRegistrar: BufferRegistrar {
    let registrations = Mutex(0)
    func register(length: Int) throws(ClientError) -> any RegisteredMemory {
        registrations.withLock { $0 += 1 }
        return HostMemory(length: length)
    }
    /// The caller's memory, as it is: descriptors carry its own address.
    /// Caller buffers registered (`ClientSession.register`), apart from allocated memory.
    let callerRegistrations = Mutex(0)
    func register(existing buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> any RegisteredMemory {
        callerRegistrations.withLock { $0 += 1 }
        return CallerMemory(bytes: buffer)
    }
}

/// Caller memory registered with the fake: nothing is allocated or freed.
// @unchecked: an immutable pointer to memory the test owns and keeps alive.
final class CallerMemory: RegisteredMemory, @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    init(bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }
    func descriptor(offset: Int, length: Int) -> BufferDescriptor {
        BufferDescriptor(address: UInt64(UInt(bitPattern: bytes.baseAddress! + offset)), rkey: 0xCAFE, length: UInt32(length))
    }
}

/// A transport whose other end is a `FakeServer` in the same process. Each request is
/// answered from its own task, so responses can overtake each other as on a real server.
final class FakeTransport: MessageTransport {
    let messages: AsyncThrowingStream<[UInt8], any Error>
    private let sink: AsyncThrowingStream<[UInt8], any Error>.Continuation
    let maxReadWriteSize: Int
    let server: FakeServer
    let closedReason = Mutex<String?>(nil)
    /// Every message the client sent, decoded.
    let sent = Mutex<[Message]>([])

    init(server: FakeServer, maxReadWriteSize: Int = 1 << 20) {
        self.server = server
        self.maxReadWriteSize = maxReadWriteSize
        (messages, sink) = AsyncThrowingStream.makeStream(of: [UInt8].self)
    }

    func send(_ bytes: [UInt8]) async throws {
        if let reason = closedReason.withLock({ $0 }) { throw ClientError.transport(reason) }
        let message = try Message.decode(bytes)
        sent.withLock { $0.append(message) }
        Task { [server, sink] in
            for reply in await server.handle(message) {
                do { sink.yield(try reply.encode()) } catch { fatalError("the fake server cannot encode its \(reply.command) reply: \(error)") }
            }
        }
    }

    func close(reason: String) {
        closedReason.withLock { if $0 == nil { $0 = reason } }
        sink.finish()
    }

    /// Delivers raw bytes as if the server had sent them.
    func inject(_ bytes: [UInt8]) { sink.yield(bytes) }
    func inject(_ message: Message) { sink.yield(try! message.encode()) }

    /// Ends the stream with an error, as a broken connection does.
    func fail(_ error: any Error) { sink.finish(throwing: error) }
}

/// Just enough of a daxshare server for the client's logic: the handshake with real HMAC
/// proofs, an in-memory tree of files, paging LIST, and READ/WRITE that copy to and from the
/// addresses in the buffer descriptors.
final class FakeServer: Sendable {
    struct Options: Sendable {
        var secret: [UInt8] = Array("0123456789abcdef-fake-secret".utf8)
        var sessionId: UInt64 = 0x42
        var maxOutstanding: UInt16 = 32
        var maxListEntries: UInt16 = 1024
        /// Send a wrong server proof (a server that does not know the secret).
        var forgeServerProof = false
        /// Delay of each READ/WRITE, so concurrent requests overlap.
        var ioDelayMicroseconds = 500
        /// A server that predates MKDIR, SET_ATTRIBUTES, STATFS and ALLOCATE: NOT_SUPPORTED.
        var predatesFileSystemCommands = false
        /// Offer RDMA_FLUSH and mark RW extents PERSISTENT_FLUSH (`FakeRemoteAccess.flush`).
        var rdmaFlush = false
    }
    struct Node: Sendable {
        var type: FileType
        var data: [UInt8] = []
        /// What RDMA FLUSH made durable, past the size too (a LAYOUTCOMMIT's new size exposes it).
        var flushed: [UInt8] = []
    }
    struct State: Sendable {
        var nodes: [String: Node] = ["": Node(type: .directory)]
        var open: [UInt64: String] = [:]
        var nextFile: UInt64 = 1
        var clientNonce: [UInt8] = []
        var identity = ""
        var serverNonce: [UInt8] = Array(repeating: 7, count: 32)
        var ioInFlight = 0
        var maxIoInFlight = 0
        var writeFlags: [WriteFlags] = []
        var flushes = 0
        var heldEchoes: [CheckedContinuation<Void, Never>] = []
        /// SET_ATTRIBUTES, ALLOCATE and PUNCH_HOLE requests, as received.
        var attributeChanges: [SetAttributesRequest] = []
        var allocations: [AllocateRequest] = []
        var holes: [PunchHoleRequest] = []
    }
    enum OpenOutcome {
        case opened(UInt64, Node)
        case failed(Status)
    }
    let options: Options
    let state = Mutex(State())
    /// Layouts (see FakeLayouts.swift).
    let layoutState = Mutex(FakeLayoutState())

    init(options: Options = Options()) { self.options = options }

    func addFile(_ path: String, _ data: [UInt8]) { state.withLock { $0.nodes[path] = Node(type: .regular, data: data) } }
    func addDirectory(_ path: String) { state.withLock { $0.nodes[path] = Node(type: .directory) } }
    func file(_ path: String) -> [UInt8]? { state.withLock { $0.nodes[path]?.data } }
    var maxIoInFlight: Int { state.withLock { $0.maxIoInFlight } }

    static func attributes(_ n: Node, index: UInt64 = 1) -> FileAttributes {
        FileAttributes(size: UInt64(n.data.count), allocatedSize: UInt64(n.data.count), mtimeNs: 1_714_564_800_000_000_000,
                       ctimeNs: 1_714_564_800_000_000_000, fileIndex: index, mode: n.type == .directory ? 0o755 : 0o644,
                       nlink: 1, type: n.type, flags: [.dax])
    }

    func handle(_ m: Message) async -> [Message] {
        let h = m.header
        func ok(_ r: Response) -> [Message] { [Message.response(r, to: h)] }
        func fail(_ s: Status) -> [Message] { [Message.error(s, to: h)] }
        guard case let .request(request) = m.body else { return [] }
        if request.command != .negotiate && request.command != .sessionSetup && m.sessionId != options.sessionId {
            return fail(.notAuthenticated)
        }
        if options.predatesFileSystemCommands && [.mkdir, .setAttributes, .statfs, .allocate].contains(request.command) {
            return fail(.notSupported)
        }
        switch request {
        case let .negotiate(n):
            return ok(.negotiate(NegotiateResponse(
                maxOutstandingRequests: options.maxOutstanding, defaultRecallDeadlineMs: 5000,
                capabilities: n.capabilities.intersection(options.rdmaFlush ? Capabilities.allV1.union(.rdmaFlush) : .allV1), serverId: Array(repeating: 9, count: 16),
                maxBufferDescriptors: 16, maxExtentsPerLayout: 16, maxPathLength: 4095,
                maxListEntries: options.maxListEntries, maxOpenFiles: 64, maxLayouts: 16)))
        case let .sessionSetup(.begin(identity, nonce)):
            let serverNonce = state.withLock { s in
                s.clientNonce = nonce
                s.identity = identity
                return s.serverNonce
            }
            return [Message(messageId: m.messageId, sessionId: options.sessionId,
                            body: .response(.sessionSetup(.challenge(serverNonce: serverNonce))))]
        case let .sessionSetup(.proof(proof)):
            let (cn, sn, id) = state.withLock { ($0.clientNonce, $0.serverNonce, $0.identity) }
            let secret = try! SessionSecret(fileContents: options.secret)
            let expected = SessionProof.client(secret: secret, sessionId: options.sessionId, serverNonce: sn,
                                               clientNonce: cn, identity: id)
            guard proof == expected else { return fail(.authFailed) }
            var serverProof = SessionProof.server(secret: secret, sessionId: options.sessionId, serverNonce: sn,
                                                  clientNonce: cn, identity: id)
            if options.forgeServerProof { serverProof[0] ^= 1 }
            return ok(.sessionSetup(.confirmed(serverProof: serverProof)))
        case let .treeConnect(t):
            return t.exportName == "pmem" ? ok(.treeConnect(TreeConnectResponse(treeId: 3, flags: [.dax]))) : fail(.notFound)
        case .logoff: return ok(.logoff)
        case let .echo(e):
            if e.data == Array("hold".utf8) {
                await withCheckedContinuation { k in state.withLock { $0.heldEchoes.append(k) } }
            }
            return ok(.echo(e))
        case .serverStats:
            return ok(.serverStats(ServerStatsResponse(counters: [Counter(name: "bytes_read_two_sided", value: 12),
                                                                  Counter(name: "sessions", value: 1)])))
        case let .stat(.path(_, path)):
            guard let n = state.withLock({ $0.nodes[path] }) else { return fail(.notFound) }
            return ok(.stat(Self.attributes(n)))
        case let .stat(.fileId(id)):
            guard let n = state.withLock({ s in s.open[id].flatMap { s.nodes[$0] } }) else { return fail(.staleFile) }
            return ok(.stat(Self.attributes(n)))
        case let .list(l):
            let (node, names) = state.withLock { s in
                (s.nodes[l.path], s.nodes.keys.filter { Self.parent(of: $0) == l.path && !$0.isEmpty }.sorted())
            }
            guard let node else { return fail(.notFound) }
            guard node.type == .directory else { return fail(.notDirectory) }
            let pageSize = Int(min(l.maxEntries, options.maxListEntries))
            let start = Int(l.cookie)
            let page = names.dropFirst(start).prefix(pageSize)
            let entries = page.map { name in
                ListEntry(attributes: Self.attributes(state.withLock { $0.nodes[name]! }),
                          name: String(name.split(separator: "/").last!))
            }
            let end = start + page.count >= names.count
            return ok(.list(ListResponse(entries: entries, nextCookie: end ? 0 : UInt64(start + page.count), isEnd: end)))
        case let .open(o):
            let result = state.withLock { s -> OpenOutcome in
                if let n = s.nodes[o.path] {
                    if n.type == .directory { return .failed(.isDirectory) }
                    if o.flags.contains(.exclusive) { return .failed(.exists) }
                } else {
                    guard o.flags.contains(.create) else { return .failed(.notFound) }
                    s.nodes[o.path] = Node(type: .regular)
                }
                if o.flags.contains(.truncate) { s.nodes[o.path]!.data = [] }
                let id = s.nextFile
                s.nextFile += 1
                s.open[id] = o.path
                return .opened(id, s.nodes[o.path]!)
            }
            switch result {
            case let .opened(id, n): return ok(.open(OpenResponse(fileId: id, attributes: Self.attributes(n))))
            case let .failed(s): return fail(s)
            }
        case let .close(c):
            return state.withLock { $0.open.removeValue(forKey: c.fileId) } == nil ? fail(.staleFile) : ok(.close)
        case let .setSize(r):
            guard let n = state.withLock({ s -> Node? in
                guard let p = s.open[r.fileId] else { return nil }
                let size = Int(r.size)
                if s.nodes[p]!.data.count > size { s.nodes[p]!.data.removeLast(s.nodes[p]!.data.count - size) }
                else { s.nodes[p]!.data += [UInt8](repeating: 0, count: size - s.nodes[p]!.data.count) }
                return s.nodes[p]
            }) else { return fail(.staleFile) }
            return ok(.setSize(Self.attributes(n)))
        case .flush:
            state.withLock { $0.flushes += 1 }
            return ok(.flush)
        case let .unlink(u):
            return state.withLock { s -> [Message] in
                guard let n = s.nodes[u.path] else { return fail(.notFound) }
                if n.type == .directory && !u.flags.contains(.directory) { return fail(.isDirectory) }
                s.nodes[u.path] = nil
                return ok(.unlink)
            }
        case let .rename(r):
            return state.withLock { s -> [Message] in
                guard let n = s.nodes[r.from] else { return fail(.notFound) }
                if r.flags.contains(.noReplace) && s.nodes[r.to] != nil { return fail(.exists) }
                s.nodes[r.from] = nil
                s.nodes[r.to] = n
                return ok(.rename)
            }
        case let .read(r):
            await beginIO()
            defer { endIO() }
            guard let data = state.withLock({ s in s.open[r.fileId].flatMap { s.nodes[$0]?.data } }) else { return fail(.staleFile) }
            let start = min(Int(r.offset), data.count)
            let n = min(Int(r.length), data.count - start)
            var copied = 0
            for d in r.descriptors where copied < n {
                let k = min(Int(d.length), n - copied)
                let p = UnsafeMutableRawPointer(bitPattern: UInt(d.address))!
                data.withUnsafeBytes { src in p.copyMemory(from: src.baseAddress! + start + copied, byteCount: k) }
                copied += k
            }
            return ok(.read(ReadResponse(bytesRead: UInt32(n), flags: start + n == data.count ? [.endOfFile] : [])))
        case let .write(w):
            await beginIO()
            defer { endIO() }
            var incoming: [UInt8] = []
            for d in w.descriptors {
                let p = UnsafeRawPointer(bitPattern: UInt(d.address))!
                incoming += UnsafeRawBufferPointer(start: p, count: Int(d.length))
            }
            let done = state.withLock { s -> Bool in
                guard let path = s.open[w.fileId] else { return false }
                s.writeFlags.append(w.flags)
                let end = Int(w.offset) + incoming.count
                if s.nodes[path]!.data.count < end {
                    s.nodes[path]!.data += [UInt8](repeating: 0, count: end - s.nodes[path]!.data.count)
                }
                s.nodes[path]!.data.replaceSubrange(Int(w.offset)..<end, with: incoming)
                return true
            }
            return done ? ok(.write(WriteResponse(bytesWritten: w.length))) : fail(.staleFile)
        case let .mkdir(r):
            return state.withLock { s -> [Message] in
                if s.nodes[r.path] != nil { return fail(.exists) }
                guard s.nodes[Self.parent(of: r.path)]?.type == .directory else { return fail(.notFound) }
                s.nodes[r.path] = Node(type: .directory)
                var a = Self.attributes(s.nodes[r.path]!)
                a.mode = r.mode
                return ok(.mkdir(a))
            }
        case let .setAttributes(r):
            return state.withLock { s -> [Message] in
                let path: String? = switch r.target {
                case let .fileId(id): s.open[id]
                case let .path(_, p): p
                }
                guard let path else { return fail(.staleFile) }
                guard let n = s.nodes[path] else { return fail(.notFound) }
                s.attributeChanges.append(r)
                var a = Self.attributes(n)
                if let mode = r.change.mode { a.mode = mode }
                if case let .at(ns) = r.change.modificationTime { a.mtimeNs = ns }
                return ok(.setAttributes(a))
            }
        case .statfs:
            return ok(.statfs(FileSystemStatistics(blockSize: 4096, maxNameLength: 255, totalBlocks: 1000, freeBlocks: 600,
                                                   availableBlocks: 500, totalFiles: 100, freeFiles: 90)))
        case let .allocate(r):
            return state.withLock { s -> [Message] in
                guard let p = s.open[r.fileId] else { return fail(.staleFile) }
                guard r.range.end <= UInt64(Int64.max) else { return fail(.fileTooLarge) }
                s.allocations.append(r)
                let end = Int(r.range.end)
                if !r.flags.contains(.keepSize), s.nodes[p]!.data.count < end {
                    s.nodes[p]!.data += [UInt8](repeating: 0, count: end - s.nodes[p]!.data.count)
                }
                return ok(.allocate(Self.attributes(s.nodes[p]!)))
            }
        case let .punchHole(r):
            let done = state.withLock { s -> Bool in
                guard let p = s.open[r.fileId] else { return false }
                s.holes.append(r)
                let count = s.nodes[p]!.data.count
                let lo = min(Int(r.range.offset), count), hi = min(Int(min(r.range.end, UInt64(count))), count)
                if lo < hi { s.nodes[p]!.data.replaceSubrange(lo..<hi, with: [UInt8](repeating: 0, count: hi - lo)) }
                return true
            }
            guard done else { return fail(.staleFile) }
            // As the server does: the session's own layouts on the file end without a return.
            layoutState.withLock { s in
                for (id, l) in s.layouts where l.fileId == r.fileId {
                    for k in l.rkeys { s.regions[k] = nil }
                    s.layouts[id] = nil
                }
            }
            return ok(.punchHole)
        case let .layoutGet(g): return layoutGet(g, header: h)
        case let .layoutCommit(c): return layoutCommit(c, header: h)
        case let .layoutReturn(r): return layoutReturn(r, header: h)
        default:
            return fail(.notSupported)
        }
    }

    func releaseHeldEchoes() {
        for k in state.withLock({ s in defer { s.heldEchoes = [] }; return s.heldEchoes }) { k.resume() }
    }
    var heldEchoCount: Int { state.withLock { $0.heldEchoes.count } }

    private func beginIO() async {
        state.withLock { s in
            s.ioInFlight += 1
            s.maxIoInFlight = max(s.maxIoInFlight, s.ioInFlight)
        }
        try? await Task.sleep(for: .microseconds(options.ioDelayMicroseconds))
    }

    private func endIO() { state.withLock { $0.ioInFlight -= 1 } }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }
}

/// A connected session over a fake transport.
struct Harness {
    let server: FakeServer
    let transport: FakeTransport
    let registrar: HostRegistrar
    let session: ClientSession
    /// The fake RDMA, for a one-sided harness.
    let access: FakeRemoteAccess?

    /// With `oneSided`, the session can post fake RDMA against the fake server's layout regions
    /// (and so takes layouts when the configuration allows).
    /// `rdmaDelayMicroseconds`: how long each fake RDMA operation takes.
    static func make(_ options: FakeServer.Options = .init(), maxReadWriteSize: Int = 1 << 20, oneSided: Bool = false,
                     rdmaDelayMicroseconds: Int = 200,
                     configure: (inout ClientConfiguration) -> Void = { _ in }) async throws -> Harness {
        let server = FakeServer(options: options)
        let transport = FakeTransport(server: server, maxReadWriteSize: maxReadWriteSize)
        let registrar = HostRegistrar()
        var config = ClientConfiguration()
        configure(&config)
        let access = oneSided ? FakeRemoteAccess(server: server, delayMicroseconds: rdmaDelayMicroseconds) : nil
        let session = try await ClientSession.establish(
            over: transport, registrar: registrar, remoteAccess: access, export: "pmem",
            secret: try SessionSecret(fileContents: options.secret), config: config)
        return Harness(server: server, transport: transport, registrar: registrar, session: session, access: access)
    }

    var registrations: Int { registrar.registrations.withLock { $0 } }
    var callerRegistrations: Int { registrar.callerRegistrations.withLock { $0 } }
}

/// A copy of `data` in page-aligned memory of its own, as a caller of `register` holds it; the
/// caller deallocates it.
func pageAlignedCopy(of data: [UInt8]) -> UnsafeMutableRawBufferPointer {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 4096)
    buffer.copyBytes(from: data)
    return buffer
}

/// Deterministic pseudo-random bytes.
func patternBytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return UInt8(truncatingIfNeeded: x)
    }
}

/// A temporary local path, removed by the caller.
func temporaryPath(_ name: String) -> String {
    "/tmp/daxshare-client-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(name)"
}

func readLocal(_ path: String) throws -> [UInt8] {
    let f = try LocalFile.openForReading(path)
    defer { f.close() }
    return try f.readAll(limit: 1 << 30)
}

func writeLocal(_ path: String, _ bytes: [UInt8]) throws {
    let f = try LocalFile.create(path)
    defer { f.close() }
    try bytes.withUnsafeBytes { try f.write($0) }
}
