import DaxshareClient
import DaxshareWire
import Foundation
import Testing

/// No client path leaves its export, whatever it is made of: checked against a
/// real daxshared process through the client library, with symlinks planted
/// in the export that point outside it.
@Suite(.serialized) struct PathConfinementTests {
    @Test func everyEscapeIsRefused() async throws {
        let server = try ServerProcess(name: "escape", port: 5521)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let outside = try Testbed.pmemPath("outside-secret.txt")
        #expect(FileManager.default.createFile(atPath: outside, contents: Data("top secret".utf8)))
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: server.exportDir + "/to-etc", withDestinationPath: "/etc")
        try fm.createSymbolicLink(atPath: server.exportDir + "/to-parent", withDestinationPath: "..")
        try fm.createSymbolicLink(atPath: server.exportDir + "/to-outside", withDestinationPath: outside)
        try fm.createDirectory(atPath: server.exportDir + "/sub", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: server.exportDir + "/sub/up", withDestinationPath: "../../")

        let session = try await ClientSession.connect(
            host: try Testbed.address, port: server.port, export: "data",
            secret: try SessionSecret(contentsOf: server.secretFile))

        let escapes = [
            "../outside-secret.txt", "/etc/passwd", "sub/../../x", "to-etc/passwd", "to-parent/outside-secret.txt",
            "to-outside", "sub/up/etc/passwd", "a\u{0}b", "..", "sub/../../../etc/shadow",
        ]
        for path in escapes {
            do {
                let file = try await session.open(path, flags: [.read])
                let bytes = try await file.read(at: 0, count: 64)
                Issue.record("opened '\(path)' and read \(bytes.count) bytes")
            } catch {
                guard case let .status(status, _, _) = error else {
                    Issue.record("'\(path)': not a status from the server: \(error)")
                    continue
                }
                #expect([.accessDenied, .invalidArgument, .notFound].contains(status), "'\(path)' gave \(status)")
            }
            // Writes through the same names are refused too, and create nothing outside.
            _ = try? await session.open(path + "-new", flags: [.write, .create])
        }
        #expect(!fm.fileExists(atPath: "/etc/passwd-new") && !fm.fileExists(atPath: outside + "-new"))
        #expect(try String(contentsOfFile: outside, encoding: .utf8) == "top secret")
        // And the server is still serving this very session.
        #expect(try await session.stat("").type == .directory)
        await session.close()
        #expect(server.log.contains("path rejected: access denied"), "server log:\n\(server.log)")
    }
}
