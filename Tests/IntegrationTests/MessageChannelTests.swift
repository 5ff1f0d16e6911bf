import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Synchronization
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

    /// A server that accepts channels and leaves them to the test: nothing reads them.
    final class IdleServer: Sendable {
        let listener: Listener
        let channels = AsyncStream<MessageChannel>.makeStream()

        init(config: TransportConfig) throws {
            listener = try Listener(host: try Testbed.address, port: 0)
            Task { [listener, channels] in
                for await request in listener.requests {
                    if let channel = try? await MessageChannel.accept(request, config: config) {
                        channels.continuation.yield(channel)
                    }
                }
            }
        }

        func next() async throws -> MessageChannel {
            var it = channels.stream.makeAsyncIterator()
            return try #require(await it.next())
        }
    }

    /// Issue 13: a receive goes back to the peer only when its message is taken. A client
    /// that floods a server whose upper layer reads nothing is stopped by credits after a few
    /// messages (the server queues no more than its receives), and goes on once it reads.
    @Test func aFloodIsHeldByCreditsUntilTheConsumerReads() async throws {
        let server = try IdleServer(config: Self.tight)
        defer { server.listener.close() }
        let client = try await MessageChannel.connect(
            host: try Testbed.address, port: server.listener.address.port, config: Self.tight)
        defer { client.close() }
        let accepted = try await server.next()
        defer { accepted.close() }

        // Single-send messages and three-fragment ones (1000 bytes of payload per send).
        let messages = (0..<60).map { pattern($0 % 3 == 0 ? 2500 : 300, seed: UInt8($0)) }
        let sent = Mutex(0)
        let sender = Task {
            for m in messages {
                try await client.send(m)
                sent.withLock { $0 += 1 }
            }
        }
        try await Task.sleep(for: .seconds(2))
        let stalled = sent.withLock { $0 }
        let backlog = accepted.backlog
        // 4 receives: the peer cannot have more than 4 data messages outstanding.
        #expect(stalled <= Int(Self.tight.creditsRequested), "\(stalled) messages went out to a server that reads nothing")
        #expect(backlog.heldReceives <= Int(Self.tight.creditsRequested))
        #expect(backlog.messages >= 1)
        #expect(backlog.bytes <= accepted.maxBufferedBytes)
        #expect(!client.isClosed && !accepted.isClosed)

        // Reading lets the rest through, in order.
        var received: [[UInt8]] = []
        for try await m in accepted.messages {
            received.append(m)
            let b = accepted.backlog
            #expect(b.bytes <= accepted.maxBufferedBytes)
            #expect(b.heldReceives <= Int(Self.tight.creditsRequested))
            if received.count == messages.count { break }
        }
        try await sender.value
        #expect(received == messages)
        #expect(sent.withLock { $0 } == messages.count)
    }

    /// Issue 13: many tasks send at once over one channel; every message arrives whole (the
    /// fragments of one are never interleaved with another's), and several SENDs were in
    /// flight at once. The server echoes each message from its own task, as a concurrent
    /// server does.
    @Test func concurrentSendsArriveIntactWithSeveralInFlight() async throws {
        var config = TransportConfig(creditsRequested: 32, preferredSendSize: 1024, maxReceiveSize: 1024,
                                     maxFragmentedSize: 1 << 20)
        config.keepaliveInterval = .seconds(120)
        let server = try IdleServer(config: config)
        defer { server.listener.close() }
        let client = try await MessageChannel.connect(
            host: try Testbed.address, port: server.listener.address.port, config: config)
        defer { client.close() }
        let accepted = try await server.next()
        defer { accepted.close() }
        let echo = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for try await m in accepted.messages {
                    group.addTask { try await accepted.send(m) }
                }
                try await group.waitForAll()
            }
        }
        defer { echo.cancel() }

        let tasks = 8, perTask = 30
        // Each message names its task and sequence number, and its size spans 1 to 5 sends.
        func message(_ t: Int, _ i: Int) -> [UInt8] {
            let size = 16 + ((t * 7919 + i * 104_729) % 4500)
            return [UInt8(t), UInt8(i)] + pattern(size, seed: UInt8(truncatingIfNeeded: t * 31 + i))
        }
        let started = ContinuousClock.now
        async let sending: Void = withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask { for i in 0..<perTask { try await client.send(message(t, i)) } }
            }
            try await group.waitForAll()
        }
        var nextFrom = [Int](repeating: 0, count: tasks)
        var count = 0
        for try await m in client.messages {
            let t = Int(m[0]), i = Int(m[1])
            #expect(m == message(t, i), "message \(i) of task \(t) arrived damaged (\(m.count) bytes)")
            // The echo server answers from concurrent tasks: order holds per sender only up to
            // the server's reordering, so check each arrived once.
            #expect(i >= 0 && i < perTask)
            nextFrom[t] += 1
            count += 1
            if count == tasks * perTask { break }
        }
        try await sending
        #expect(nextFrom == [Int](repeating: perTask, count: tasks))
        #expect(client.sendsInFlightPeak > 1, "client: at most \(client.sendsInFlightPeak) SEND in flight")
        #expect(accepted.sendsInFlightPeak > 1, "server: at most \(accepted.sendsInFlightPeak) SEND in flight")
        #expect(!client.isClosed && !accepted.isClosed)
        print("concurrent sends: \(tasks * perTask) messages each way in \(ContinuousClock.now - started); "
            + "peak in flight client \(client.sendsInFlightPeak), server \(accepted.sendsInFlightPeak)")
    }
}
