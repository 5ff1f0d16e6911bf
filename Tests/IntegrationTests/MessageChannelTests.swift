import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Testing

/// The credit-based transport over real rxe: negotiation, fragmentation,
/// credit flow under pressure, and a violation closing only its connection.
@Suite(.serialized) struct MessageChannelTests {
    /// Few credits and small receives, so credits run out and messages fragment.
    static let tight = TransportConfig(
        creditsRequested: 4, preferredSendSize: 1024, maxReceiveSize: 1024, maxFragmentedSize: 1 << 20)

    /// A server that echoes every message on every channel it accepts.
    final class EchoServer: Sendable {
        let listener: Listener
        let channels = AsyncStream<MessageChannel>.makeStream()
        let failures = AsyncStream<any Error>.makeStream()

        init(config: TransportConfig) throws {
            listener = try Listener(host: try Testbed.address, port: 0)
            Task { [listener, channels, failures] in
                for await request in listener.requests {
                    Task {
                        do {
                            let channel = try await MessageChannel.accept(request, config: config)
                            channels.continuation.yield(channel)
                            do {
                                for try await message in channel.messages { try await channel.send(message) }
                            } catch {
                                failures.continuation.yield(error)
                            }
                        } catch {
                            failures.continuation.yield(error)
                        }
                    }
                }
            }
        }
    }

    @Test func negotiatesTheSmallerSizes() async throws {
        let server = try EchoServer(config: Self.tight)
        defer { server.listener.close() }
        var client = TransportConfig()
        client.maxReceiveSize = 2048
        let channel = try await MessageChannel.connect(
            host: try Testbed.address, port: server.listener.address.port, config: client)
        defer { channel.close() }
        // The client sends at most what the server receives, and vice versa.
        #expect(channel.negotiated.maxSendSize == 1024)
        #expect(channel.negotiated.credits.sendCredits >= 1)
        #expect(channel.negotiated.credits.sendCredits <= client.creditsRequested)
    }

    @Test func echoesManyMessagesInOrderThroughFewCredits() async throws {
        let server = try EchoServer(config: Self.tight)
        defer { server.listener.close() }
        let channel = try await MessageChannel.connect(
            host: try Testbed.address, port: server.listener.address.port, config: Self.tight)
        defer { channel.close() }
        // Sizes from one byte to 100 frames' worth: many need several fragments.
        let sizes = [1, 7, 40, 999, 1000, 1001, 4096, 100_000, 3, 65_536] + Array(repeating: 512, count: 190)
        let messages = sizes.enumerated().map { pattern($1, seed: UInt8(truncatingIfNeeded: $0)) }
        async let sent: Void = { for m in messages { try await channel.send(m) } }()
        var received: [[UInt8]] = []
        for try await m in channel.messages {
            received.append(m)
            if received.count == messages.count { break }
        }
        try await sent
        #expect(received.count == messages.count)
        #expect(received == messages)
    }

    @Test func aViolationClosesOnlyThatConnection() async throws {
        let server = try EchoServer(config: Self.tight)
        defer { server.listener.close() }
        let port = server.listener.address.port
        let good = try await MessageChannel.connect(host: try Testbed.address, port: port, config: Self.tight)
        defer { good.close() }
        let bad = try await MessageChannel.connect(host: try Testbed.address, port: port, config: Self.tight)
        defer { bad.close() }

        // A SEND that bypasses the transport: not a valid data transfer message.
        let garbage = try RegisteredBuffer(domain: bad.connection.domain, length: 64, access: [.localWrite])
        garbage.bytes.copyBytes(from: [0x03, 0x00] + Array(repeating: 0xEE, count: 62))
        try await bad.connection.send([garbage.region.segment(length: 64)])

        var failures = server.failures.stream.makeAsyncIterator()
        let failure = try #require(await failures.next())
        guard case .violation = failure as? TransportError else {
            Issue.record("expected a violation, got \(failure)")
            return
        }
        // The offender is disconnected...
        await bad.connection.waitUntilDisconnected()
        #expect(!bad.connection.isConnected)
        // ...and the other client is still served.
        try await good.send(Array("still here".utf8))
        var replies = good.messages.makeAsyncIterator()
        #expect(try await replies.next() == Array("still here".utf8))
    }
}
