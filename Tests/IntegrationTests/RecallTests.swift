import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// Layouts under a lease (PROTOCOL.md §5.6), against a real daxshared process:
/// a local process opening the file, or another client truncating it, makes
/// the server recall the layouts first and fence whoever does not answer.
@Suite(.serialized) struct RecallTests {
    // Long enough that a cooperative return under emulation never looks like a fence.
    static let deadlineMs = 3000

    func server(_ name: String, port: UInt16) throws -> ServerProcess {
        try ServerProcess(name: name, port: port, arguments: ["--recall-deadline-ms", "\(Self.deadlineMs)", "--log-level", "info"])
    }

    func session(_ server: ServerProcess) async throws -> RawSession {
        try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
    }

    func buffer(_ s: RawSession, _ bytes: [UInt8]) throws -> RegisteredBuffer {
        let b = try RegisteredBuffer(domain: s.channel.connection.domain, length: max(bytes.count, 1), access: [.localWrite])
        b.bytes.copyBytes(from: bytes)
        return b
    }

    /// Opens `path` O_RDWR in another process (as any local program would);
    /// returns how long the open took.
    func localOpen(_ path: String) throws -> Duration {
        let started = ContinuousClock.now
        let r = try run("/bin/sh", ["-c", "exec 3<>\"$0\" && echo opened", path])
        #expect(r.status == 0 && r.out.contains("opened"), "local open: \(r.err)")
        return ContinuousClock.now - started
    }

    @Test func aLocalOpenRecallsTheLayoutAndWaitsForItsReturn() async throws {
        let server = try server("recall-open", port: 5551)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        let file = try await a.open("open.bin", [.read, .write, .create])
        let layout = try await a.layout(file: file, offset: 0, length: 1 << 20, .readWrite)
        let data = pattern(1 << 20, seed: 31)
        let out = try buffer(a, data)
        try await a.channel.connection.write(from: [out.region.segment(length: 1 << 20)], to: layout.extents[0].remote)
        // The client keeps what it wrote only by committing it when recalled.
        a.answerRecalls { _ in [ByteRange(offset: 0, length: 1 << 20)] }

        let took = try localOpen(server.exportDir + "/open.bin")
        #expect(took < .milliseconds(Self.deadlineMs), "the opener waited \(took): the client was fenced, not recalled")
        let counters = try await a.counters()
        #expect(counters["layouts_recalled"] == 1 && counters["layouts_revoked"] == 0)
        // Under a delegation the opener may go on as soon as the client's LAYOUTCOMMIT has set
        // the file's times (the server gives the delegation up for its own change during a
        // break, FileLayouts.ownChange), a moment before its LAYOUTRETURN is served.
        #expect(await eventually(10) { try await a.counters()["layouts_live"] == 0 }, "the layout outlived its recall")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/open.bin"))) == data)
        #expect(server.log.contains("recall (LEASE_BREAK)") || server.log.contains("recall (leaseBreak)"), "log:\n\(server.log)")
    }

