import Crypto
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// Layouts as the server grants them, checked from a bare client over real rxe
/// against a real daxshared process on fsdax: the bytes go one-sided, and
/// the NIC enforces mode, range and ownership.
@Suite(.serialized) struct LayoutServerTests {
    static let mib = 1 << 20

    func session(_ server: ServerProcess) async throws -> RawSession {
        try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
    }

    func buffer(_ s: RawSession, _ bytes: [UInt8]) throws -> RegisteredBuffer {
        let b = try RegisteredBuffer(domain: s.channel.connection.domain, length: max(bytes.count, 1), access: [.localWrite])
        b.bytes.copyBytes(from: bytes)
        return b
    }

    @Test func rwLayoutWritesOneSidedAndCommitMakesThemVisible() async throws {
        let server = try ServerProcess(name: "layout-rw", port: 5541)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        let file = try await a.open("f.bin", [.read, .write, .create])
        let layout = try await a.layout(file: file, offset: 0, length: UInt64(Self.mib), .readWrite)
        let extent = try #require(layout.extents.first)
        #expect(extent.flags.contains(.pastEndOfFile) && !extent.flags.contains(.readOnly))

        let data = pattern(Self.mib, seed: 11)
        let out = try buffer(a, data)
        try await a.channel.connection.write(from: [out.region.segment(length: Self.mib)], to: extent.remote)
        // Written but not committed: not visible yet (PROTOCOL.md §5.7).
        guard case let .stat(before) = try await a.request(.stat(.fileId(file))) else { throw TestbedError.missing("stat") }
        #expect(before.size == 0)

        guard case let .layoutCommit(commit) = try await a.request(.layoutCommit(LayoutCommitRequest(
            stateid: layout.stateid, newSize: UInt64(Self.mib), ranges: [ByteRange(offset: 0, length: UInt64(Self.mib))])))
        else { throw TestbedError.missing("commit") }
        #expect(commit.size == UInt64(Self.mib))
        #expect(commit.stateid.seqid == layout.stateid.seqid + 1)

        let counters = try await a.counters()
        #expect(counters["bytes_written_two_sided"] == 0 && counters["bytes_read_two_sided"] == 0)
        #expect(counters["bytes_committed_one_sided"] == UInt64(Self.mib))
        #expect(counters["layouts_live"] == 1 && counters["mrs_live"] == 1)
        _ = try await a.request(.layoutReturn(LayoutReturnRequest(stateid: commit.stateid)))
        let after = try await a.counters()
        #expect(after["layouts_live"] == 0 && after["mrs_live"] == 0 && after["layouts_returned"] == 1)
        // Read the file only now: while layouts exist the server holds a lease,
        // and a non-blocking open of the file (as Foundation's) fails with EAGAIN.
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/f.bin"))
        #expect(Array(onDisk) == data)
        // The rkey died with the return.
        await #expect(throws: VerbsError.self) {
            try await a.channel.connection.write(from: [out.region.segment(length: 4096)], to: extent.remote)
        }
    }

    @Test func uncommittedBytesPastTheEndAreTrimmedAtReturn() async throws {
        let server = try ServerProcess(name: "layout-trim", port: 5542)
        defer { #expect(server.stop() == 0, "log:\n\(server.log.suffix(8000))") }
        let a = try await session(server)
        defer { a.close() }
        let file = try await a.open("t.bin", [.read, .write, .create])
        let layout = try await a.layout(file: file, offset: 0, length: 64 << 10, .readWrite)
        let out = try buffer(a, pattern(64 << 10, seed: 3))
        try await a.channel.connection.write(from: [out.region.segment(length: 64 << 10)], to: layout.extents[0].remote)
        _ = try await a.request(.layoutReturn(LayoutReturnRequest(stateid: layout.stateid)))
        let size = try FileManager.default.attributesOfItem(atPath: server.exportDir + "/t.bin")[.size] as? Int
        #expect(size == 0)
    }

    @Test func readLayoutRefusesWritesInTheNIC() async throws {
        let server = try ServerProcess(name: "layout-ro", port: 5543)
        defer { #expect(server.stop() == 0, "log:\n\(server.log.suffix(8000))") }
        let data = pattern(256 << 10, seed: 5)
        #expect(FileManager.default.createFile(atPath: server.exportDir + "/r.bin", contents: Data(data)))
        let a = try await session(server)
        defer { a.close() }
        let file = try await a.open("r.bin", [.read])
        let layout = try await a.layout(file: file, offset: 0, length: UInt64(data.count), .read)
        let extent = try #require(layout.extents.first)
        #expect(extent.flags.contains(.readOnly))
        let into = try buffer(a, Array(repeating: 0, count: data.count))
        try await a.channel.connection.read(into: [into.region.segment(length: data.count)], from: extent.remote)
        #expect(Array(into.bytes) == data)
        // An RW layout on a file opened read-only is refused by the server...
        await #expect(throws: StatusError(status: .accessDenied)) {
            _ = try await a.layout(file: file, offset: 0, length: 4096, .readWrite)
        }
        // ...and a write through the READ layout by the NIC.
        await #expect {
            try await a.channel.connection.write(from: [into.region.segment(length: 4096)], to: extent.remote)
        } throws: { ($0 as? VerbsError)?.isRemoteAccessError == true }
        // The file is untouched; read it once the layout (and with it the
        // server's lease, which makes a non-blocking open fail) is gone.
        _ = try? await a.request(.layoutReturn(LayoutReturnRequest(stateid: layout.stateid)))
        a.close()
        var onDisk: Data?
        for _ in 0..<50 where onDisk == nil {
            onDisk = try? Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/r.bin"))
            if onDisk == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(onDisk.map(Array.init) == data)
    }

    @Test func anotherClientsRkeyIsUselessOnItsConnection() async throws {
        let server = try ServerProcess(name: "layout-steal", port: 5544)
        defer { #expect(server.stop() == 0, "log:\n\(server.log.suffix(8000))") }
        let a = try await session(server), b = try await session(server)
        defer { a.close(); b.close() }
        let file = try await a.open("s.bin", [.read, .write, .create])
        let layout = try await a.layout(file: file, offset: 0, length: 64 << 10, .readWrite)
        let stolen = layout.extents[0].remote
        let bBuf = try buffer(b, pattern(4096, seed: 9))
        await #expect {
            try await b.channel.connection.write(from: [bBuf.region.segment(length: 4096)], to: stolen)
        } throws: { ($0 as? VerbsError)?.isRemoteAccessError == true }
        // A's own use is untouched.
        let aBuf = try buffer(a, pattern(4096, seed: 10))
        try await a.channel.connection.write(from: [aBuf.region.segment(length: 4096)], to: stolen)
        let back = try buffer(a, Array(repeating: 0, count: 4096))
        try await a.channel.connection.read(into: [back.region.segment(length: 4096)], from: stolen)
        #expect(Array(back.bytes) == pattern(4096, seed: 10))
    }

    @Test func committedBytesSurviveKill9AndRestart() async throws {
        let server = try ServerProcess(name: "layout-crash", port: 5545)
        let a = try await session(server)
        let file = try await a.open("c.bin", [.read, .write, .create])
        let layout = try await a.layout(file: file, offset: 0, length: UInt64(2 * Self.mib), .readWrite)
        let data = pattern(Self.mib, seed: 21)
        let out = try buffer(a, data)
        try await a.channel.connection.write(from: [out.region.segment(length: Self.mib)], to: layout.extents[0].remote)
        _ = try await a.request(.layoutCommit(LayoutCommitRequest(
            stateid: layout.stateid, newSize: UInt64(Self.mib), ranges: [ByteRange(offset: 0, length: UInt64(Self.mib))])))
        // Past the commit: written, never committed.
        try await a.channel.connection.write(
            from: [out.region.segment(length: 4096)], to: try #require(layout.extents[0].remote.slice(offset: UInt64(Self.mib), length: 4096)))
        server.kill9()
        a.close()

        let restarted = try ServerProcess(name: "layout-crash", port: 5545, restarting: server)
        defer { #expect(restarted.stop() == 0, "log:\n\(restarted.log)") }
        let b = try await session(restarted)
        defer { b.close() }
        let again = try await b.open("c.bin", [.read])
        guard case let .stat(attrs) = try await b.request(.stat(.fileId(again))) else { throw TestbedError.missing("stat") }
        #expect(attrs.size == UInt64(Self.mib), "the visible size is the committed one")
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: restarted.exportDir + "/c.bin"))
        #expect(onDisk.count == Self.mib)
        #expect(Array(onDisk.prefix(Self.mib)) == data)
    }

    /// Where the device takes no `ibv_advise_mr` (rxe with rdma-core 56.1, the testbed's), the
    /// server says so exactly once and stops asking, rather than once per layout; where it
    /// does, never.
    @Test func unsupportedPrefetchIsReportedOnce() async throws {
        let server = try ServerProcess(name: "layout-prefetch", port: 5547)
        defer { #expect(server.stop() == 0, "log:\n\(server.log.suffix(8000))") }
        let a = try await session(server), b = try await session(server)
        defer { a.close(); b.close() }
        for (s, name) in [(a, "p.bin"), (b, "q.bin")] {
            let file = try await s.open(name, [.read, .write, .create])
            for i in 0..<3 {
                _ = try await s.layout(file: file, offset: UInt64(i) << 20, length: 64 << 10, .readWrite)
            }
        }
        let said = server.log.components(separatedBy: "layout prefetch is not supported").count - 1
        // The same device, asked the same thing from this side: once if it cannot, never if it can.
        let probe = try RegisteredBuffer(domain: a.channel.connection.domain, length: 64 << 10, access: [.localWrite, .onDemand])
        var unsupported = false
        do { try probe.region.prefetch(forWrite: true) } catch {
            if case .call(_, .notSupported) = error { unsupported = true }
        }
        #expect(said == (unsupported ? 1 : 0))
    }

    /// A client that makes the server's queue pair fail (a write through a returned layout's
    /// rkey), again and again: the disconnect the asynchronous QP error starts must not race the
    /// server's own close of that connection (it did, and crashed the server in ucma_shutdown).
    @Test func queuePairErrorsRacingTheirCloseLeaveTheServerUp() async throws {
        let server = try ServerProcess(name: "layout-qperr", port: 5548)
        defer { #expect(server.stop() == 0, "log:\n\(server.log.suffix(8000))") }
        for i in 0..<10 {
            let a = try await session(server)
            let file = try await a.open("e\(i).bin", [.read, .write, .create])
            let layout = try await a.layout(file: file, offset: 0, length: 64 << 10, .readWrite)
            _ = try await a.request(.layoutReturn(LayoutReturnRequest(stateid: layout.stateid)))
            let out = try buffer(a, pattern(4096, seed: UInt8(i)))
            await #expect(throws: VerbsError.self) {
                try await a.channel.connection.write(from: [out.region.segment(length: 4096)], to: layout.extents[0].remote)
            }
            a.close()
        }
        let b = try await session(server)
        defer { b.close() }
        #expect(try await b.counters()["layouts_live"] == 0)
    }

    @Test func aVanishedClientsLayoutsAreReleased() async throws {
        let server = try ServerProcess(name: "layout-vanish", port: 5546)
        defer { #expect(server.stop() == 0, "log:\n\(server.log.suffix(8000))") }
        let a = try await session(server), watcher = try await session(server)
        defer { watcher.close() }
        let file = try await a.open("v.bin", [.read, .write, .create])
        for i in 0..<3 {
            _ = try await a.layout(file: file, offset: UInt64(i) << 20, length: 1 << 20, .readWrite)
        }
        #expect(try await watcher.counters()["mrs_live"] == 3)
        a.channel.connection.close()  // no LAYOUTRETURN, no CLOSE
        var live: UInt64? = 3
        for _ in 0..<50 where live != 0 {
            try await Task.sleep(for: .milliseconds(100))
            live = try await watcher.counters()["mrs_live"]
        }
        #expect(live == 0)
        #expect(try await watcher.counters()["layouts_live"] == 0)
        let size = try FileManager.default.attributesOfItem(atPath: server.exportDir + "/v.bin")[.size] as? Int
        #expect(size == 0, "nothing was committed")
    }
}
