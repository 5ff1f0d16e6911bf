import DaxshareClient
import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// Limits give clear errors (issue 8, Security): connections beyond --max-connections are
/// refused with a reason, opens beyond --max-open-files and layouts beyond the server's
/// maxLayouts get TOO_MANY, and a growth the file system cannot hold is refused without
/// leaving the file system full for everyone else.
@Suite(.serialized) struct ReliabilityLimitsTests {
    init() { Reliability.prepare() }

    @Test(.timeLimit(.minutes(10))) func connectionsBeyondTheLimitAreRefusedWithAReason() async throws {
        let limit = 4
        let server = try ServerProcess(name: "rel-maxconn", port: 5631, arguments: ["--max-connections", "\(limit)"])
        defer { #expect(stopBounded(server) == "exit 0") }
        var held: [ProbeSession] = []
        for _ in 0..<limit {
            let s = try await ProbeSession(host: try Testbed.address, port: server.port)
            try await s.authenticate(secret: try server.secret, tree: "data")
            held.append(s)
        }
        // The transport's own error names the reject reason (TOO_MANY_CONNECTIONS = 3)...
        var refusal = ""
        do {
            let extra = try await MessageChannel.connect(host: try Testbed.address, port: server.port)
            extra.close()
            Issue.record("connection \(limit + 1) was accepted with --max-connections \(limit)")
        } catch {
            refusal = ClientError(transportFailure: error).description
        }
        #expect(refusal.contains("too many connections"), "the library's reading of the refusal: \(refusal)")
        // ...and the CLI says it in words, with the connection exit code.
        let cli = try run(CLITests.cli, ["ls", "--secret-file", server.secretFile, try server.url + "/"])
        #expect(cli.status == 4, "exit \(cli.status): \(cli.err)")
        #expect(cli.err.contains("too many connections"), "CLI said: \(cli.err) (transport said: \(refusal))")
        #expect(server.log.contains("refused connection from") && server.log.contains("too many connections"), "log:\n\(server.log.suffix(4000))")
        // A slot that frees up is served again.
        held.removeLast().close()
        let back = await eventually(20) {
            (try? run(CLITests.cli, ["ls", "--secret-file", server.secretFile, try server.url + "/"]).status) == 0
        }
        #expect(back, "a connection after one left was refused")
        held.forEach { $0.close() }
        Reliability.report("limits: connection \(limit + 1) refused: \(cli.err.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    @Test(.timeLimit(.minutes(10))) func opensBeyondTheLimitGetTooMany() async throws {
        let limit = 8
        let server = try ServerProcess(name: "rel-maxopen", port: 5632, arguments: ["--max-open-files", "\(limit)", "--log-level", "debug"])
        defer { #expect(stopBounded(server) == "exit 0") }
        let s = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { s.close() }
        let tree = try await s.authenticate(secret: try server.secret, tree: "data")
        var ids: [UInt64] = []
        for i in 0..<limit {
            guard case let .open(o) = try await s.request(.open(OpenRequest(treeId: tree, flags: [.read, .write, .create], path: "f\(i)"))) else {
                throw TestbedError.missing("open \(i)")
            }
            ids.append(o.fileId)
        }
        let over = try await s.call(.open(OpenRequest(treeId: tree, flags: [.read, .write, .create], path: "one-too-many")))
        #expect(over.status == .tooMany, "open \(limit + 1) got \(over.status)")
        #expect(!FileManager.default.fileExists(atPath: server.exportDir + "/one-too-many"), "a refused open must not create the file")
        #expect(Status.tooMany.summary.contains("limit"), "the CLI's words: \(Status.tooMany.summary)")
        #expect(server.log.contains("\(limit) files open"), "the reason is logged (at debug level)")
        // The session lives on; a CLOSE makes room.
        _ = try await s.request(.close(CloseRequest(fileId: ids[0])))
        let again = try await s.call(.open(OpenRequest(treeId: tree, flags: [.read], path: "f1")))
        #expect(again.status == .ok)
        // The limit is per session: another session opens its own.
        let other = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
        defer { other.close() }
        _ = try await other.open("f2", [.read])
        Reliability.report("limits: open \(limit + 1) with --max-open-files \(limit): \(over.status) (\"\(Status.tooMany.summary)\")")
    }

    @Test(.timeLimit(.minutes(10))) func layoutsBeyondMaxLayoutsGetTooMany() async throws {
        // --max-layouts (1024 by default): each layout is an ODP registration, ~60 ms under emulation.
        let maxLayouts = 64 * Reliability.scale
        let server = try ServerProcess(name: "rel-maxlayouts", port: 5633, arguments: ["--log-level", "debug", "--max-layouts", "\(maxLayouts)"])
        defer { #expect(stopBounded(server) == "exit 0") }
        FileManager.default.createFile(atPath: server.exportDir + "/l.bin", contents: Data(seededBytes(64 << 10, seed: 1)))
        let s = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { s.close() }
        let tree = try await s.authenticate(secret: try server.secret, tree: "data")
        guard case let .open(o) = try await s.request(.open(OpenRequest(treeId: tree, flags: [.read], path: "l.bin"))) else {
            throw TestbedError.missing("open")
        }
        var stateids: [LayoutStateid] = []
        for i in 0..<maxLayouts {
            guard case let .layoutGet(l) = try await s.request(.layoutGet(LayoutGetRequest(
                fileId: o.fileId, offset: UInt64(i % 16) * 4096, length: 4096, minLength: 4096, iomode: .read))) else {
                throw TestbedError.missing("layout \(i)")
            }
            stateids.append(l.stateid)
        }
        let over = try await s.call(.layoutGet(LayoutGetRequest(fileId: o.fileId, offset: 0, length: 4096, minLength: 4096, iomode: .read)))
        #expect(over.status == .tooMany, "layout \(maxLayouts + 1) got \(over.status)")
        #expect(server.log.contains("\(maxLayouts) layouts held"), "the reason is logged (at debug level)")
        var c = try await serverCounters(server)
        #expect(c["layouts_live"] == UInt64(maxLayouts) && c["mrs_live"] == UInt64(maxLayouts), "counters: \(c)")
        // Returning one makes room for one.
        _ = try await s.request(.layoutReturn(LayoutReturnRequest(stateid: stateids[0])))
        let again = try await s.call(.layoutGet(LayoutGetRequest(fileId: o.fileId, offset: 0, length: 4096, minLength: 4096, iomode: .read)))
        #expect(again.status == .ok)
        s.close()
        let released = await eventually(30) { let c = try await serverCounters(server); return c["layouts_live"] == 0 && c["mrs_live"] == 0 }
        c = try await serverCounters(server)
        #expect(released, "after the session left: \(c)")
        Reliability.report("limits: layout \(maxLayouts + 1): \(over.status)")
    }

    /// A growth the file system cannot hold (SET_SIZE, a two-sided WRITE far past the end, an
    /// RW layout far past the end) must fail with a status, and leave the file's size and the
    /// file system's free space as they were: a failed fallocate keeps what it allocated, so
    /// without clean-up one request fills the pmem for every client.
    @Test(.timeLimit(.minutes(10))) func aGrowthThatCannotFitLeavesNoTrace() async throws {
        let server = try ServerProcess(name: "rel-nospace", port: 5634)
        defer { #expect(stopBounded(server) == "exit 0") }
        let path = server.exportDir + "/grow.bin"
        FileManager.default.createFile(atPath: path, contents: Data(seededBytes(8192, seed: 8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let s = try await ProbeSession(host: try Testbed.address, port: server.port)
        defer { s.close() }
        let tree = try await s.authenticate(secret: try server.secret, tree: "data")
        guard case let .open(o) = try await s.request(.open(OpenRequest(treeId: tree, flags: [.read, .write], path: "grow.bin"))) else {
            throw TestbedError.missing("open")
        }
        let buffer = try RegisteredBuffer(domain: s.channel.connection.domain, length: 4096, access: [.localWrite, .remoteRead])
        let r = buffer.region.remote()
        func free() throws -> UInt64 {
            let a = try FileManager.default.attributesOfFileSystem(forPath: server.exportDir)
            return (a[.systemFreeSize] as? NSNumber)?.uint64Value ?? 0
        }
        let tooBig: UInt64 = 64 << 30  // 64 GiB on a 1 GiB pmem device
        let cases: [(String, Request)] = [
            ("SET_SIZE 64 GiB", .setSize(SetSizeRequest(fileId: o.fileId, size: tooBig))),
            ("WRITE 4 KiB at 64 GiB", .write(WriteRequest(fileId: o.fileId, offset: tooBig, descriptors: [BufferDescriptor(address: r.address, rkey: r.rkey, length: 4096)]))),
            ("RW LAYOUTGET of 64 GiB", .layoutGet(LayoutGetRequest(fileId: o.fileId, offset: 0, length: tooBig, minLength: tooBig, iomode: .readWrite))),
        ]
        var left: [String] = []
        for (what, request) in cases {
            let before = try free()
            let m = try await s.call(request)
            // Whatever the answer, stat through the server and the file system itself.
            guard case let .response(.stat(attrs)) = try await s.call(.stat(.fileId(o.fileId))).body else { throw TestbedError.missing("stat") }
            let after = try free()
            #expect(m.status == .noSpace || m.status == .fileTooLarge, "\(what) got \(m.status)")
            #expect(attrs.size == 8192, "\(what): the file is now \(attrs.size) bytes")
            #expect(after + (16 << 20) >= before, "\(what): free space went from \(before >> 20) MiB to \(after >> 20) MiB")
            if attrs.size != 8192 || after + (16 << 20) < before {
                left.append("\(what): \(m.status), size \(attrs.size), free \(before >> 20) -> \(after >> 20) MiB")
                // Undo, so the next case (and the next suite) has room.
                _ = try? await s.call(.setSize(SetSizeRequest(fileId: o.fileId, size: 8192)))
            }
        }
        // And the bytes that were there are still there.
        _ = try await s.request(.close(CloseRequest(fileId: o.fileId)))
        let onDisk = Array(try Data(contentsOf: URL(fileURLWithPath: path)).prefix(8192))
        #expect(onDisk == seededBytes(8192, seed: 8))
        Reliability.report("limits: growth past the device: \(left.isEmpty ? "refused, no trace" : left.joined(separator: "; "))")
    }
}