    @Test func aSilentClientIsFencedAtTheDeadline() async throws {
        let server = try server("recall-fence", port: 5552)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        let file = try await a.open("fence.bin", [.read, .write, .create])
        let layout = try await a.layout(file: file, offset: 0, length: 64 << 10, .readWrite)
        // No one answers a's recalls.
        let took = try localOpen(server.exportDir + "/fence.bin")
        #expect(took >= .milliseconds(Self.deadlineMs - 100), "the opener went on before the deadline: \(took)")
        #expect(took < .milliseconds(Self.deadlineMs + 10_000))
        // Its next request learns the layout is revoked...
        await #expect(throws: StatusError(status: .layoutRevoked)) {
            _ = try await a.request(.layoutCommit(LayoutCommitRequest(
                stateid: layout.stateid, newSize: 4096, ranges: [ByteRange(offset: 0, length: 4096)])))
        }
        // ...and its next RDMA operation fails in the NIC.
        let out = try buffer(a, pattern(4096, seed: 1))
        await #expect {
            try await a.channel.connection.write(from: [out.region.segment(length: 4096)], to: layout.extents[0].remote)
        } throws: { ($0 as? VerbsError)?.isRemoteAccessError == true }
        #expect(server.log.contains("fenced"), "log:\n\(server.log)")
    }

    @Test func anotherClientsTruncateRecallsFirstAndTheHolderSurvives() async throws {
        let server = try server("recall-truncate", port: 5553)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server), b = try await session(server)
        defer { a.close(); b.close() }
        let fileA = try await a.open("t.bin", [.read, .write, .create])
        let layout = try await a.layout(file: fileA, offset: 0, length: 1 << 20, .readWrite)
        let out = try buffer(a, pattern(1 << 20, seed: 2))
        try await a.channel.connection.write(from: [out.region.segment(length: 1 << 20)], to: layout.extents[0].remote)
        _ = try await a.request(.layoutCommit(LayoutCommitRequest(
            stateid: layout.stateid, newSize: 1 << 20, ranges: [ByteRange(offset: 0, length: 1 << 20)])))
        a.answerRecalls()

        let fileB = try await b.open("t.bin", [.read, .write])
        guard case let .setSize(attrs) = try await b.request(.setSize(SetSizeRequest(fileId: fileB, size: 4096))) else {
            throw TestbedError.missing("set size")
        }
        #expect(attrs.size == 4096)
        // A was recalled, not cut off: its connection and session still work.
        #expect(a.channel.connection.isConnected)
        let counters = try await a.counters()
        #expect(counters["layouts_recalled"] == 1 && counters["layouts_revoked"] == 0)
        guard case let .echo(e) = try await a.request(.echo(EchoMessage(data: [1, 2, 3]))) else { throw TestbedError.missing("echo") }
        #expect(e.data == [1, 2, 3])
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/t.bin"))) == pattern(1 << 20, seed: 2).prefix(4096).map { $0 })
    }

    @Test func sixteenHoldersAreAllRecalledByOneOpen() async throws {
        let server = try server("recall-sixteen", port: 5554)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        #expect(FileManager.default.createFile(atPath: server.exportDir + "/shared.bin", contents: Data(pattern(256 << 10, seed: 4))))
        var sessions: [RawSession] = []
        for _ in 0..<16 {
            let s = try await session(server)
            let f = try await s.open("shared.bin", [.read])
            _ = try await s.layout(file: f, offset: 0, length: 256 << 10, .read)
            s.answerRecalls()
            sessions.append(s)
        }
        defer { sessions.forEach { $0.close() } }
        #expect(try await sessions[0].counters()["layouts_live"] == 16)
        let took = try localOpen(server.exportDir + "/shared.bin")
        #expect(took < .milliseconds(Self.deadlineMs))
        let counters = try await sessions[0].counters()
        #expect(counters["layouts_recalled"] == 16 && counters["layouts_revoked"] == 0 && counters["layouts_live"] == 0)
    }

    @Test func aRecallDuringOneSidedWritesLosesNoCommittedByte() async throws {
        let server = try server("recall-inflight", port: 5555)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        let file = try await a.open("w.bin", [.read, .write, .create])
        let size = 4 << 20, chunk = 64 << 10
        let layout = try await a.layout(file: file, offset: 0, length: UInt64(size), .readWrite)
        let data = pattern(size, seed: 8)
        let out = try buffer(a, data)
        let progress = WriteProgress()
        // The writer: chunk after chunk, until told to stop.
        let writer = Task {
            var offset = 0
            while offset < size, !progress.stopped {
                try await a.channel.connection.write(
                    from: [out.region.segment(offset: offset, length: chunk)],
                    to: try #require(layout.extents[0].remote.slice(offset: UInt64(offset), length: UInt64(chunk))))
                offset += chunk
                progress.written = offset
            }
        }
        // On recall: stop issuing, wait for the write in flight, commit what was written, return.
        a.answerRecalls { _ in
            progress.stopped = true
            _ = await writer.result
            return progress.written > 0 ? [ByteRange(offset: 0, length: UInt64(progress.written))] : []
        }
        try await Task.sleep(for: .milliseconds(300))
        _ = try localOpen(server.exportDir + "/w.bin")
        let written = progress.written
        let onDisk = Array(try Data(contentsOf: URL(fileURLWithPath: server.exportDir + "/w.bin")))
        #expect(written > 0)
        #expect(onDisk.count == written, "visible size is what was committed")
        #expect(onDisk == Array(data.prefix(written)))
        #expect(try await a.counters()["layouts_revoked"] == 0)
    }
}

final class WriteProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var _written = 0, _stopped = false
    var written: Int { get { lock.withLock { _written } } set { lock.withLock { _written = newValue } } }
    var stopped: Bool { get { lock.withLock { _stopped } } set { lock.withLock { _stopped = newValue } } }
}
