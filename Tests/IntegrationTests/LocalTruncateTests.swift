import DaxshareClient
import DaxshareWire
import Foundation
import Glibc
import Testing

/// Issue 13: another process truncating a file a client has open (no layout, so no
/// lease) cost the whole server a SIGBUS on the next two-sided WRITE, which copied
/// through the stale mapping. Now that client gets a clear answer, the server lives, and
/// everyone else keeps working.
@Suite(.serialized) struct LocalTruncateTests {
    @Test func localTruncateUnderAnOpenFileKeepsTheServerUp() async throws {
        let server = try ServerProcess(name: "localtruncate", port: 5720)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let host = try Testbed.address
        let secret = try SessionSecret(contentsOf: server.secretFile)
        var twoSided = ClientConfiguration()
        twoSided.useLayouts = false
        let client = try await ClientSession.connect(host: host, port: server.port, export: "data", secret: secret, config: twoSided)
        let bystander = try await ClientSession.connect(host: host, port: server.port, export: "data", secret: secret, config: twoSided)

        let file = try await client.open("victim.bin", flags: [.read, .write, .create])
        let data = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 1) }
        try await file.write(at: 0, data, writeThrough: true)
        let other = try await bystander.open("bystander.bin", flags: [.read, .write, .create])
        try await other.write(at: 0, Array("before".utf8), writeThrough: true)

        let cut = try run("/usr/bin/truncate", ["-s", "0", server.exportDir + "/victim.bin"])
        #expect(cut.status == 0, "truncate: \(cut.err)")

        // The WRITE lands (pwrite extends the file again); any failure would have to be a status.
        let write = await attempt {
            try await file.write(at: 1 << 20, Array("after".utf8))
            return "write OK"
        }
        let read = await attempt {
            let back = try await file.read(at: 0, count: 2 << 20)
            #expect(back.count == (1 << 20) + 5)  // to the new end of file
            #expect(back.prefix(1 << 20).allSatisfy { $0 == 0 })  // the cut bytes never come back
            #expect(Array(back.suffix(5)) == Array("after".utf8))
            return "read \(back.count) bytes"
        }
        let outcomes = [write, read]
        #expect(outcomes.allSatisfy { !$0.lostConnection }, "a status, not a lost connection: \(outcomes)")
        try await file.flush()
        try await file.flush(offset: 0, length: 64 << 20)
        #expect(kill(server.process.processIdentifier, 0) == 0, "the server died: \(outcomes)\n\(server.log)")

        // The bystander never noticed.
        try await other.write(at: 6, Array(" and after".utf8), writeThrough: true)
        #expect(try await other.read(at: 0, count: 100) == Array("before and after".utf8))
        let fresh = try await bystander.open("victim.bin", flags: [.read])
        #expect(try await fresh.stat().size == (1 << 20) + 5)
        print("local truncate: \(outcomes.map(\.text).joined(separator: ", "))")
        try await fresh.close()
        try await other.close()
        try await file.close()
        await bystander.close()
        await client.close()
    }

    /// What `body` came to: its own text, or the error; a ClientError without a status means
    /// the connection went (the server died, or dropped this client).
    private func attempt(_ body: () async throws -> String) async -> (text: String, lostConnection: Bool) {
        do {
            return (try await body(), false)
        } catch let error as ClientError {
            return ("\(error)", error.status == nil)
        } catch {
            return ("\(error)", true)
        }
    }
}
