import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// The server's core against a real daxshared (issue 13): requests served concurrently, recalls
/// that wait on their own, one owner per file's layouts, and nothing a client sends stopping
/// the server.
@Suite(.serialized) struct ServerCoreTests {
    static let deadlineMs = 5000

    func server(_ name: String, port: UInt16, extraExports: [String] = [], arguments: [String] = []) throws -> ServerProcess {
        try ServerProcess(
            name: name, port: port, extraExports: extraExports,
            arguments: ["--recall-deadline-ms", "\(Self.deadlineMs)"] + arguments)
    }

    func session(_ server: ServerProcess, export: String = "data") async throws -> RawSession {
        try await RawSession(host: try Testbed.address, port: server.port, export: export, secret: try server.secret)
    }

    /// `kill -0`: the process is still there.
    func alive(_ server: ServerProcess) -> Bool { kill(server.process.processIdentifier, 0) == 0 && server.process.isRunning }

    @Test func twoClientsThatEachCutTheOthersFileBothFinishWithoutAFence() async throws {
        let server = try server("core-cross", port: 5801)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server), b = try await session(server)
        defer { a.close(); b.close() }
        for (name, size) in [("a.bin", 1 << 20), ("b.bin", 1 << 20)] {
            FileManager.default.createFile(atPath: server.exportDir + "/" + name, contents: Data(pattern(size, seed: 3)))
        }
        let aOwn = try await a.open("a.bin", [.read, .write]), aOther = try await a.open("b.bin", [.read, .write])
        let bOwn = try await b.open("b.bin", [.read, .write]), bOther = try await b.open("a.bin", [.read, .write])
        _ = try await a.layout(file: aOwn, offset: 0, length: 1 << 20, .readWrite)
        _ = try await b.layout(file: bOwn, offset: 0, length: 1 << 20, .readWrite)
        a.answerRecalls()
        b.answerRecalls()
        // Each shrinks the file the other holds: each request waits for a recall that the other
        // connection must answer while its own SET_SIZE is still waiting.
        let started = ContinuousClock.now
        async let cutByA = a.request(.setSize(SetSizeRequest(fileId: aOther, size: 4096)))
        async let cutByB = b.request(.setSize(SetSizeRequest(fileId: bOther, size: 4096)))
        _ = try await (cutByA, cutByB)
        let took = ContinuousClock.now - started
        #expect(took < .milliseconds(Self.deadlineMs / 2), "the truncates took \(took): the recalls waited on each other")
        // The same with hole punches, on fresh layouts.
        _ = try await a.layout(file: aOwn, offset: 0, length: 4096, .readWrite)
        _ = try await b.layout(file: bOwn, offset: 0, length: 4096, .readWrite)
        let punched = ContinuousClock.now
        async let punchByA = a.request(.punchHole(PunchHoleRequest(fileId: aOther, range: ByteRange(offset: 0, length: 4096))))
        async let punchByB = b.request(.punchHole(PunchHoleRequest(fileId: bOther, range: ByteRange(offset: 0, length: 4096))))
        _ = try await (punchByA, punchByB)
        #expect(ContinuousClock.now - punched < .milliseconds(Self.deadlineMs / 2))
        let counters = try await a.counters()
        #expect(counters["layouts_recalled"] == 4)
        #expect(counters["layouts_revoked"] == 0, "log:\n\(server.log)")
    }

    @Test func aRequestWaitingForARecallHoldsUpNothingElseOnItsConnection() async throws {
        let server = try server("core-wait", port: 5802)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let holder = try await session(server), cutter = try await session(server)
        defer { holder.close(); cutter.close() }
        FileManager.default.createFile(atPath: server.exportDir + "/held.bin", contents: Data(pattern(1 << 20, seed: 4)))
        let held = try await holder.open("held.bin", [.read, .write])
        _ = try await holder.layout(file: held, offset: 0, length: 1 << 20, .readWrite)
        // The holder never answers: the cut waits out the whole deadline.
        let target = try await cutter.open("held.bin", [.read, .write])
        let cut = Task { try await cutter.request(.setSize(SetSizeRequest(fileId: target, size: 0))) }
        try await Task.sleep(for: .milliseconds(300))
        let started = ContinuousClock.now
        for i in 0..<8 {
            guard case .echo = try await cutter.request(.echo(EchoMessage(data: [UInt8(i)]))) else {
                Issue.record("no echo"); return
            }
        }
        let other = try await cutter.open("other.bin", [.read, .write, .create])
        _ = try await cutter.request(.stat(.fileId(other)))
        #expect(ContinuousClock.now - started < .milliseconds(Self.deadlineMs / 2), "requests queued behind the recall")
        _ = try await cut.value
        #expect(try await cutter.counters()["layouts_revoked"] == 1)
    }

    @Test func hugeRangesGetAnErrorAndTheServerLivesOn() async throws {
        let server = try server("core-ranges", port: 5803)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server), bystander = try await session(server)
        defer { a.close(); bystander.close() }
        let f = try await a.open("r.bin", [.read, .write, .create])
        let cases: [(UInt64, UInt64)] = [
            (0, UInt64.max - 4095), (1 << 63 + 4096, 4096), (UInt64.max, 0), (0, 1 << 63), (UInt64.max, UInt64.max),
        ]
        for (offset, length) in cases {
            _ = try? await a.request(.flush(FlushRequest(fileId: f, offset: offset, length: length)))
            _ = try? await a.request(.punchHole(PunchHoleRequest(fileId: f, range: ByteRange(offset: offset, length: length))))
            _ = try? await a.request(.layoutGet(LayoutGetRequest(fileId: f, offset: offset, length: max(length, 1), minLength: 1, iomode: .readWrite)))
            #expect(alive(server), "FLUSH/PUNCH_HOLE/LAYOUTGET (\(offset), \(length)) stopped the server; log:\n\(server.log)")
        }
        await #expect(throws: StatusError(status: .invalidArgument)) {
            _ = try await a.request(.punchHole(PunchHoleRequest(fileId: f, range: ByteRange(offset: 0, length: 1 << 63))))
        }
        let g = try await bystander.open("bystander.bin", [.read, .write, .create])
        _ = try await bystander.request(.flush(FlushRequest(fileId: g, offset: 0, length: 0)))
    }

    @Test func aPeerThatNeverAuthenticatesIsBoundedAndDroppedAtTheDeadline() async throws {
        let server = try server("core-preauth", port: 5804, arguments: ["--session-setup-timeout", "4"])
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let rssBefore = try residentKiB(server)
        let channel = try await MessageChannel.connect(host: try Testbed.address, port: server.port)
        defer { channel.close() }
        // Stream requests without reading an answer: the server's replies need credits this side
        // grants only as it takes messages, so the flood stalls instead of piling up.
        let flood = Task {
            var sent = 0
            let payload = Array(repeating: UInt8(0x5A), count: 60_000)
            while !Task.isCancelled {
                let m = Message.request(.echo(EchoMessage(data: payload)), messageId: UInt64(sent + 1), sessionId: 0)
                do { try await channel.send(try m.encode()) } catch { break }
                sent += 1
            }
            return sent
        }
        try await Task.sleep(for: .seconds(2))
        let rssDuring = try residentKiB(server)
        #expect(rssDuring - rssBefore < 64 << 10, "server RSS grew \(rssDuring - rssBefore) KiB under a pre-authentication flood")
        // Dropped at the session set-up deadline (4 s), flood or not.
        let deadline = ContinuousClock.now + .seconds(15)
        while !channel.isClosed, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(channel.isClosed, "an unauthenticated peer is still connected after its deadline")
        flood.cancel()
        let sent = await flood.value
        #expect(alive(server))
        #expect(server.log.contains("no session set up within"), "log:\n\(server.log)")
        // A real client is served afterwards.
        let a = try await session(server)
        a.close()
        _ = sent
    }

    @Test func aReadOnlyExportRefusesBeforeAnythingIsRecalled() async throws {
        // One server, the same directory exported read-write and read-only.
        let dir = try Testbed.pmemPath("export-core-ro")
        let roServer = try server("core-ro", port: 5805, extraExports: ["ro=\(dir):ro"])
        defer { #expect(roServer.stop() == 0, "log:\n\(roServer.log)") }
        let writer = try await session(roServer), reader = try await session(roServer, export: "ro")
        defer { writer.close(); reader.close() }
        // The same file through both exports of one server.
        FileManager.default.createFile(atPath: roServer.exportDir + "/shared.bin", contents: Data(pattern(8192, seed: 5)))
        let f = try await writer.open("shared.bin", [.read, .write])
        _ = try await writer.layout(file: f, offset: 0, length: 8192, .readWrite)
        writer.answerRecalls()
        for request in [
            Request.open(OpenRequest(treeId: reader.treeId, flags: [.read, .write, .truncate], path: "shared.bin")),
            .unlink(UnlinkRequest(treeId: reader.treeId, path: "shared.bin")),
            .rename(RenameRequest(treeId: reader.treeId, from: "shared.bin", to: "moved.bin")),
        ] {
            await #expect(throws: StatusError(status: .readOnly)) { _ = try await reader.request(request) }
        }
        let counters = try await writer.counters()
        #expect(counters["layouts_recalled"] == 0, "a read-only client made a layout go")
        #expect(counters["layouts_live"] == 1)
    }

    @Test func truncatingThroughASymlinkRecallsTheLayoutsOfTheFileItNames() async throws {
        let server = try server("core-symlink", port: 5807)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let holder = try await session(server), cutter = try await session(server)
        defer { holder.close(); cutter.close() }
        FileManager.default.createFile(atPath: server.exportDir + "/target.bin", contents: Data(pattern(1 << 20, seed: 9)))
        try FileManager.default.createSymbolicLink(atPath: server.exportDir + "/link.bin", withDestinationPath: "target.bin")
        let f = try await holder.open("target.bin", [.read, .write])
        _ = try await holder.layout(file: f, offset: 0, length: 1 << 20, .readWrite)
        holder.answerRecalls()
        _ = try await cutter.open("link.bin", [.read, .write, .truncate])
        let counters = try await holder.counters()
        #expect(counters["layouts_recalled"] == 1 && counters["layouts_revoked"] == 0 && counters["layouts_live"] == 0)
        let size = try FileManager.default.attributesOfItem(atPath: server.exportDir + "/target.bin")[.size] as? Int
        #expect(size == 0)
    }

    @Test func aLeaseTheKernelRefusesGrantsNoLayout() async throws {
        let server = try server("core-lease", port: 5809)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        let path = server.exportDir + "/busy.bin"
        FileManager.default.createFile(atPath: path, contents: Data(pattern(8192, seed: 2)))
        let f = try await a.open("busy.bin", [.read, .write])
        // A local process holds the file open for writing: no write lease can be had on it.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 3<>\"$0\"; echo held; read x", path]
        let out = Pipe(), input = Pipe()
        holder.standardOutput = out
        holder.standardInput = input
        try holder.run()
        defer { try? input.fileHandleForWriting.close(); holder.waitUntilExit() }
        _ = out.fileHandleForReading.availableData  // "held"
        await #expect(throws: StatusError(status: .tryLater)) {
            _ = try await a.layout(file: f, offset: 0, length: 8192, .readWrite)
        }
        let counters = try await a.counters()
        #expect(counters["layouts_live"] == 0 && counters["mrs_live"] == 0 && counters["layouts_granted"] == 0)
        // Once the local writer is gone, the layout is granted (under a lease).
        try input.fileHandleForWriting.close()
        holder.waitUntilExit()
        _ = try await a.layout(file: f, offset: 0, length: 8192, .readWrite)
    }

    /// Page-aligned, and unaligned across pages (the soak's flake: an acknowledged two-sided
    /// write at 17723 read as zeros through the writer's layout, again and again).
    @Test(arguments: [(8192, 16 << 10, 5812), (17723, 12288, 5813)])
    func aTwoSidedWriteIsSeenThroughALayoutThatFirstReadTheRangeAsZeros(_ offset: Int, _ length: Int, _ port: Int) async throws {
        let server = try server("core-coherent-\(offset)", port: UInt16(port))
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        // Grown by SET_SIZE: allocated but unwritten extents, which a read maps as the zero page.
        let f = try await a.open("coherent.bin", [.read, .write, .create])
        _ = try await a.request(.setSize(SetSizeRequest(fileId: f, size: 64 << 10)))
        let layout = try await a.layout(file: f, offset: 0, length: 64 << 10, .read)
        let local = try RegisteredBuffer(domain: a.channel.connection.domain, length: 64 << 10, access: [.localWrite, .remoteRead, .remoteWrite])
        // Read once through the layout: zeros, and the pages are now mapped.
        try await a.channel.connection.read(into: [local.region.segment(length: 64 << 10)], from: layout.extents[0].remote)
        #expect(local.bytes.allSatisfy { $0 == 0 })
        // A two-sided WRITE fills the range...
        let data = pattern(length, seed: 77)
        local.bytes.copyBytes(from: data)
        let remote = local.region.remote()
        _ = try await a.request(.write(WriteRequest(
            fileId: f, offset: UInt64(offset), length: UInt32(data.count), flags: [.writeThrough],
            descriptors: [BufferDescriptor(address: remote.address, rkey: remote.rkey, length: UInt32(data.count))])))
        // ...and the layout sees it, not the zero page it saw before.
        local.bytes.initializeMemory(as: UInt8.self, repeating: 0xEE)
        try await a.channel.connection.read(into: [local.region.segment(length: 64 << 10)], from: layout.extents[0].remote)
        #expect(Array(local.bytes[offset..<(offset + data.count)]) == data, "one-sided READ after a two-sided WRITE saw stale bytes")
        #expect(local.bytes[0..<offset].allSatisfy { $0 == 0 })
    }

    @Test func manyRequestsOfOneConnectionRunAtOnceAndTheExcessIsRefused() async throws {
        let server = try server("core-many", port: 5808)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let holder = try await session(server), client = try await session(server)
        defer { holder.close(); client.close() }
        // 64 requests that each wait for a silent holder's recall fill the connection's slots.
        var files: [UInt64] = []
        for i in 0..<65 {
            let name = "slot\(i).bin"
            let h = try await holder.open(name, [.read, .write, .create])
            _ = try await holder.layout(file: h, offset: 0, length: 4096, .readWrite)
            files.append(try await client.open(name, [.read, .write]))
        }
        let waiting = files.prefix(64).map { id in
            Task { try? await client.request(.setSize(SetSizeRequest(fileId: id, size: 0))) }
        }
        try await Task.sleep(for: .seconds(1))
        await #expect(throws: StatusError(status: .tooMany)) {
            _ = try await client.request(.stat(.fileId(files[64])))
        }
        // LAYOUTRETURN is never refused for that: it is how the slots come free.
        await #expect(throws: StatusError(status: .badStateid)) {
            _ = try await client.request(.layoutReturn(LayoutReturnRequest(stateid: LayoutStateid(id: 999_999, seqid: 1), recallId: 0)))
        }
        for t in waiting { _ = await t.value }
        _ = try await client.request(.stat(.fileId(files[64])))
    }
}

