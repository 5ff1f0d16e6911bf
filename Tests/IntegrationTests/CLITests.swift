import Foundation
import Testing

/// `daxshared` and `daxshare` as a user runs them: real processes over rxe,
/// files on the fsdax mount, digests compared.
@Suite(.serialized) struct CLITests {
    static let cli = ServerProcess.binDir + "/daxshare"

    /// `daxshare COMMAND --secret-file S ARGS...`
    func daxshare(_ server: ServerProcess, _ command: String, _ args: String..., secretFile: String? = nil) throws -> (status: Int32, out: String, err: String) {
        try run(Self.cli, [command, "--secret-file", secretFile ?? server.secretFile] + args)
    }

    func sha256(_ path: String) throws -> String { try sha256Hex(ofFile: path) }

    func randomFile(_ size: Int) throws -> String { try randomTestFile(size, prefix: "daxshare-cli") }

    /// `make demo` is one of README's two commands: its script, with a smaller file, passes
    /// its own checks (digests, and the server's counters saying the bytes moved one-sided and
    /// the put was committed whole). It once failed unnoticed when commits moved to RDMA FLUSH.
    @Test func theDemoPassesItsChecks() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let demo = try run("/usr/bin/env", ["DEMO_SIZE_MIB=8", "/bin/bash", root + "/scripts/demo"])
        #expect(demo.status == 0 && demo.out.contains("demo: OK"), "demo:\n\(demo.out)\n\(demo.err)")
    }

    /// Sizes around the edges: empty, one byte, one page, just past 1 MiB (a partial last chunk
    /// and page). OneSidedCLITests moves up to 16 MiB and checks which path carried it.
    @Test(arguments: [0, 1, 4096, (1 << 20) + 1])
    func putAndGetKeepEveryByte(size: Int) throws {
        let server = try ServerProcess(name: "putget-\(size)", port: 5501)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let local = try randomFile(size)
        let url = try server.url + "/f-\(size).bin"
        let put = try daxshare(server, "put", local, url)
        #expect(put.status == 0, "put: \(put.err)")
        // On the server's pmem, byte for byte.
        #expect(try sha256(server.exportDir + "/f-\(size).bin") == sha256(local))
        let back = local + ".back"
        let get = try daxshare(server, "get", url, back)
        #expect(get.status == 0, "get: \(get.err)")
        #expect(try sha256(back) == sha256(local))
        let stat = try daxshare(server, "stat", "--json", url)
        #expect(stat.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(stat.out.utf8)) as? [String: Any]
        #expect((json?["size"] as? Int) == size, "stat: \(stat.out)")
    }

    @Test func namespaceOperations() throws {
        let server = try ServerProcess(name: "namespace", port: 5502)
        defer { #expect(server.stop() == 0) }
        let local = try randomFile(10_000)
        let base = try server.url
        #expect(try daxshare(server, "put", local, base + "/a.bin").status == 0)
        let ls = try daxshare(server, "ls", base + "/")
        #expect(ls.status == 0 && ls.out.contains("a.bin"), "ls: \(ls.out) \(ls.err)")
        #expect(try daxshare(server, "mv", base + "/a.bin", "b.bin").status == 0)
        #expect(!FileManager.default.fileExists(atPath: server.exportDir + "/a.bin"))
        #expect(FileManager.default.fileExists(atPath: server.exportDir + "/b.bin"))
        #expect(try daxshare(server, "truncate", base + "/b.bin", "4K").status == 0)
        let attrs = try FileManager.default.attributesOfItem(atPath: server.exportDir + "/b.bin")
        #expect((attrs[.size] as? Int) == 4096)
        let cat = try daxshare(server, "cat", base + "/b.bin")
        #expect(cat.status == 0 && cat.out.utf8.count <= 4096 * 3)
        #expect(try daxshare(server, "rm", base + "/b.bin").status == 0)
        #expect(!FileManager.default.fileExists(atPath: server.exportDir + "/b.bin"))
        // A missing file is exit code 2.
        #expect(try daxshare(server, "stat", base + "/b.bin").status == 2)
    }

    @Test func twoClientsAtOnce() async throws {
        let server = try ServerProcess(name: "two", port: 5503)
        defer { #expect(server.stop() == 0) }
        let a = try randomFile(8 << 20), b = try randomFile(8 << 20)
        let base = try server.url
        async let ra = Task { try daxshare(server, "put", a, base + "/a") }.value
        async let rb = Task { try daxshare(server, "put", b, base + "/b") }.value
        let (pa, pb) = try await (ra, rb)
        #expect(pa.status == 0 && pb.status == 0, "\(pa.err) \(pb.err)")
        #expect(try sha256(server.exportDir + "/a") == sha256(a))
        #expect(try sha256(server.exportDir + "/b") == sha256(b))
    }

    @Test func wrongOrMissingSecretIsRejected() throws {
        let server = try ServerProcess(name: "secret", port: 5504)
        defer { #expect(server.stop() == 0) }
        let wrong = NSTemporaryDirectory() + "wrong-secret-\(UUID())"
        FileManager.default.createFile(atPath: wrong, contents: Data("not the secret, but long enough".utf8), attributes: [.posixPermissions: 0o600])
        let r = try daxshare(server, "ls", try server.url + "/", secretFile: wrong)
        #expect(r.status == 3, "wrong secret: \(r.status) \(r.err)")
        let missing = try daxshare(server, "ls", try server.url + "/", secretFile: "/nonexistent/secret")
        #expect(missing.status != 0)
        #expect(server.log.contains("authentication failed"))
    }

    /// One secret-file rule on both sides (SecretKey): a key ending in newlines, or made only of
    /// them, written with one final newline, authenticates. The server used to strip them all.
    @Test(arguments: [(5782, "sixteen-bytes-ok\n\n"), (5783, String(repeating: "\n", count: 17)), (5784, "sixteen-bytes-ok\r\n")])
    func secretsEndingInNewlinesAuthenticate(_ port: Int, _ secret: String) throws {
        let server = try ServerProcess(name: "secret-nl-\(port)", port: UInt16(port), secret: secret)
        defer { #expect(server.stop() == 0) }
        let r = try daxshare(server, "ls", try server.url + "/")
        #expect(r.status == 0, "secret \(Array(secret.utf8)): \(r.status) \(r.err)")
    }

    @Test func readOnlyExportRefusesWrites() throws {
        let server = try ServerProcess(name: "ro", port: 5505, readOnly: true)
        defer { #expect(server.stop() == 0) }
        FileManager.default.createFile(atPath: server.exportDir + "/present", contents: Data("hello".utf8))
        let local = try randomFile(100)
        let base = try server.url
        #expect(try daxshare(server, "put", local, base + "/new").status == 3)
        #expect(try daxshare(server, "rm", base + "/present").status == 3)
        #expect(try daxshare(server, "truncate", base + "/present", "0").status == 3)
        #expect(try daxshare(server, "mv", base + "/present", "moved").status == 3)
        #expect(try daxshare(server, "cat", base + "/present").out == "hello")
        #expect(!FileManager.default.fileExists(atPath: server.exportDir + "/new"))
    }

    @Test func unknownServerIsAConnectionError() throws {
        let secret = NSTemporaryDirectory() + "secret-\(UUID())"
        FileManager.default.createFile(atPath: secret, contents: Data("a secret nobody serves".utf8), attributes: [.posixPermissions: 0o600])
        let r = try run(Self.cli, ["ls", "--secret-file", secret, "daxshare://\(try Testbed.address):5599/data/"])
        #expect(r.status == 4, "\(r.status) \(r.err)")
        #expect(!r.err.isEmpty)
    }
}
