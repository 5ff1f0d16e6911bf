import DaxshareClient
import DaxshareWire
import Foundation
import Glibc
import Testing

/// Issues 13 and 14: a large two-sided READ goes from the file's pages to the client's buffer
/// by the server's NIC (an on-demand region over the file's mapping), with no copy by the
/// server's CPU; small ones still pread into a registered chunk. Either way the client gets
/// the file's bytes, to its end, also after another process grew the file under the mapping.
@Suite(.serialized) struct TwoSidedReadTests {
    @Test func largeReadsGoFromTheFilesPagesAndSendItsBytes() async throws {
        let server = try ServerProcess(name: "twosidedread", port: 5730)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let secret = try SessionSecret(contentsOf: server.secretFile)
        var config = ClientConfiguration()
        config.useLayouts = false
        let client = try await ClientSession.connect(
            host: try Testbed.address, port: server.port, export: "data", secret: secret, config: config)
        func fromMappings() async throws -> UInt64 {
            try await client.serverStats().first { $0.name == ServerCounter.bytesReadFromMappings }?.value ?? 0
        }

        let size = (3 << 20) + 123
        let original = pattern(size, seed: 1)
        let file = try await client.open("pages.bin", flags: [.read, .write, .create])
        try await file.write(at: 0, original, writeThrough: true)

        let before = try await fromMappings()
        var large = 0
        for (offset, count) in [(0, 1 << 20), (4097, 1 << 20), (1 << 20, 2 << 20), (size - 1000, 1 << 20), (5, 64 << 10)] {
            let back = try await file.read(at: UInt64(offset), count: count)
            let expected = Array(original[offset..<min(size, offset + count)])
            #expect(back.count == expected.count, "READ \(offset)+\(count)")
            #expect(firstDifference(back, expected) == nil, "READ \(offset)+\(count): bytes differ")
            // Up to the first page boundary through a chunk (rxe's ODP and unaligned starts).
            large += expected.count - min(expected.count, (4096 - offset % 4096) % 4096)
        }
        #expect(try await file.read(at: UInt64(size), count: 1 << 20).isEmpty, "nothing past end of file")
        #expect(try await file.read(at: 100, count: 4096) == Array(original[100..<4196]), "a small READ, through a chunk")
        #expect(try await fromMappings() - before == UInt64(large), "every large READ from the file's pages, no small one")

        // Another process appends: the server's mapping ends at the old size, and grows.
        let appended = pattern(1 << 20, seed: 2)
        let handle = try #require(FileHandle(forWritingAtPath: server.exportDir + "/pages.bin"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(appended))
        try handle.close()
        let across = try await file.read(at: UInt64(size - 4096), count: 2 << 20)
        #expect(across.count == 4096 + appended.count)
        #expect(firstDifference(across, Array(original.suffix(4096)) + appended) == nil, "READ across the old end")

        try await file.close()
        // Closed and opened again (its window deregistered, made anew): the same bytes.
        let again = try await client.open("pages.bin", flags: [.read])
        #expect(firstDifference(try await again.read(at: 0, count: 1 << 20), Array(original[0..<(1 << 20)])) == nil)
        try await again.close()
        await client.close()
    }
}

/// Where two byte arrays first differ, and how (not the arrays: a megabyte in a test log
/// says nothing). memcmp first: element loops are slow in a debug build.
func firstDifference(_ got: [UInt8], _ expected: [UInt8]) -> String? {
    let n = min(got.count, expected.count)
    let same = got.withUnsafeBytes { g in expected.withUnsafeBytes { e in n == 0 || memcmp(g.baseAddress!, e.baseAddress!, n) == 0 } }
    if !same, let i = (0..<n).first(where: { got[$0] != expected[$0] }) {
        return "at \(i): got \(got[i..<min(got.count, i + 8)]), expected \(expected[i..<min(expected.count, i + 8)])"
    }
    return got.count == expected.count ? nil : "\(got.count) bytes, expected \(expected.count)"
}
