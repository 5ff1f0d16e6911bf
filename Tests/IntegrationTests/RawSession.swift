import Crypto
import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Foundation

/// A bare protocol client for tests that must do what the client library
/// never would (use a layout's rkey from another connection, write through a
/// READ layout, vanish without returning): one request at a time over a real
/// channel, answers decoded, nothing hidden.
final class RawSession: @unchecked Sendable {
    let channel: MessageChannel
    /// CB_LAYOUTRECALLs as they arrive (not acknowledged: that is the test's choice).
    let recalls: AsyncStream<(messageId: UInt64, recall: LayoutRecall)>
    private let lock = NSLock()
    private var waiting: [UInt64: CheckedContinuation<Message, any Error>] = [:]
    private var ended: (any Error)?
    private var nextId: UInt64 = 1
    private(set) var sessionId: UInt64 = 0
    private(set) var treeId: UInt32 = 0

    /// What NEGOTIATE agreed.
    private(set) var agreed: Capabilities = []

    /// `capabilities`: what NEGOTIATE asks for; with RDMA_FLUSH the queue pair is made able to post FLUSH.
    init(host: String, port: UInt16, export: String, secret: [UInt8],
         capabilities: Capabilities = [.layouts, .callbacks]) async throws {
        channel = try await MessageChannel.connect(host: host, port: port, flushOperations: capabilities.contains(.rdmaFlush))
        let (recalls, sink) = AsyncStream.makeStream(of: (messageId: UInt64, recall: LayoutRecall).self)
        self.recalls = recalls
        Task { [channel, self] in
            do {
                for try await bytes in channel.messages {
                    let m = try Message.decode(bytes)
                    if case let .callback(.layoutRecall(r)) = m.body {
                        sink.yield((m.messageId, r))
                        continue
                    }
                    let c = lock.withLock { waiting.removeValue(forKey: m.messageId) }
                    c?.resume(returning: m)
                }
                finish(TestbedError.missing("the connection (closed)"))
            } catch {
                finish(error)
            }
            sink.finish()
        }
        guard case let .negotiate(n) = try await request(.negotiate(NegotiateRequest(capabilities: capabilities, clientId: Array(repeating: 7, count: 16))))
        else { throw TestbedError.missing("a NEGOTIATE answer") }
        agreed = n.capabilities
        let clientNonce = (0..<32).map { _ in UInt8.random(in: 0...255) }
        let challenge = try await call(.sessionSetup(.begin(identity: "test", clientNonce: clientNonce)))
        guard case let .response(.sessionSetup(.challenge(serverNonce))) = challenge.body else {
            throw TestbedError.missing("a session challenge, got \(challenge.body)")
        }
        sessionId = challenge.sessionId
        let key = SymmetricKey(data: secret)
        let proof = HMAC<SHA256>.authenticationCode(
            for: SessionAuth.clientProofInput(sessionId: sessionId, serverNonce: serverNonce, clientNonce: clientNonce, identity: "test"),
            using: key)
        _ = try await request(.sessionSetup(.proof(clientProof: Array(proof))))
        guard case let .treeConnect(tree) = try await request(.treeConnect(TreeConnectRequest(exportName: export))) else {
            throw TestbedError.missing("a tree")
        }
        treeId = tree.treeId
    }

    private func finish(_ error: any Error) {
        let all = lock.withLock { () -> [CheckedContinuation<Message, any Error>] in
            ended = error
            defer { waiting.removeAll() }
            return Array(waiting.values)
        }
        all.forEach { $0.resume(throwing: error) }
    }

    /// Sends a request and returns the whole reply message.
    func call(_ r: Request) async throws -> Message {
        let id = lock.withLock { () -> UInt64 in
            defer { nextId += 1 }
            return nextId
        }
        let bytes = try Message.request(r, messageId: id, sessionId: sessionId).encode()
        return try await withCheckedThrowingContinuation { cont in
            let failed = lock.withLock { () -> (any Error)? in
                if let ended { return ended }
                waiting[id] = cont
                return nil
            }
            if let failed { cont.resume(throwing: failed); return }
            Task {
                do { try await channel.send(bytes) } catch {
                    let c = lock.withLock { waiting.removeValue(forKey: id) }
                    c?.resume(throwing: error)
                }
            }
        }
    }

    /// Acknowledges a recall (status OK: "seen, returning").
    func acknowledge(_ messageId: UInt64, _ recall: LayoutRecall) async throws {
        let reply = Message(messageId: messageId, sessionId: sessionId,
                            body: .callbackReply(status: .ok, .layoutRecall(LayoutRecallAck(recallId: recall.recallId))))
        try await channel.send(try reply.encode())
    }

    /// The well-behaved answer to every recall: acknowledge, commit `dirty`
    /// ranges of the layout (if any), return it.
    func answerRecalls(dirty: @escaping @Sendable (LayoutRecall) async -> [ByteRange] = { _ in [] }) {
        Task { [self] in
            for await (id, recall) in recalls {
                try? await acknowledge(id, recall)
                let ranges = await dirty(recall)
                if !ranges.isEmpty {
                    _ = try? await request(.layoutCommit(LayoutCommitRequest(
                        stateid: recall.stateid, newSize: ranges.map(\.end).max(), ranges: ranges)))
                }
                _ = try? await request(.layoutReturn(LayoutReturnRequest(stateid: recall.stateid, recallId: recall.recallId)))
            }
        }
    }

    /// Sends a request and returns its successful response, or throws its status.
    func request(_ r: Request) async throws -> Response {
        let m = try await call(r)
        switch m.body {
        case let .response(response): return response
        case let .error(_, status, _): throw StatusError(status: status)
        default: throw TestbedError.missing("a response, got \(m.body)")
        }
    }

    func open(_ path: String, _ flags: OpenFlags) async throws -> UInt64 {
        guard case let .open(o) = try await request(.open(OpenRequest(treeId: treeId, flags: flags, path: path))) else {
            throw TestbedError.missing("an open response")
        }
        return o.fileId
    }

    func layout(file: UInt64, offset: UInt64, length: UInt64, _ iomode: LayoutIOMode) async throws -> LayoutGetResponse {
        guard case let .layoutGet(l) = try await request(
            .layoutGet(LayoutGetRequest(fileId: file, offset: offset, length: length, minLength: length, iomode: iomode)))
        else { throw TestbedError.missing("a layout") }
        return l
    }

    func counters() async throws -> [String: UInt64] {
        guard case let .serverStats(s) = try await request(.serverStats) else { throw TestbedError.missing("stats") }
        return Dictionary(uniqueKeysWithValues: s.counters.map { ($0.name, $0.value) })
    }

    func close() { channel.close() }
}

struct StatusError: Error, Equatable { var status: Status }

extension LayoutExtent {
    var remote: RemoteMemory { RemoteMemory(address: remoteAddress, rkey: rkey, length: length) }
}
