import DaxshareBench
import DaxsharePmem
import DaxshareVerbs
import Glibc
import SystemPackage

/// The baselines: RDMA READ/WRITE with the verbs layer between two connections in this process.
/// `raw`: the target is a plain registered anonymous buffer. `raw-odp`: the target is an ODP
/// region over a MAP_SYNC mapping of a file on the fsdax mount, prefetched: what a layout points
/// at, so the limit the one-sided path can approach.
// @unchecked: its connections are set up before a run and only read by the run's tasks.
final class RawMode: BenchMode, @unchecked Sendable {
    let name: String
    let onDemand: Bool
    let address: String
    let pmemDirectory: String?
    private var listener: Listener?
    private var pairs: [(server: Connection, client: Connection)] = []
    private var clientTargets: [RawTarget] = []
    private var keepAlive: [AnyObject] = []
    private var file: PmemFile?
    private var filePath: String?

    let loop: EventLoop

    init(onDemand: Bool, address: String, pmemDirectory: String?, loop: EventLoop) {
        self.loop = loop
        self.name = onDemand ? "raw-odp" : "raw"
        self.onDemand = onDemand
        self.address = address
        self.pmemDirectory = pmemDirectory
    }

    func setUp(clients: Int, qd: Int, maxSize: Int, span: Int) async throws {
        var options = ConnectionOptions()
        options.sendQueueDepth = max(options.sendQueueDepth, qd * 2)
        let listener = try Listener(host: address, port: 0, loop: loop)
        self.listener = listener
        var mapping: PmemMapping?
        if onDemand {
            guard let dir = pmemDirectory else { throw BenchFailure("raw-odp needs --pmem (a directory on an fsdax mount)") }
            let path = "\(dir)/bench-raw-odp-\(getpid()).dat"
            let f = try PmemFile.open(FilePath(path), .readWrite, options: [.create, .truncate], permissions: [.ownerReadWrite])
            try f.allocate(offset: 0, length: span * clients)
            let m = try f.map(length: span * clients)
            guard m.isPmem else {
                throw BenchFailure("\(dir) is not DAX: MAP_SYNC refused (\(m.fallbackReason.map { "\($0)" } ?? "?"))")
            }
            file = f
            filePath = path
            mapping = m
            keepAlive.append(m)
        }
        let opts = options
        for c in 0..<clients {
            let accepting = Task { () async throws -> Connection in
                var requests = listener.requests.makeAsyncIterator()
                guard let request = await requests.next() else { throw BenchFailure("listener closed") }
                return try await request.accept(options: opts)
            }
            let client = try await Connection.connect(host: address, port: listener.address.port, options: opts, loop: loop)
            let server = try await accepting.value
            pairs.append((server, client))
            let remote: RemoteMemory
            let access: MemoryAccess = [.localWrite, .remoteRead, .remoteWrite]
            if let m = mapping, let base = m.baseAddress {
                let region = try MemoryRegion(domain: server.domain, address: base + c * span, length: span,
                                              access: access.union(.onDemand), owner: m)
                // Best effort: fault the pages in now, as the server does at LAYOUTGET.
                try? region.prefetch(forWrite: true)
                keepAlive.append(region)
                remote = region.remote()
            } else {
                let buffer = try RegisteredBuffer(domain: server.domain, length: span, access: access)
                keepAlive.append(buffer)
                remote = buffer.region.remote()
            }
            let local = try RegisteredBuffer(domain: client.domain, length: qd * maxSize, access: [.localWrite])
            for i in stride(from: 0, to: local.bytes.count, by: 4096) { local.bytes[i] = UInt8(truncatingIfNeeded: i >> 12) }
            clientTargets.append(RawTarget(connection: client, local: local, slotSize: maxSize, remote: remote))
        }
    }

    func targets(clients: Int) -> [any IOTarget] { Array(clientTargets.prefix(clients)) }

    func tearDown() async {
        clientTargets.removeAll()
        for p in pairs { p.client.close(); p.server.close() }
        pairs.removeAll()
        keepAlive.removeAll()
        listener?.close()
        try? file?.close()
        if let p = filePath { unlink(p) }
    }
}

/// One client connection: slot `s` uses bytes `[s * slotSize, (s + 1) * slotSize)` of `local`.
struct RawTarget: IOTarget {
    let connection: Connection
    let local: RegisteredBuffer
    let slotSize: Int
    let remote: RemoteMemory

    func perform(_ op: BenchOp, offset: UInt64, length: Int, slot: Int) async throws {
        let segment = local.region.segment(offset: slot * slotSize, length: length)
        guard let target = remote.slice(offset: offset, length: UInt64(length)) else {
            throw BenchFailure("offset \(offset)+\(length) outside the target")
        }
        switch op {
        case .read: try await connection.read(into: segment, from: target)
        case .write: try await connection.write(from: segment, to: target)
        }
    }
}