extension ServerCoreTests {
    /// One request on a bare channel, and its reply.
    func exchange(_ channel: MessageChannel, _ request: Request, id: UInt64) async throws -> Message {
        try await channel.send(try Message.request(request, messageId: id, sessionId: 0).encode())
        for try await bytes in channel.messages { return try Message.decode(bytes) }
        throw TestbedError.missing("a reply")
    }

    @Test func negotiateAgreesOnWhatBothSidesHave() async throws {
        let server = try server("core-negotiate", port: 5810)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let channel = try await MessageChannel.connect(host: try Testbed.address, port: server.port)
        defer { channel.close() }
        let reply = try await exchange(channel, .negotiate(NegotiateRequest(capabilities: [.layouts, .punchHole], clientId: Array(repeating: 1, count: 16))), id: 1)
        guard case let .response(.negotiate(n)) = reply.body else { Issue.record("got \(reply.body)"); return }
        #expect(n.capabilities == [.layouts, .punchHole], "the intersection of the client's and the server's")
        // No common dialect: NOT_SUPPORTED, then the server disconnects.
        let other = try await MessageChannel.connect(host: try Testbed.address, port: server.port)
        defer { other.close() }
        let refused = try await exchange(other, .negotiate(NegotiateRequest(minDialect: 0x0200, maxDialect: 0x0300, capabilities: [], clientId: Array(repeating: 2, count: 16))), id: 1)
        #expect(refused.status == .notSupported)
        let deadline = ContinuousClock.now + .seconds(10)
        while !other.isClosed, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(other.isClosed)
    }

