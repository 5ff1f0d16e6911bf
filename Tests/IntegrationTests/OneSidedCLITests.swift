import Foundation
import Testing

/// `daxshare get/put/cat` through layouts (issue 5), as a user runs them: real `daxshared` and
/// `daxshare` processes over rxe, files on the fsdax mount. The server's counters
/// (`daxshare stat --server --json`) prove which path moved the bytes: through layouts the
/// two-sided byte counters stay still while the layout and one-sided commit counters grow;
/// with `--two-sided` it is the other way round. Ports 5531–5539.
@Suite(.serialized) struct OneSidedCLITests {
    static let cli = ServerProcess.binDir + "/daxshare"

    func daxshare(_ server: ServerProcess, _ command: String, _ args: String...) throws -> (status: Int32, out: String, err: String) {
        try run(Self.cli, [command, "--secret-file", server.secretFile] + args)
    }

    func sha256(_ path: String) throws -> String { try sha256Hex(ofFile: path) }

    func randomFile(_ size: Int) throws -> String { try randomTestFile(size, prefix: "daxshare-onesided") }

    /// The server's counters, by name.
    func counters(_ server: ServerProcess) throws -> [String: Int] {
        let r = try daxshare(server, "stat", "--server", "--json", try server.url)
        #expect(r.status == 0, "stat --server: \(r.err)")
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any] ?? [:]
        return json.compactMapValues { ($0 as? NSNumber)?.intValue }
    }

    func grew(_ before: [String: Int], _ after: [String: Int], _ name: String) -> Int {
        (after[name] ?? 0) - (before[name] ?? 0)
    }

    /// Up to 16 MiB: a quarter of the client's 64 MiB layout window, many work requests (64 MiB
    /// cost a minute of the debug CLI under emulation and took the same path).
    @Test(arguments: [4096, 1 << 20, 16 << 20])
    func putAndGetMoveTheBytesOneSided(size: Int) throws {
        let server = try ServerProcess(name: "onesided-\(size)", port: 5531)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let local = try randomFile(size)
        let expected = try sha256(local)
        let url = try server.url + "/f-\(size).bin"

        // --digest up to 1 MiB: the debug CLI's SHA-256 (swift-crypto unoptimised) would take
        // most of a minute for 64 MiB under emulation; the test hashes the files itself.
        let digest = size <= 1 << 20
        let c0 = try counters(server)
        let put = try run(Self.cli, ["put", "--secret-file", server.secretFile, "-v"] + (digest ? ["--digest"] : []) + [local, url])
        #expect(put.status == 0, "put: \(put.err)")
        #expect(put.err.contains("\(size) bytes, one-sided via layout"), "put -v: \(put.err)")
        if digest { #expect(put.out == "\(expected)  \(local)\n") }
        // On the server's pmem byte for byte, and the size committed.
        #expect(try sha256(server.exportDir + "/f-\(size).bin") == expected)
        let c1 = try counters(server)
        #expect(grew(c0, c1, "bytes_written_two_sided") == 0, "\(c0) -> \(c1)")
        #expect(grew(c0, c1, "bytes_layout_granted") >= size, "\(c0) -> \(c1)")
        #expect(grew(c0, c1, "layouts_granted") >= 1, "\(c0) -> \(c1)")

        let back = local + ".back"
        let get = try run(Self.cli, ["get", "--secret-file", server.secretFile, "-v"] + (digest ? ["--digest"] : []) + [url, back])
        #expect(get.status == 0, "get: \(get.err)")
        #expect(get.err.contains("\(size) bytes, one-sided via layout"), "get -v: \(get.err)")
        if digest { #expect(get.out == "\(expected)  \(back)\n") }
        #expect(try sha256(back) == expected)
        let c2 = try counters(server)
        #expect(grew(c1, c2, "bytes_read_two_sided") == 0, "\(c1) -> \(c2)")
        #expect(grew(c1, c2, "bytes_layout_granted") >= size, "\(c1) -> \(c2)")
        #expect(grew(c1, c2, "layouts_granted") >= 1, "\(c1) -> \(c2)")
        // Every layout was returned and its memory region deregistered.
        #expect(c2["layouts_live"] == 0 && c2["mrs_live"] == 0, "\(c2)")

        try? FileManager.default.removeItem(atPath: local)
        try? FileManager.default.removeItem(atPath: back)
    }

    @Test func twoSidedFlagMovesTheBytesTwoSided() throws {
        let size = 1 << 20
        let server = try ServerProcess(name: "twosided-flag", port: 5532)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let local = try randomFile(size)
        let url = try server.url + "/f.bin"

        let c0 = try counters(server)
        let put = try daxshare(server, "put", "--two-sided", "-v", "--digest", local, url)
        #expect(put.status == 0, "put: \(put.err)")
        #expect(put.err.contains("\(size) bytes, two-sided"), "put -v: \(put.err)")
        let c1 = try counters(server)
        #expect(grew(c0, c1, "bytes_written_two_sided") == size, "\(c0) -> \(c1)")
        #expect(grew(c0, c1, "layouts_granted") == 0 && grew(c0, c1, "bytes_committed_one_sided") == 0, "\(c0) -> \(c1)")

        let back = local + ".back"
        let get = try daxshare(server, "get", "--two-sided", "-v", "--digest", url, back)
        #expect(get.status == 0, "get: \(get.err)")
        #expect(get.err.contains("\(size) bytes, two-sided"), "get -v: \(get.err)")
        #expect(try sha256(back) == sha256(local))
        #expect(put.out.prefix(64) == get.out.prefix(64))
        let c2 = try counters(server)
        #expect(grew(c1, c2, "bytes_read_two_sided") == size, "\(c1) -> \(c2)")
        #expect(grew(c1, c2, "layouts_granted") == 0, "\(c1) -> \(c2)")
        try? FileManager.default.removeItem(atPath: local)
        try? FileManager.default.removeItem(atPath: back)
    }

    /// `--poll`: the CLI's event loop spins on its completion queue instead of sleeping on the
    /// channel, and the command's tasks run on it. The same bytes, both paths.
    @Test(arguments: [false, true])
    func pollMovesTheSameBytes(twoSided: Bool) throws {
        let size = (1 << 20) + 4097
        let server = try ServerProcess(name: "poll-\(twoSided)", port: twoSided ? 5535 : 5534)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let local = try randomFile(size)
        let expected = try sha256(local)
        let url = try server.url + "/polled.bin"
        let path = twoSided ? ["--two-sided"] : []
        let put = try run(Self.cli, ["put", "--secret-file", server.secretFile, "--poll", "-v"] + path + [local, url])
        #expect(put.status == 0, "put --poll: \(put.err)")
        #expect(put.err.contains("\(size) bytes, \(twoSided ? "two-sided" : "one-sided via layout")"), "put -v: \(put.err)")
        #expect(try sha256(server.exportDir + "/polled.bin") == expected)
        let back = local + ".back"
        let get = try run(Self.cli, ["get", "--secret-file", server.secretFile, "--poll", "--queue-depth", "8"] + path + [url, back])
        #expect(get.status == 0, "get --poll: \(get.err)")
        #expect(try sha256(back) == expected)
        try? FileManager.default.removeItem(atPath: local)
        try? FileManager.default.removeItem(atPath: back)
    }

    /// `--queue-depth` sets what is in flight one-sided too (work requests through layouts), from
    /// one at a time to the most it takes. put sends from the file's own pages at both ends
    /// (the windows are a batch of that many work requests), and get reads them back.
    @Test(arguments: [1, 64])
    func queueDepthHoldsOneSidedToo(depth: Int) throws {
        let size = (4 << 20) + 4097
        let server = try ServerProcess(name: "depth-\(depth)", port: 5536 + (depth == 1 ? 0 : 1))
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let local = try randomFile(size)
        let expected = try sha256(local)
        let url = try server.url + "/depth.bin"
        let put = try run(Self.cli, ["put", "--secret-file", server.secretFile, "-v", "--queue-depth", "\(depth)", local, url])
        #expect(put.status == 0, "put --queue-depth \(depth): \(put.err)")
        #expect(put.err.contains("\(size) bytes, one-sided via layout"), "put -v: \(put.err)")
        #expect(try sha256(server.exportDir + "/depth.bin") == expected)
        let back = local + ".back"
        let get = try run(Self.cli, ["get", "--secret-file", server.secretFile, "-v", "--queue-depth", "\(depth)", url, back])
        #expect(get.status == 0, "get --queue-depth \(depth): \(get.err)")
        #expect(get.err.contains("\(size) bytes, one-sided via layout"), "get -v: \(get.err)")
        #expect(try sha256(back) == expected)
        try? FileManager.default.removeItem(atPath: local)
        try? FileManager.default.removeItem(atPath: back)
    }

    @Test func catThroughLayoutsWritesTheExactBytes() throws {
        let server = try ServerProcess(name: "onesided-cat", port: 5533)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let text = String(repeating: "one-sided bytes through a layout\n", count: 3000)
        let local = NSTemporaryDirectory() + "daxshare-onesided-cat-\(UUID())"
        _ = FileManager.default.createFile(atPath: local, contents: Data(text.utf8))
        let url = try server.url + "/text"
        #expect(try daxshare(server, "put", local, url).status == 0)
        let c0 = try counters(server)
        let cat = try run(Self.cli, ["cat", "-v", "--secret-file", server.secretFile, url])
        #expect(cat.status == 0, "cat: \(cat.err)")
        #expect(cat.out == text)
        let c1 = try counters(server)
        // The file's size (99000) is not a whole number of pages: the READ layout reaches to the
        // next page boundary (PROTOCOL.md §5.2), which the mapping covers (mmap maps whole pages).
        #expect(cat.err.contains("\(text.utf8.count) bytes, one-sided via layout"), "cat -v: \(cat.err)")
        #expect(grew(c0, c1, "bytes_read_two_sided") == 0, "\(c0) -> \(c1)")
        #expect(grew(c0, c1, "layouts_granted") == 1, "\(c0) -> \(c1)")
        try? FileManager.default.removeItem(atPath: local)
    }
}
