import DaxshareBench
import DaxshareClient
import DaxshareVerbs
import DaxshareWire
import Foundation
import Synchronization

/// The modes that go through the client library against a daxshared: `two-sided` (READ/WRITE
/// requests, the server doing the RDMA) and `one-sided` (layouts: the client doing RDMA
/// READ/WRITE straight into the server's pmem). How a mode configures its sessions is all that
/// differs: when the client library's data-path configuration changes, only `configure` does.
// @unchecked: its sessions are set up before a run and only read by the run's tasks.
final class ClientMode: BenchMode, @unchecked Sendable {
    let name: String
    let server: ServerHandle
    let configure: @Sendable (inout ClientConfiguration) -> Void
    /// Every write durable before it completes (write-through), instead of one commit at the end
    /// of each repeat: the commit is in each write's latency (`daxshare-bench data --durable`).
    var durable = false
    private var sessions: [ClientSession] = []
    private var clientTargets: [ClientTarget] = []
    private var lastUsage: [DataPathUsage] = []

    init(name: String, server: ServerHandle, configure: @escaping @Sendable (inout ClientConfiguration) -> Void) {
        self.name = name
        self.server = server
        self.configure = configure
    }

    static func twoSided(server: ServerHandle, loop: EventLoop) -> ClientMode {
        ClientMode(name: "two-sided", server: server) { $0.useLayouts = false; $0.eventLoop = loop }
    }

    /// Layouts, every commit a LAYOUTCOMMIT (the server's CPU persists the bytes).
    static func oneSided(server: ServerHandle, loop: EventLoop) -> ClientMode {
        ClientMode(name: "one-sided", server: server) { $0.useLayouts = true; $0.layouts.flushCommits = false; $0.eventLoop = loop }
    }

    /// Layouts, commits by RDMA FLUSH where the server offers it (PROTOCOL.md §5.8): the server's
    /// CPU takes no part. `setUp` fails (and the mode is left out) where FLUSH was not agreed.
    static func oneSidedFlush(server: ServerHandle, loop: EventLoop) -> ClientMode {
        ClientMode(name: "one-sided+flush", server: server) { $0.useLayouts = true; $0.layouts.flushCommits = true; $0.eventLoop = loop }
    }

    func setUp(clients: Int, qd: Int, maxSize: Int, span: Int) async throws {
        let secret = try SessionSecret(contentsOf: server.secretFile)
        let chunk = min(maxSize, 1 << 20)
        let perIO = (maxSize + chunk - 1) / chunk
        for c in 0..<clients {
            var config = ClientConfiguration()
            config.queueDepth = min(64, max(1, qd * perIO))
            config.bounceBufferBytes = config.queueDepth * chunk
            config.layouts.queueDepth = min(64, max(16, qd * perIO))
            configure(&config)
            let session = try await ClientSession.connect(host: server.host, port: server.port, export: server.export,
                                                          secret: secret, config: config)
            sessions.append(session)
            if name == "one-sided+flush", !session.server.capabilities.contains(.rdmaFlush) {
                throw BenchFailure("RDMA FLUSH was not agreed (\(Device.flushSupportDescription); daxshared --version says the server's)")
            }
            let path = "bench-\(name)-\(getpid())-c\(c).dat"
            let file = try await session.open(path, flags: [.read, .write, .create, .truncate])
            // Fill the whole span once, so reads find data and layouts cover it.
            file.expectWrites(upTo: UInt64(span))
            let fill = UnsafeMutableRawBufferPointer.allocate(byteCount: min(span, 4 << 20), alignment: 4096)
            defer { fill.deallocate() }
            for i in 0..<fill.count { fill[i] = UInt8(truncatingIfNeeded: i &* 31 &+ c) }
            var done = 0
            while done < span {
                let n = min(fill.count, span - done)
                try await file.write(from: UnsafeRawBufferPointer(rebasing: fill[0..<n]), at: UInt64(done))
                done += n
            }
            try await file.flush()
            // The I/O buffers are registered with the session: reads and writes are zero-copy.
            let buffers = SlotBuffers(count: qd, size: maxSize)
            _ = try session.register(buffers.memory)
            clientTargets.append(ClientTarget(file: file, buffers: buffers, durable: durable))
            lastUsage.append(file.usage)
        }
    }

    func targets(clients: Int) -> [any IOTarget] { Array(clientTargets.prefix(clients)) }

    func serverCPUSeconds() -> Double? { server.cpuSeconds() }

    func finishRepeat(op: BenchOp, clients: Int) async throws -> String? {
        let active = clientTargets.prefix(clients)
        if op == .write && !durable {
            // The durability point is part of the measured time.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in active { group.addTask { try await t.file.flush() } }
                try await group.waitForAll()
            }
        }
        // Say so when bytes moved another way than the mode's name claims.
        var notes: [String] = []
        for (i, t) in active.enumerated() {
            let now = t.file.usage
            let before = lastUsage[i]
            lastUsage[i] = now
            let one = now.oneSidedBytes - before.oneSidedBytes, two = now.twoSidedBytes - before.twoSidedBytes
            if name.hasPrefix("one-sided"), two > 0 {
                let pct = Double(two) / Double(max(1, one + two)) * 100
                notes.append("\(TableFormat.fixed(pct, 1))% two-sided" + (now.fallbackReason.map { " (\($0))" } ?? ""))
            }
            if name == "two-sided", one > 0 { notes.append("moved one-sided") }
        }
        return notes.isEmpty ? nil : Array(Set(notes)).sorted().joined(separator: "; ")
    }

    func tearDown() async {
        for t in clientTargets { try? await t.file.close() }
        clientTargets.removeAll()
        for s in sessions { await s.close() }
        sessions.removeAll()
    }
}

/// Plain memory for each slot's I/O: the client library copies through its own registered
/// staging/bounce buffers, as any application's buffer would be.
// @unchecked: each slot is used by one I/O at a time (the load generator's slot index).
final class SlotBuffers: @unchecked Sendable {
    let size: Int
    let memory: UnsafeMutableRawBufferPointer
    init(count: Int, size: Int) {
        self.size = size
        memory = UnsafeMutableRawBufferPointer.allocate(byteCount: count * size, alignment: 4096)
        memory.initializeMemory(as: UInt8.self, repeating: 0x5A)
    }
    func slot(_ s: Int, length: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: memory[(s * size)..<(s * size + length)])
    }
    deinit { memory.deallocate() }
}

// @unchecked: its buffers are SlotBuffers (see there).
struct ClientTarget: IOTarget, @unchecked Sendable {
    let file: RemoteFile
    let buffers: SlotBuffers
    let durable: Bool

    func perform(_ op: BenchOp, offset: UInt64, length: Int, slot: Int) async throws {
        let buffer = buffers.slot(slot, length: length)
        switch op {
        case .read:
            let n = try await file.read(at: offset, into: buffer)
            if n != length { throw BenchFailure("short read: \(n) of \(length) bytes at \(offset)") }
        case .write:
            try await file.write(from: UnsafeRawBufferPointer(buffer), at: offset, writeThrough: durable)
        }
    }
}
