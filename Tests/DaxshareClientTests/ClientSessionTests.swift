@testable import DaxshareClient
import DaxshareWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The session logic end to end against an in-process fake server (no RDMA on the host):
/// handshake, dispatch, namespace operations, chunked two-sided I/O and transfers.
@Suite("Client session over a fake server")
struct ClientSessionTests {
    @Test func handshakeNegotiatesAuthenticatesAndConnectsTheTree() async throws {
        let h = try await Harness.make { $0.identity = "alice" }
        #expect(h.session.sessionId == 0x42)
        #expect(h.session.treeId == 3)
        #expect(h.session.treeFlags == [.dax])
        #expect(h.session.server.maxOutstandingRequests == 32)
        #expect(h.server.state.withLock { $0.identity } == "alice")
        let sent = h.transport.sent.withLock { $0 }
        #expect(sent.map(\.command) == [.negotiate, .sessionSetup, .sessionSetup, .treeConnect])
        #expect(sent.map(\.sessionId) == [0, 0, 0x42, 0x42])
        #expect(sent.map(\.messageId) == [1, 2, 3, 4])
        #expect(try await h.session.echo([1, 2, 3]) == [1, 2, 3])
        await h.session.close()
        #expect(h.transport.sent.withLock { $0.last?.command } == .logoff)
        #expect(h.transport.closedReason.withLock { $0 } != nil)
    }

