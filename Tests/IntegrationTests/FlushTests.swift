import DaxshareClient
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// Issue 17: RDMA FLUSH to persistence as the one-sided commit (PROTOCOL.md §5.8), against real
/// rxe (Linux 7.2 runs FLUSH on ODP regions) and a real daxshared on fsdax, built against the
/// rdma-core that scripts/build-rdma-core makes (Debian 12's has no FLUSH: these tests then fail
/// and say so, rather than pass without testing anything).
@Suite(.serialized) struct FlushTests {
    static let deadlineMs = 1500

    func requireFlushBuild() throws {
        try #require(Device.buildHasFlush, "\(Device.flushSupportDescription): run scripts/build-rdma-core, then make build")
        let attributes = try Device(name: "rxe0").attributes()
        try #require(attributes.flushesOnDemandMemory,
                     "rxe0: FLUSH_PERSISTENT \(attributes.flushPersistent), ODP FLUSH \(attributes.odp.rcFlush)")
    }

    func client(_ server: ServerProcess, _ configure: (inout ClientConfiguration) -> Void = { _ in }) async throws -> ClientSession {
        var config = ClientConfiguration()
        configure(&config)
        return try await ClientSession.connect(host: try Testbed.address, port: server.port, export: "data",
                                               secret: try SessionSecret(contentsOf: server.secretFile), config: config)
    }

    /// What `flush` threw, nil if it returned.
    func flushFailure(_ file: RemoteFile) async -> ClientError? {
        do throws(ClientError) {
            try await file.flush()
            return nil
        } catch {
            return error
        }
    }

    func counters(_ session: ClientSession) async throws -> [String: UInt64] {
        Dictionary(uniqueKeysWithValues: try await session.serverStats().map { ($0.name, $0.value) })
    }

    /// Written one-sided, made durable by FLUSH alone: the bytes are in the file, byte for byte,
    /// and the server's CPU ran no pmem_persist for them (SERVER_STATS' pmem_persists). Growing
    /// the file still takes a LAYOUTCOMMIT, of the size only.
    @Test func flushedWritesAreOnPmemWithoutTheServersCPU() async throws {
        try requireFlushBuild()
        let server = try ServerProcess(name: "flush-commit", port: 5921)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let session = try await client(server)
        defer { Task { await session.close() } }
        #expect(session.server.capabilities.contains(.rdmaFlush), "NEGOTIATE: \(session.server.capabilities)")

        // Inside the size (no LAYOUTCOMMIT at all), then past it (one, for the size).
        let size = 1 << 20
        let first = pattern(size, seed: 41)
        let file = try await session.open("flushed.bin", flags: [.read, .write, .create])
        try await file.write(at: 0, first, writeThrough: false)
        try await file.flush()
        let before = try await counters(session)
        let second = pattern(size, seed: 42)
        try await file.write(at: 0, second, writeThrough: false)                     // overwrite: FLUSH only
        try await file.flush()
        let middle = try await counters(session)
        let tail = pattern(256 << 10, seed: 43)
        try await file.write(at: UInt64(size), tail, writeThrough: false)          // grows: FLUSH + size commit
        try await file.flush()
        // From registered memory, durable: four WRITE + FLUSH chains in flight (directPieceLimit).
        let third = pattern(size, seed: 45)
        let registered = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { registered.deallocate() }
        registered.copyBytes(from: third)
        let registration = try session.register(registered)
        try await file.write(from: UnsafeRawBufferPointer(registered), at: 0, writeThrough: true)
        session.deregister(registration)
        let mixed = pattern(3 * 4096 + 100, seed: 44)
        try await file.write(at: 8192 + 17, mixed, writeThrough: true)             // chained WRITE + FLUSH
        let after = try await counters(session)
        #expect(file.usage.flushCommits >= 2, "usage: \(file.usage)")
        #expect(file.usage.twoSidedBytes <= 4096, "usage: \(file.usage)")

        #expect(middle["pmem_persists"] == before["pmem_persists"], "\(before) -> \(middle)")
        #expect(middle["bytes_committed_one_sided"] == before["bytes_committed_one_sided"], "no LAYOUTCOMMIT of data")
        #expect(after["pmem_persists"] == before["pmem_persists"], "\(before) -> \(after)")
        #expect(try await file.stat().size == UInt64(size + (256 << 10)))
        try await file.close()

        var expected = third + tail
        expected.replaceSubrange((8192 + 17)..<(8192 + 17 + mixed.count), with: mixed)
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/flushed.bin"))
        #expect(onDisk.count == expected.count)
        #expect(Array(onDisk) == expected, "first difference at \(zip(onDisk, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
    }

    /// The same writes with FLUSH turned off by the client: LAYOUTCOMMIT, which the server's CPU
    /// persists (the counter the test above holds still moves here, so it measures something).
    @Test func withoutFlushTheServerPersists() async throws {
        try requireFlushBuild()
        let server = try ServerProcess(name: "flush-off", port: 5922)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let session = try await client(server) { $0.layouts.flushCommits = false }
        defer { Task { await session.close() } }
        #expect(!session.server.capabilities.contains(.rdmaFlush))
        let file = try await session.open("committed.bin", flags: [.read, .write, .create])
        let before = try await counters(session)
        try await file.write(at: 0, pattern(1 << 20, seed: 5), writeThrough: false)
        try await file.flush()
        let after = try await counters(session)
        #expect((after["pmem_persists"] ?? 0) > (before["pmem_persists"] ?? 0), "\(before) -> \(after)")
        #expect(file.usage.flushCommits == 0)
        try await file.close()
    }

    /// A READ layout's region is registered without FLUSH access: a FLUSH through it fails in the
    /// NIC (a remote access error), and the RW layout beside it takes one.
    @Test func aFlushThroughAReadLayoutFailsInTheNIC() async throws {
        try requireFlushBuild()
        let server = try ServerProcess(name: "flush-read", port: 5923)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        #expect(FileManager.default.createFile(atPath: server.exportDir + "/r.bin", contents: Data(pattern(1 << 20, seed: 7))))
        let a = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret,
                                     capabilities: [.layouts, .callbacks, .rdmaFlush])
        defer { a.close() }
        #expect(a.agreed.contains(.rdmaFlush) && a.channel.connection.canFlush)
        let rw = try await a.open("w.bin", [.read, .write, .create])
        let writable = try await a.layout(file: rw, offset: 0, length: 64 << 10, .readWrite)
        #expect(writable.extents.allSatisfy { $0.flags.contains(.persistentFlush) }, "\(writable.extents)")
        try await a.channel.connection.flush(writable.extents[0].remote)

        let ro = try await a.open("r.bin", [.read])
        let readable = try await a.layout(file: ro, offset: 0, length: 1 << 20, .read)
        #expect(!readable.extents.contains { $0.flags.contains(.persistentFlush) })
        await #expect {
            try await a.channel.connection.flush(readable.extents[0].remote)
        } throws: { ($0 as? VerbsError)?.isRemoteAccessError == true }
    }

    /// A client that ignores its recall is fenced; its FLUSH then fails in the NIC, and the
    /// commit reports the bytes since its last commit as not written (never as durable).
    @Test func aFlushAfterTheLayoutWasFencedReportsTheBytesUnwritten() async throws {
        try requireFlushBuild()
        let server = try ServerProcess(name: "flush-fenced", port: 5924,
                                       arguments: ["--recall-deadline-ms", "\(Self.deadlineMs)"])
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let session = try await client(server) { $0.layouts.ignoreRecallsForTesting = true }
        defer { Task { await session.close() } }
        let file = try await session.open("fenced.bin", flags: [.read, .write, .create])
        try await file.write(at: 0, pattern(256 << 10, seed: 1), writeThrough: false)
        try await file.flush()  // durable, and the file is 256 KiB
        let lost = pattern(128 << 10, seed: 2)
        try await file.write(at: 0, lost, writeThrough: false)

        // A local open breaks the lease; the client never returns the layout and is fenced.
        let r = try run("/bin/sh", ["-c", "exec 3<>\"$0\" && echo opened", server.exportDir + "/fenced.bin"])
        #expect(r.status == 0, "local open: \(r.err)")
        #expect(server.log.contains("fenced"), "log:\n\(server.log)")

        let failure = await flushFailure(file)
        guard case let .layoutLost(_, unwritten)? = failure else {
            Issue.record("a commit through a fenced layout: \(String(describing: failure)) (not layoutLost)")
            return
        }
        #expect(unwritten >= UInt64(lost.count), "\(String(describing: failure))")
        // What the first commit made durable is still there.
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/fenced.bin"))
        #expect(onDisk.count == 256 << 10)
    }
}
