import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

/// Bad input costs only the connection that sent it: the server process stays
/// up and keeps serving everyone else.
@Suite(.serialized) struct ServerRobustnessTests {
    @Test func garbageClosesOnlyTheSendersConnection() async throws {
        let server = try ServerProcess(name: "garbage", port: 5511)
        defer { #expect(server.stop() == 0, "server log:\n\(server.log)") }
        let address = try Testbed.address

        // 1. Transport-level garbage: a SEND that is no data transfer message.
        let raw = try await MessageChannel.connect(host: address, port: server.port)
        let junk = try RegisteredBuffer(domain: raw.connection.domain, length: 256, access: [.localWrite])
        junk.bytes.copyBytes(from: (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 37) })
        try await raw.connection.send([junk.region.segment(length: 256)])
        await raw.connection.waitUntilDisconnected()

        // 2. Upper-layer garbage in valid framing: a header with a bad body.
        let framed = try await MessageChannel.connect(host: address, port: server.port)
        var message = try Message.request(.echo(EchoMessage(data: [1, 2, 3])), messageId: 1, sessionId: 0).encode()
        message[32] = 0xFF  // body length no longer matches
        try await framed.send(message)
        var replies = framed.messages.makeAsyncIterator()
        let reply = try await replies.next().map { try Message.decode($0) }
        #expect(reply?.status == .badMessage)
        await framed.connection.waitUntilDisconnected()

        // 3. A request before authentication: refused, connection kept.
        let early = try await MessageChannel.connect(host: address, port: server.port)
        defer { early.close() }
        try await early.send(try Message.request(.serverStats, messageId: 9, sessionId: 0).encode())
        var earlyReplies = early.messages.makeAsyncIterator()
        #expect(try await earlyReplies.next().map { try Message.decode($0) }?.status == .notAuthenticated)
        // An unknown command: NOT_SUPPORTED, and the connection carries on.
        var unknown = try Message.request(.echo(EchoMessage(data: [])), messageId: 10, sessionId: 0).encode()
        unknown[6] = 0x77
        unknown[7] = 0x7F
        try await early.send(unknown)
        #expect(try await earlyReplies.next().map { try Message.decode($0) }?.status == .notSupported)
        #expect(early.connection.isConnected)

        // 4. Through all that, a well-behaved client is served.
        let secret = server.secretFile
        let local = NSTemporaryDirectory() + "robust-\(UUID())"
        FileManager.default.createFile(atPath: local, contents: Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0) }))
        let put = try run(CLITests.cli, ["put", "--secret-file", secret, local, try server.url + "/ok.bin"])
        #expect(put.status == 0, "put after garbage: \(put.err)")
        let sums = try run("/usr/bin/cmp", [local, server.exportDir + "/ok.bin"])
        #expect(sums.status == 0)
        #expect(server.log.contains("connection closed"), "server log:\n\(server.log)")
    }

    @Test func sigtermStopsCleanlyWithClientsConnected() async throws {
        let server = try ServerProcess(name: "sigterm", port: 5512)
        let channel = try await MessageChannel.connect(host: try Testbed.address, port: server.port)
        #expect(server.stop() == 0, "server log:\n\(server.log)")
        await channel.connection.waitUntilDisconnected()
        #expect(!channel.connection.isConnected)
        #expect(server.log.contains("stopping"))
    }
}