    @Test func requestsTheSpecRefusesAreRefused() async throws {
        let server = try server("core-refusals", port: 5811)
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        await #expect(throws: StatusError(status: .invalidArgument)) {
            _ = try await a.request(.open(OpenRequest(treeId: a.treeId, flags: [.create], path: "neither.bin")))
        }
        await #expect(throws: StatusError(status: .staleFile)) {
            _ = try await a.request(.open(OpenRequest(treeId: a.treeId &+ 7, flags: [.read], path: "x")))
        }
        await #expect(throws: StatusError(status: .staleFile)) {
            _ = try await a.request(.treeDisconnect(TreeDisconnectRequest(treeId: a.treeId &+ 7)))
        }
    }

    /// With a client connected and authenticated but idle, no thread of the server runs: no
    /// timer of Dispatch's pool (ThreadPoolExecutor), no signal source, no polling. This is
    /// what lets a client's one-sided writes, committed by RDMA FLUSH, cost the server nothing.
    @Test func anIdleServerWakesNoThread() async throws {
        // The session set-up deadline, cancelled once the session is up, still leaves its sleep's
        // timer to fire once (10 s after the connection by default); a long one keeps it out of
        // a slow run's window.
        let server = try server("core-idle", port: 5812, arguments: ["--metrics-listen", "off", "--session-setup-timeout", "600"])
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        _ = try await a.request(.open(OpenRequest(treeId: a.treeId, flags: [.create, .read, .write], path: "idle.bin")))
        try await Task.sleep(for: .seconds(1))  // let start-up's threads finish
        let woke = try await threadsThatRan(server) { try await Task.sleep(for: .seconds(3)) }
        #expect(woke.isEmpty, "threads that ran while idle (tid name: context switches before -> after): \(woke)")
        #expect(alive(server))
    }

    /// A two-sided READ or WRITE is served on the thread that polled its message (the
    /// connection's event loop), pread/pwrite and RDMA included: no other server thread runs
    /// while a client streams them. (Before: each such request ran as a task on the general
    /// pool, `addTask(executorPreference: nil)` asking for no preference, and every request
    /// woke a pool thread and hopped back for its completions.)
    @Test func twoSidedRequestsRunOnTheConnectionsLoopThreadAlone() async throws {
        // As in anIdleServerWakesNoThread: the cancelled set-up deadline's timer out of the window.
        let server = try server("core-loop", port: 5815, arguments: ["--metrics-listen", "off", "--session-setup-timeout", "600"])
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await session(server)
        defer { a.close() }
        let f = try await a.open("loop.bin", [.create, .read, .write])
        let local = try RegisteredBuffer(domain: a.channel.connection.domain, length: 4096, access: [.localWrite, .remoteRead, .remoteWrite])
        let remote = local.region.remote()
        let descriptors = [BufferDescriptor(address: remote.address, rkey: remote.rkey, length: 4096)]
        func write(at offset: UInt64) async throws {
            _ = try await a.request(.write(WriteRequest(fileId: f, offset: offset, descriptors: descriptors)))
        }
        func read(at offset: UInt64) async throws {
            _ = try await a.request(.read(ReadRequest(fileId: f, offset: offset, length: 4096, descriptors: descriptors)))
        }
        for i in 0..<8 { try await write(at: UInt64(i) * 4096) }  // the file's blocks, and a warm path
        try await Task.sleep(for: .seconds(1))  // let start-up's threads finish
        let ran = try await threadsThatRan(server) {
            for round in 0..<25 {
                local.bytes.copyBytes(from: pattern(4096, seed: UInt8(round)))
                try await write(at: UInt64(round % 8) * 4096)
                local.bytes.initializeMemory(as: UInt8.self, repeating: 0)
                try await read(at: UInt64(round % 8) * 4096)
                #expect(Array(local.bytes) == pattern(4096, seed: UInt8(round)))
            }
        }
        // The server's threads are named (verbs-loop-N, task-pool-N): only a loop may have run.
        #expect(ran.count == 1 && ran.keys.allSatisfy { $0.contains(" verbs-loop-") }, "threads that ran for 50 two-sided requests (tid name: context switches before -> after): \(ran)")
        #expect(alive(server))
    }

    /// The server's threads that ran while `body` did: "tid name" to "context switches before -> after".
    func threadsThatRan(_ server: ServerProcess, while body: () async throws -> Void) async throws -> [String: String] {
        let before = try switchesPerThread(server)
        try await body()
        let after = try switchesPerThread(server)
        var ran: [String: String] = [:]
        for (thread, n) in after where before[thread].map({ n > $0 }) ?? true { ran[thread] = "\(before[thread] ?? 0) -> \(n)" }
        return ran
    }

    /// Voluntary plus involuntary context switches of each of the server's threads.
    func switchesPerThread(_ server: ServerProcess) throws -> [String: Int] {
        let dir = "/proc/\(server.process.processIdentifier)/task"
        var result: [String: Int] = [:]
        for tid in try FileManager.default.contentsOfDirectory(atPath: dir) {
            guard let status = try? String(contentsOfFile: "\(dir)/\(tid)/status", encoding: .utf8) else { continue }
            let name = status.split(separator: "\n").first.map { $0.replacingOccurrences(of: "Name:\t", with: "") } ?? "?"
            result["\(tid) \(name)"] = status.split(separator: "\n").filter { $0.contains("ctxt_switches:") }
                .compactMap { Int($0.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) ?? "") }.reduce(0, +)
        }
        return result
    }
}

/// The server process's resident memory, from /proc.
func residentKiB(_ server: ServerProcess) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(server.process.processIdentifier)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { throw TestbedError.missing("VmRSS of the server") }
    return kib
}