    @Test func aWrongSecretIsRejectedByTheServer() async throws {
        let server = FakeServer()
        let transport = FakeTransport(server: server)
        await #expect(throws: ClientError.status(.authFailed, .sessionSetup)) {
            _ = try await ClientSession.establish(
                over: transport, registrar: HostRegistrar(), export: "pmem",
                secret: try SessionSecret(fileContents: Array("a-different-secret!!".utf8)))
        }
        #expect(transport.closedReason.withLock { $0 } != nil)
    }

    @Test func aServerThatCannotProveTheSecretIsRejected() async throws {
        var options = FakeServer.Options()
        options.forgeServerProof = true
        await #expect {
            _ = try await Harness.make(options)
        } throws: { error in
            guard case .authentication = error as? ClientError else { return false }
            return CommandExitCode(for: error as! ClientError) == .denied
        }
    }

    @Test func anUnknownExportIsNotFound() async throws {
        let server = FakeServer()
        await #expect(throws: ClientError.status(.notFound, .treeConnect)) {
            _ = try await ClientSession.establish(over: FakeTransport(server: server), registrar: HostRegistrar(),
                                                  export: "nope", secret: try SessionSecret(fileContents: server.options.secret))
        }
    }

    @Test func namespaceOperations() async throws {
        let h = try await Harness.make()
        h.server.addDirectory("d")
        h.server.addFile("d/a", [1, 2, 3])
        let s = h.session
        #expect(try await s.stat("d/a").size == 3)
        #expect(try await s.stat("").type == .directory)
        await #expect(throws: ClientError.status(.notFound, .stat)) { try await s.stat("missing") }
        try await s.rename(from: "d/a", to: "d/b")
        #expect(h.server.file("d/b") == [1, 2, 3])
        h.server.addFile("d/c", [])
        await #expect(throws: ClientError.status(.exists, .rename)) { try await s.rename(from: "d/b", to: "d/c", replace: false) }
        #expect(try await s.truncate("d/b", to: 10).size == 10)
        #expect(h.server.file("d/b") == [1, 2, 3] + [UInt8](repeating: 0, count: 7))
        await #expect(throws: ClientError.status(.notFound, .open)) { try await s.truncate("d/new", to: 1) }
        #expect(try await s.truncate("d/new", to: 5, create: true).size == 5)
        await #expect(throws: ClientError.status(.isDirectory, .unlink)) { try await s.remove("d") }
        try await s.remove("d/b")
        #expect(h.server.file("d/b") == nil)
        #expect(try await s.serverStats().first == Counter(name: "bytes_read_two_sided", value: 12))
        // Every file opened by truncate was closed again.
        #expect(h.server.state.withLock { $0.open.isEmpty })
    }

    @Test func listFollowsPagesToTheEnd() async throws {
        var options = FakeServer.Options()
        options.maxListEntries = 7
        let h = try await Harness.make(options)
        h.server.addDirectory("big")
        let names = (0..<50).map { "f\(1000 + $0)" }
        for n in names { h.server.addFile("big/" + n, []) }
        let entries = try await h.session.list("big")
        #expect(entries.map(\.name) == names)
        let first = try await h.session.listPage("big")
        #expect(first.entries.count == 7)
        #expect(!first.isEnd)
        let lists = h.transport.sent.withLock { $0.filter { $0.command == .list } }
        #expect(lists.count == 8 + 1)
        await #expect(throws: ClientError.status(.notDirectory, .list)) { try await h.session.list("big/f1000") }
        #expect(try await h.session.list("").map(\.name) == ["big"])
    }

    @Test func readsAndWritesAreChunkedAndPipelined() async throws {
        // 64 KiB per request, 4 in flight, through one registered bounce region.
        let h = try await Harness.make(maxReadWriteSize: 65536) { $0.queueDepth = 4 }
        let data = patternBytes(1_000_003)
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        try await file.write(at: 0, data)
        #expect(h.server.file("f") == data)
        #expect(file.size == UInt64(data.count))
        let writes = h.transport.sent.withLock { $0.filter { $0.command == .write } }
        #expect(writes.count == 16)  // ceil(1_000_003 / 65536)
        for w in writes {
            guard case let .request(.write(req)) = w.body else { continue }
            #expect(req.length <= 65536)
            #expect(req.descriptors.count == 1)
            #expect(req.flags.isEmpty)
        }
        #expect(h.server.maxIoInFlight > 1)
        #expect(h.server.maxIoInFlight <= 4)

        let back = try await file.read(at: 0, count: data.count + 100)
        #expect(back == data)
        // Short at the end of the file; nothing past it.
        #expect(try await file.read(at: 999_990, count: 500) == Array(data[999_990...]))
        #expect(try await file.read(at: 2_000_000, count: 10) == [])
        try await file.write(at: 10, [9, 9], writeThrough: true)
        #expect(h.server.state.withLock { $0.writeFlags.last } == [.writeThrough])
        try await file.flush()
        #expect(try await file.stat().size == UInt64(data.count))
        try await file.close()
        try await file.close()  // idempotent
        await #expect(throws: ClientError.self) { _ = try await file.read(at: 0, count: 1) }
        #expect(h.registrations == 1)
    }

    /// Two-sided READ and WRITE of a registered buffer name the buffer itself in their
    /// descriptors (the server's RDMA moves the bytes in place); a buffer partly outside the
    /// registration goes through the bounce slots.
    @Test func aRegisteredBufferIsNamedInTheDescriptors() async throws {
        let h = try await Harness.make(maxReadWriteSize: 65536)
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        let data = patternBytes(200_000, seed: 5)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count + 4096, alignment: 4096)
        defer { buffer.deallocate() }
        let registration = try h.session.register(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<data.count]))
        let inside = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<data.count])
        inside.copyBytes(from: data)
        let start = UInt64(UInt(bitPattern: buffer.baseAddress!))
        func descriptors(_ c: Command) -> [BufferDescriptor] {
            h.transport.sent.withLock { sent in
                sent.flatMap { m -> [BufferDescriptor] in
                    switch m.body {
                    case let .request(.read(r)) where c == .read: r.descriptors
                    case let .request(.write(w)) where c == .write: w.descriptors
                    default: []
                    }
                }
            }
        }
        func allInside(_ ds: [BufferDescriptor]) -> Bool {
            ds.allSatisfy { $0.address >= start && $0.address + UInt64($0.length) <= start + UInt64(data.count) }
        }
        try await file.write(from: UnsafeRawBufferPointer(inside), at: 0)
        #expect(descriptors(.write).count == 4 && allInside(descriptors(.write)))
        inside.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(try await file.read(at: 0, into: inside) == data.count)
        #expect(Array(inside) == data)
        #expect(descriptors(.read).count == 4 && allInside(descriptors(.read)))
        // Past the registration's end: staged, the same bytes.
        let straddling = UnsafeMutableRawBufferPointer(rebasing: buffer[4096..<(data.count + 4096)])
        #expect(try await file.read(at: 4096, into: straddling) == data.count - 4096)
        #expect(Array(straddling[0..<(data.count - 4096)]) == Array(data[4096...]))
        #expect(!allInside(descriptors(.read)))
        h.session.deregister(registration)
        #expect(h.callerRegistrations == 1)
        try await file.close()
        await h.session.close()
    }

    /// Without `digest` nothing is hashed (the CLI hashes only for `--digest`): the same bytes,
    /// no SHA-256.
    @Test func aTransferWithoutDigestMovesTheBytesUnhashed() async throws {
        let h = try await Harness.make()
        let data = patternBytes(300_001, seed: 11)
        let src = temporaryPath("nodigest"), back = temporaryPath("nodigest-back")
        defer { _ = unlink(src); _ = unlink(back) }
        try writeLocal(src, data)
        var options = PutOptions()
        options.digest = false
        let put = try await h.session.put(try LocalFile.openForReading(src), to: "n", options: options)
        #expect(put.bytes == UInt64(data.count) && put.sha256.isEmpty)
        let got = try await h.session.get("n", toPath: back, digest: false)
        #expect(got.bytes == UInt64(data.count) && got.sha256.isEmpty)
        #expect(try readLocal(back) == data)
        await h.session.close()
    }

    /// Without a digest, `put` sends a regular file from its own pages: each batch-sized window
    /// of the file is mapped and registered read-only (`MappedWindow`), and no batch buffer is
    /// allocated or registered. Every byte arrives, the last window a partial page included.
    @Test func putWithoutDigestSendsTheFilesOwnPages() async throws {
        let h = try await Harness.make(maxReadWriteSize: 32768) {
            $0.queueDepth = 3
            $0.bounceBufferBytes = 96 * 1024
        }
        let batch = h.session.transferBatchSize
        for size in [1, 4096, 3 * batch, 3 * batch + 4097] {
            let data = patternBytes(size, seed: UInt64(size) + 3)
            let src = temporaryPath("mapped")
            defer { _ = unlink(src) }
            try writeLocal(src, data)
            let before = h.callerRegistrations
            var options = PutOptions()
            options.digest = false
            let put = try await h.session.put(try LocalFile.openForReading(src), to: "mapped.bin", options: options)
            #expect(put.bytes == UInt64(size))
            #expect(h.server.file("mapped.bin") == data)
            #expect(h.callerRegistrations - before == (size + batch - 1) / batch)
        }
        #expect(h.registrations == 0)
        await h.session.close()
    }

    @Test func putAndGetStreamFilesWithMatchingDigests() async throws {
        let h = try await Harness.make(maxReadWriteSize: 32768) {
            $0.queueDepth = 3
            $0.bounceBufferBytes = 96 * 1024
        }
        for size in [0, 1, 4096, 96 * 1024, 300_001] {
            let data = patternBytes(size, seed: UInt64(size) + 7)
            let src = temporaryPath("src")
            let dst = temporaryPath("dst")
            defer {
                unlink(src)
                unlink(dst)
            }
            try writeLocal(src, data)
            let progress = ProgressLog()
            let put = try await h.session.put(try LocalFile.openForReading(src), to: "up.bin", progress: progress.callback)
            #expect(put.bytes == UInt64(size))
            #expect(put.sha256 == StreamDigest.sha256(data))
            #expect(put.dataPath == "two-sided")
            #expect(h.server.file("up.bin") == data)
            #expect(progress.last?.0 == UInt64(size) || size == 0)
            #expect(progress.last?.1 == UInt64(size) || size == 0)

            let got = try await h.session.get("up.bin", toPath: dst)
            #expect(got.bytes == UInt64(size))
            #expect(got.sha256Hex == put.sha256Hex)
            #expect(try readLocal(dst) == data)
        }
        // put ends with one FLUSH per file (durable), and closes what it opened.
        #expect(h.server.state.withLock { $0.flushes } == 5)
        #expect(h.server.state.withLock { $0.open.isEmpty })
        // Each transfer registered its two batch buffers (zero-copy); the bounce pool was never needed.
        #expect(h.callerRegistrations == 2 * 10)
        #expect(h.registrations == 0)
    }

    @Test func putNoClobberAndWriteThrough() async throws {
        let h = try await Harness.make()
        h.server.addFile("exists", [1])
        let src = temporaryPath("src")
        defer { unlink(src) }
        try writeLocal(src, [1, 2, 3])
        await #expect(throws: ClientError.status(.exists, .open)) {
            _ = try await h.session.put(try LocalFile.openForReading(src), to: "exists", options: PutOptions(exclusive: true))
        }
        _ = try await h.session.put(try LocalFile.openForReading(src), to: "wt", options: PutOptions(writeThrough: true))
        #expect(h.server.state.withLock { $0.writeFlags } == [[.writeThrough]])
        #expect(h.server.state.withLock { $0.flushes } == 0)
    }

    @Test func getOfAMissingFileLeavesNoLocalFile() async throws {
        let h = try await Harness.make()
        let dst = temporaryPath("never")
        await #expect(throws: ClientError.status(.notFound, .open)) { _ = try await h.session.get("missing", toPath: dst) }
        #expect(access(dst, F_OK) != 0)
    }

    @Test func layoutRecallsAreAcknowledgedAndPublished() async throws {
        let h = try await Harness.make()
        let recall = LayoutRecall(stateid: LayoutStateid(id: 5, seqid: 2), fileId: 9, range: ByteRange(offset: 0, length: 4096),
                                  recallId: 77, deadlineMs: 5000, reason: .leaseBreak)
        h.transport.inject(Message(messageId: 1, sessionId: 0x42, body: .callback(.layoutRecall(recall))))
        var it = h.session.callbacks.makeAsyncIterator()
        #expect(await it.next() == .layoutRecall(recall, acknowledgement: .badStateid))
        // The reply went out on its own task; give it a moment.
        for _ in 0..<100 where h.transport.sent.withLock({ $0.last?.command }) != .cbLayoutRecall {
            try await Task.sleep(for: .milliseconds(5))
        }
        let reply = try #require(h.transport.sent.withLock { $0.last })
        #expect(reply.messageId == 1)
        #expect(reply.body == .callbackReply(status: .badStateid, .layoutRecall(LayoutRecallAck(recallId: 77))))
        // The session still works.
        #expect(try await h.session.echo([4]) == [4])
    }

    @Test func whenTheChannelEndsWaitingRequestsFail() async throws {
        let h = try await Harness.make()
        let held = Task { try await h.session.echo(Array("hold".utf8)) }
        let held2 = Task { try await h.session.echo(Array("hold".utf8)) }
        while h.server.heldEchoCount < 2 { try await Task.sleep(for: .milliseconds(2)) }
        h.transport.fail(ClientError.transport("link down"))
        await #expect(throws: ClientError.transport("link down")) { _ = try await held.value }
        await #expect(throws: ClientError.transport("link down")) { _ = try await held2.value }
        await #expect(throws: ClientError.transport("link down")) { _ = try await h.session.stat("") }
        h.server.releaseHeldEchoes()
    }

    @Test func aResponseToNothingIsAViolationThatDisconnects() async throws {
        let h = try await Harness.make()
        let held = Task { try await h.session.echo(Array("hold".utf8)) }
        while h.server.heldEchoCount < 1 { try await Task.sleep(for: .milliseconds(2)) }
        h.transport.inject(Message.response(.echo(EchoMessage()), to: MessageHeader(command: .echo, messageId: 999, sessionId: 0x42)))
        await #expect {
            _ = try await held.value
        } throws: { error in
            guard case let .protocol(reason) = error as? ClientError else { return false }
            return reason.contains("999")
        }
        #expect(h.transport.closedReason.withLock { $0 }?.contains("protocol violation") == true)
        h.server.releaseHeldEchoes()
    }

    @Test func malformedBytesAreAViolation() async throws {
        let h = try await Harness.make()
        let held = Task { try await h.session.echo(Array("hold".utf8)) }
        while h.server.heldEchoCount < 1 { try await Task.sleep(for: .milliseconds(2)) }
        h.transport.inject([0xFD, 0x44, 0x58, 0x53, 0, 0])
        await #expect {
            _ = try await held.value
        } throws: { error in
            guard case .protocol = error as? ClientError else { return false }
            return true
        }
        h.server.releaseHeldEchoes()
    }

    @Test func concurrentRequestsRespectTheServersLimit() async throws {
        var options = FakeServer.Options()
        options.maxOutstanding = 2
        options.ioDelayMicroseconds = 1000
        let h = try await Harness.make(options, maxReadWriteSize: 4096) {
            $0.queueDepth = 8
            $0.bounceBufferBytes = 8 * 4096
        }
        let file = try await h.session.open("f", flags: [.read, .write, .create])
        try await file.write(at: 0, patternBytes(64 * 1024))
        #expect(h.server.maxIoInFlight <= 2)
        #expect(h.server.maxIoInFlight == 2)
    }
}

/// Records progress callbacks.
final class ProgressLog: Sendable {
    private let calls = Mutex<[(UInt64, UInt64?)]>([])
    var callback: TransferProgress { { [self] done, total in calls.withLock { $0.append((done, total)) } } }
    var last: (UInt64, UInt64?)? { calls.withLock { $0.last } }
}

import Synchronization
