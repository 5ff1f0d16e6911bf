import Crypto
import DaxshareTransport
import DaxshareVerbs
import DaxshareWire
import Foundation
import Testing

// Shared pieces of the Reliability* suites (issue 8): bounded waits, the run's scale, a
// well-behaved CLI client running beside the tests, a bare probe session that sends any
// bytes, a bare transport that breaks credit and size rules, and the protocol vectors.

/// The run's settings and its figures.
enum Reliability {
    /// DAXSHARE_RELIABILITY_SCALE (default 1): multiplies counts and durations.
    static let scale: Int = {
        let raw = ProcessInfo.processInfo.environment["DAXSHARE_RELIABILITY_SCALE"] ?? ""
        return max(1, Int(raw) ?? 1)
    }()

    /// Makes ServerProcess and CLITests use the binaries beside this test bundle (a build
    /// in another scratch path, such as .build-helper) unless DAXSHARE_BIN_DIR says where.
    /// ServerProcess.binDir is read once, lazily: every Reliability test calls this first.
    static func prepare() {
        let env = ProcessInfo.processInfo.environment["DAXSHARE_BIN_DIR"] ?? ""
        if env.isEmpty, let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let dir = URL(fileURLWithPath: exe).deletingLastPathComponent().path
            if FileManager.default.isExecutableFile(atPath: dir + "/daxshared") {
                setenv("DAXSHARE_BIN_DIR", dir, 1)
            }
        }
        Self.announce
    }

    private static let announce: Void = {
        print("reliability: scale \(scale), binaries from \(ServerProcess.binDir)")
    }()

    /// A figure for the summary: printed as `reliability: TEXT` (scripts/reliability collects them).
    static func report(_ text: String) {
        print("reliability: \(text)")
        fflush(nil)
    }
}

struct DeadlineExceeded: Error, CustomStringConvertible {
    var what: String
    var seconds: Double
    var description: String { "\(what) did not finish within \(seconds) s" }
}

/// Runs `body` and gives up after `seconds` (throwing DeadlineExceeded), even when the body
/// waits on something that ignores cancellation: the body then runs on, detached.
func withDeadline<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let once = Once<T>()
    return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
        once.install(cont)
        let work = Task {
            do { once.finish(.success(try await body())) } catch { once.finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            once.finish(.failure(DeadlineExceeded(what: what, seconds: seconds)))
            work.cancel()
        }
    }
}

private final class Once<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var cont: CheckedContinuation<T, any Error>?
    private var early: Result<T, any Error>?
    private var done = false
    func install(_ c: CheckedContinuation<T, any Error>) {
        let pending: Result<T, any Error>? = lock.withLock {
            if let early { done = true; return early }
            cont = c
            return nil
        }
        if let pending { c.resume(with: pending) }
    }
    func finish(_ r: Result<T, any Error>) {
        let c: CheckedContinuation<T, any Error>? = lock.withLock {
            if done { return nil }
            guard let c = cont else { if early == nil { early = r }; return nil }
            done = true
            cont = nil
            return c
        }
        c?.resume(with: r)
    }
}

/// Polls `condition` every 100 ms until it holds or `seconds` pass; returns whether it held.
func eventually(_ seconds: Double, _ condition: @Sendable () async throws -> Bool) async -> Bool {
    let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < end {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return (try? await condition()) == true
}

func sha256Hex(_ bytes: some Sequence<UInt8>) -> String {
    SHA256.hash(data: Data(bytes)).map { String(format: "%02x", $0) }.joined()
}

/// Deterministic bytes for a seed (xorshift), fast enough for a few MiB.
func seededBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var g = SeededGenerator(seed: seed)
    var out = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        let r = g.next()
        for j in 0..<min(8, count - i) { out[i + j] = UInt8(truncatingIfNeeded: r >> (8 * UInt64(j))) }
        i += 8
    }
    return out
}

/// xorshift64: mutations and workloads are reproducible from their seed.
struct SeededGenerator: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

// MARK: - The well-behaved client

/// The real `daxshare` CLI, in a loop on its own thread (the processes it waits for must
/// not hold Swift's two cooperative threads): put a seeded file, get it back, compare
/// SHA-256 digests, remove it. Every command is bounded by timeout(1).
final class WellBehavedClient: @unchecked Sendable {
    let server: ServerProcess
    let name: String
    let maxSize: Int
    private let lock = NSLock()
    private var stopping = false
    private var finished = false
    private(set) var rounds = 0
    private(set) var failures: [String] = []

    init(server: ServerProcess, name: String, maxSize: Int = 48 << 10) {
        self.server = server
        self.name = name
        self.maxSize = maxSize
    }

    func start() {
        let thread = Thread { [self] in
            loop()
            lock.withLock { finished = true }
        }
        thread.start()
    }

    private var shouldStop: Bool { lock.withLock { stopping } }

    private func loop() {
        var round = 0
        let dir = NSTemporaryDirectory() + "daxshare-good-\(name)-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        while !shouldStop {
            round += 1
            let size = [0, 1, 4096, 4097, 12_345, maxSize][round % 6]
            let bytes = seededBytes(size, seed: UInt64(round) &* 0x1000193 &+ 7)
            let local = dir + "/in-\(round)", back = dir + "/out-\(round)"
            FileManager.default.createFile(atPath: local, contents: Data(bytes))
            let url = (try? server.url) ?? "?"
            let remote = url + "/\(name)-\(round % 4).bin"
            var failure: String?
            let put = cli(["put", "--secret-file", server.secretFile, local, remote])
            if put.status != 0 {
                failure = "put #\(round) (\(size) B): status \(put.status): \(put.err)"
            } else {
                let get = cli(["get", "--secret-file", server.secretFile, remote, back])
                let got = (try? Data(contentsOf: URL(fileURLWithPath: back))).map(Array.init) ?? []
                if get.status != 0 {
                    failure = "get #\(round): status \(get.status): \(get.err)"
                } else if sha256Hex(got) != sha256Hex(bytes) {
                    failure = "get #\(round): \(got.count) bytes with digest \(sha256Hex(got)), expected \(bytes.count) with \(sha256Hex(bytes))"
                }
            }
            try? FileManager.default.removeItem(atPath: local)
            try? FileManager.default.removeItem(atPath: back)
            lock.withLock {
                rounds += 1
                if let failure { failures.append(failure) }
            }
        }
    }

    private func cli(_ args: [String]) -> (status: Int32, out: String, err: String) {
        (try? run("/usr/bin/timeout", ["--signal=KILL", "120", CLITests.cli] + args)) ?? (-1, "", "could not run the CLI")
    }

    /// Stops after the round in flight, waiting until at least `minimumRounds` ran; returns rounds and failures.
    func stop(minimumRounds: Int = 1) async -> (rounds: Int, failures: [String]) {
        _ = await eventually(300) { self.lock.withLock { self.rounds >= minimumRounds } }
        lock.withLock { stopping = true }
        _ = await eventually(300) { self.lock.withLock { self.finished } }
        return lock.withLock { (rounds, failures) }
    }
}

// MARK: - A probe session: any bytes, then a liveness check

/// What became of one message sent by a probe session.
enum ProbeOutcome: Sendable, Equatable {
    /// The server answered (with this status) and the connection lives.
    case answered(Status)
    /// No answer, the connection lives (the message needed none, e.g. a callback reply).
    case silent
    /// The server closed the connection (after `answer`, if it sent one first).
    case closed(answer: Status?)
    /// Neither an answer nor a close, nor an answer to the liveness ECHO after it.
    case hung
}

/// A bare client over a real MessageChannel: authenticates like a client, then sends bytes
/// as they are (valid framing, any content) and tells what the server did with them. Each
/// probe is followed by an ECHO with a fresh id and token: its answer proves the connection
/// lives and that everything before it was answered.
final class ProbeSession: @unchecked Sendable {
    enum Event: Sendable {
        case message(Message)
        case undecodable(Int, String)
        case closed(String)
    }

    let channel: MessageChannel
    private let lock = NSLock()
    private var queue: [Event] = []
    private var waiter: CheckedContinuation<Void, Never>?
    private var isEnded = false
    private var nextId: UInt64 = 1
    private(set) var sessionId: UInt64 = 0
    /// Liveness ECHOs use ids from here up, so a probe's own id never collides.
    private var echoId: UInt64 = 1 << 48
    /// Callback messages (recalls) seen and left unanswered.
    private(set) var callbacks = 0

    init(host: String, port: UInt16, config: TransportConfig = .init()) async throws {
        channel = try await MessageChannel.connect(host: host, port: port, config: config)
        Task { [channel, self] in
            do {
                for try await bytes in channel.messages {
                    do {
                        let m = try Message.decode(bytes)
                        if case .callback = m.body { lock.withLock { callbacks += 1 }; continue }
                        push(.message(m))
                    } catch {
                        push(.undecodable(bytes.count, "\(error)"))
                    }
                }
                push(.closed("channel ended"))
            } catch {
                push(.closed("\(error)"))
            }
        }
    }

    private func push(_ e: Event) {
        let w: CheckedContinuation<Void, Never>? = lock.withLock {
            if case .closed = e { isEnded = true }
            queue.append(e)
            defer { waiter = nil }
            return waiter
        }
        w?.resume()
    }

    /// The next event, or nil after `timeout` seconds.
    func next(timeout: Double) async -> Event? {
        let end = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            if let e: Event = lock.withLock({ queue.isEmpty ? nil : queue.removeFirst() }) { return e }
            if ContinuousClock.now >= end { return nil }
            // Wake on a push or every 50 ms, whichever comes first.
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = lock.withLock { () -> Bool in
                    if !queue.isEmpty { return true }
                    waiter = c
                    return false
                }
                if resumeNow { c.resume(); return }
                Task {
                    try? await Task.sleep(for: .milliseconds(50))
                    let w: CheckedContinuation<Void, Never>? = lock.withLock { defer { waiter = nil }; return waiter }
                    w?.resume()
                }
            }
        }
    }

    var ended: Bool { lock.withLock { isEnded } }

    func freshId() -> UInt64 { lock.withLock { defer { nextId += 1 }; return nextId } }

    /// Sends a well-formed request and returns the message that answers it.
    func call(_ r: Request, sessionId sid: UInt64? = nil, timeout: Double = 30) async throws -> Message {
        let id = freshId()
        try await channel.send(try Message.request(r, messageId: id, sessionId: sid ?? sessionId).encode())
        while true {
            guard let e = await next(timeout: timeout) else { throw DeadlineExceeded(what: "the answer to \(r.command)", seconds: timeout) }
            switch e {
            case let .message(m) where m.messageId == id: return m
            case .message: continue
            case let .undecodable(n, why): throw TestbedError.missing("a decodable answer (\(n) bytes: \(why))")
            case let .closed(why): throw TestbedError.missing("the connection (closed: \(why))")
            }
        }
    }

    /// NEGOTIATE and SESSION_SETUP with `secret`; with `tree`, TREE_CONNECT too. Returns the tree id.
    @discardableResult
    func authenticate(secret: [UInt8], tree: String?) async throws -> UInt32 {
        _ = try await call(.negotiate(NegotiateRequest(capabilities: [.layouts, .callbacks], clientId: Array(repeating: 9, count: 16))))
        let confirmed = try await sessionSetup(secret: secret)
        guard case .response(.sessionSetup(.confirmed)) = confirmed.body else {
            if confirmed.status != .ok { throw StatusError(status: confirmed.status) }
            throw TestbedError.missing("a session confirmation, got \(confirmed.body)")
        }
        guard let tree else { return 0 }
        let t = try await call(.treeConnect(TreeConnectRequest(exportName: tree)))
        guard case let .response(.treeConnect(r)) = t.body else { throw StatusError(status: t.status) }
        return r.treeId
    }

    /// SESSION_SETUP's two rounds with `secret`: the message that ended it, the confirmation
    /// or the refusal of either round.
    func sessionSetup(secret: [UInt8], identity: String = "prober") async throws -> Message {
        let clientNonce = (0..<32).map { _ in UInt8.random(in: 0...255) }
        let challenge = try await call(.sessionSetup(.begin(identity: identity, clientNonce: clientNonce)))
        guard case let .response(.sessionSetup(.challenge(serverNonce))) = challenge.body else { return challenge }
        sessionId = challenge.sessionId
        let proof = HMAC<SHA256>.authenticationCode(
            for: SessionAuth.clientProofInput(sessionId: sessionId, serverNonce: serverNonce, clientNonce: clientNonce, identity: identity),
            using: SymmetricKey(data: secret))
        return try await call(.sessionSetup(.proof(clientProof: Array(proof))))
    }

    /// The successful response to `r`, or its status thrown.
    func request(_ r: Request) async throws -> Response {
        let m = try await call(r)
        guard case let .response(response) = m.body else { throw StatusError(status: m.status) }
        return response
    }

    /// The server's counters (SERVER_STATS) by name.
    func counters() async throws -> [String: UInt64] {
        guard case let .serverStats(st) = try await request(.serverStats) else { throw TestbedError.missing("stats") }
        return Dictionary(uniqueKeysWithValues: st.counters.map { ($0.name, $0.value) })
    }

    /// Sends `bytes` as one upper-layer message, then the liveness ECHO, and reports. With
    /// `settle`, the ECHO goes only after the answer, the close, or `settle` seconds of
    /// silence; without, right behind the probe (two messages in flight at once).
    func probe(_ bytes: [UInt8], timeout: Double = 20, settle: Double? = 3) async -> ProbeOutcome {
        if ended { return .closed(answer: nil) }
        do { try await channel.send(bytes) } catch { return .closed(answer: nil) }
        var answer: Status?
        if let settle, let first = await next(timeout: settle) {
            switch first {
            case let .message(m): answer = m.status
            case .undecodable: answer = .internalError
            case .closed: return .closed(answer: nil)
            }
            // BAD_MESSAGE announces the close (§3.8): wait for it too.
            if answer == .badMessage || answer == .authFailed, let second = await next(timeout: settle) {
                if case .closed = second { return .closed(answer: answer) }
                lock.withLock { queue.insert(second, at: 0) }
            }
        }
        let id: UInt64 = lock.withLock { defer { echoId += 1 }; return echoId }
        let token = (0..<8).map { _ in UInt8.random(in: 0...255) }
        let echo = try? Message.request(.echo(EchoMessage(data: token)), messageId: id, sessionId: sessionId).encode()
        var echoSent = false
        if let echo {
            do { try await channel.send(echo); echoSent = true } catch {}
        }
        while true {
            guard let e = await next(timeout: timeout) else { return echoSent ? .hung : .closed(answer: answer) }
            switch e {
            case let .message(m):
                if m.messageId == id, case let .response(.echo(back)) = m.body, back.data == token {
                    return answer.map { .answered($0) } ?? .silent
                }
                if m.messageId == id && m.command == .echo {  // e.g. NOT_AUTHENTICATED before SESSION_SETUP
                    return answer.map { .answered($0) } ?? .silent
                }
                if answer == nil { answer = m.status }
            case .undecodable:
                if answer == nil { answer = .internalError }
            case .closed:
                return .closed(answer: answer)
            }
        }
    }

    func close() { channel.close() }
}

// MARK: - A bare transport: breaks credit and size rules on purpose

/// A client transport over a real rdma_cm connection with nothing enforced: it negotiates
/// (or sends any first message), then sends whatever SEND payloads a test gives it, grants
/// the credits the test says, and reposts receives only when told. A client that stops
/// reposting is one that stalls.
final class BareTransport: @unchecked Sendable {
    let connection: Connection
    let receiveSize: Int
    let posted: Int
    private let receives: RegisteredBuffer
    private let sendBuffer: RegisteredBuffer
    private(set) var negotiated: TransportNegotiateResponse?
    /// Credits the server granted us, as we count them.
    private(set) var sendCredits = 0
    private(set) var receivedMessages = 0

    /// Connects with `privateData` (a daxshare CONNECT by default) and `posted` receives.
    init(host: String, port: UInt16, posted: Int = 8, receiveSize: Int = 8192,
         privateData: [UInt8]? = nil) async throws {
        self.posted = posted
        self.receiveSize = receiveSize
        var buffers: RegisteredBuffer?
        var options = ConnectionOptions()
        options.receiveQueueDepth = posted + 1
        options.sendQueueDepth = 16
        let hello = try privateData ?? ConnectPrivateData(kind: .connect).encode()
        connection = try await Connection.connect(host: host, port: port, privateData: hello, options: options) { c in
            let b = try RegisteredBuffer(domain: c.domain, length: posted * receiveSize, access: [.localWrite])
            for slot in 0..<posted {
                try c.postReceive(id: UInt64(slot), b.region.segment(offset: slot * receiveSize, length: receiveSize))
            }
            buffers = b
        }
        receives = buffers!
        sendBuffer = try RegisteredBuffer(domain: connection.domain, length: 1 << 21, access: [.localWrite])
    }

    /// The transport negotiate exchange; returns the server's answer.
    @discardableResult
    func negotiate(creditsRequested: UInt16 = 64) async throws -> TransportNegotiateResponse {
        let request = TransportNegotiateRequest(
            creditsRequested: creditsRequested, preferredSendSize: 8192, maxReceiveSize: UInt32(receiveSize),
            maxFragmentedSize: 1 << 20)
        try await sendRaw(try request.encode())
        guard let m = try await receive(timeout: 10), case let .negotiateResponse(r) = m else {
            throw TestbedError.missing("a transport negotiate response")
        }
        negotiated = r
        sendCredits = Int(r.creditsGranted)
        return r
    }

    /// One SEND of exactly these bytes.
    func sendRaw(_ bytes: [UInt8]) async throws {
        sendBuffer.bytes.copyBytes(from: bytes)
        try await connection.send([sendBuffer.region.segment(length: bytes.count)])
    }

    /// A data transfer message carrying `payload`, granting `grant` credits (we count our own credit down).
    func sendData(_ payload: [UInt8], grant: UInt16, requested: UInt16 = 64, remaining: UInt32 = 0,
                  flags: DataTransferFlags = []) async throws {
        let m = DataTransferMessage(flags: flags, creditsRequested: requested, creditsGranted: grant,
                                    remainingDataLength: remaining, payload: payload)
        try await sendRaw(try m.encode())
        sendCredits -= 1
    }

    /// An upper-layer request in one data transfer message.
    func sendRequest(_ r: Request, messageId: UInt64, sessionId: UInt64, grant: UInt16) async throws {
        try await sendData(try Message.request(r, messageId: messageId, sessionId: sessionId).encode(), grant: grant)
    }

    /// The next received transport message (its receive is NOT reposted unless `repost`), or
    /// nil after `timeout` or when the connection ends.
    func receive(timeout: Double, repost: Bool = false) async throws -> TransportMessage? {
        let wc = await Self.next(on: connection, timeout: timeout)
        guard let wc else { return nil }
        if wc.error != nil { return nil }
        receivedMessages += 1
        let start = Int(wc.id) * receiveSize
        let slice = UnsafeRawBufferPointer(rebasing: receives.bytes[start..<(start + wc.byteCount)])
        let m = try TransportMessage.decode(slice)
        if case let .dataTransfer(d) = m { sendCredits += Int(d.header.creditsGranted) }
        if repost { try connection.postReceive(id: wc.id, receives.region.segment(offset: start, length: receiveSize)) }
        return m
    }

    /// The next upper-layer message (unfragmented), skipping empty credit grants.
    func receiveMessage(timeout: Double, repost: Bool = false) async throws -> Message? {
        let end = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < end {
            let left = Double((end - ContinuousClock.now).components.seconds) + 0.5
            guard let t = try await receive(timeout: left, repost: repost) else { return nil }
            if case let .dataTransfer(d) = t, !d.payload.isEmpty { return try Message.decode(d.payload) }
        }
        return nil
    }

    private static func next(on connection: Connection, timeout: Double) async -> WorkCompletion? {
        // A timer disconnect would end the connection: race with a deadline instead, whose
        // cancellation leaves what was not taken queued.
        let result = try? await withDeadline(timeout, "a receive") { await connection.nextReceive() }
        return result ?? nil
    }

    /// Whether the server ended the connection within `seconds`.
    func disconnected(within seconds: Double) async -> Bool {
        let c = connection
        return (try? await withDeadline(seconds, "the disconnect") { await c.waitUntilDisconnected(); return true }) ?? false
    }

    func close() { connection.close() }
}

// MARK: - Protocol vectors

/// One valid vector of Protocol/vectors: its bytes and annotated fields (format:
/// Protocol/vectors/README.md, parsed as Tests/DaxshareWireTests/TestSupport.swift does).
struct WireVector: Sendable {
    struct Field: Sendable {
        var offset: Int
        var length: Int
        var note: String
    }
    var name: String
    var codec: String
    var bytes: [UInt8]
    var fields: [Field]

    func field(_ prefix: String) -> [Field] { fields.filter { $0.note.hasPrefix(prefix) } }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Protocol/vectors")

    static func load(_ dir: URL = directory) -> [WireVector] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".vec") }.sorted()
        return names.compactMap { name in
            guard let text = try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8) else { return nil }
            var v = WireVector(name: String(name.dropLast(4)), codec: "", bytes: [], fields: [])
            for line in text.split(separator: "\n") {
                if line.hasPrefix("#") || line.hasPrefix("error:") { continue }
                if line.hasPrefix("codec:") { v.codec = line.dropFirst(6).trimmingCharacters(in: .whitespaces); continue }
                let parts = line.split(separator: "|", maxSplits: 1)
                let hex = parts[0].split(separator: " ").compactMap { UInt8($0, radix: 16) }
                if parts.count == 2 {
                    v.fields.append(Field(offset: v.bytes.count, length: hex.count, note: parts[1].trimmingCharacters(in: .whitespaces)))
                } else if var last = v.fields.popLast() {
                    last.length += hex.count
                    v.fields.append(last)
                }
                v.bytes += hex
            }
            return v
        }
    }

    /// Writes `value` little-endian into every field whose note starts with `prefix`.
    mutating func patch(_ prefix: String, _ value: UInt64) {
        for f in field(prefix) where f.length <= 8 {
            for i in 0..<f.length { bytes[f.offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
    }
}

/// Seeded mutations of a vector's bytes: bit flips, byte stores, field values that sit on
/// edges, truncation, trailing bytes, wrong lengths, unknown commands, spliced fields.
struct Mutator: Sendable {
    var rng: SeededGenerator

    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    mutating func int(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }

    /// Edge values for a field of `length` bytes, around `original`. Sizes that would make
    /// the server allocate gigabytes of pmem are left out on purpose (see the bad-input suite).
    mutating func edge(original: UInt64, length: Int) -> UInt64 {
        let top: UInt64 = length >= 8 ? .max : (UInt64(1) << (8 * UInt64(length))) - 1
        let candidates: [UInt64] = [0, 1, 2, 7, 8, 255, 256, 4095, 4096, 4097, 65535, 65536, 1 << 20,
                                    original &+ 1, original &- 1, original &* 2, original >> 1, top, top >> 1, top &- 1,
                                    1 << 44, 1 << 62, 1 << 63, UInt64(Int.max), rng.next() & 0xFFFF]
        return candidates[int(candidates.count)] & top
    }

    /// One mutation of `v`; `describe` says what it was.
    mutating func mutate(_ v: WireVector) -> (bytes: [UInt8], describe: String) {
        var b = v.bytes
        switch int(9) {
        case 0 where !b.isEmpty:
            let bit = int(b.count * 8)
            b[bit / 8] ^= 1 << UInt8(bit % 8)
            return (b, "bit \(bit) flipped")
        case 1 where !b.isEmpty:
            let i = int(b.count)
            b[i] = UInt8(truncatingIfNeeded: rng.next())
            return (b, "byte \(i) = \(b[i])")
        case 2, 3:
            guard !v.fields.isEmpty else { fallthrough }
            let f = v.fields[int(v.fields.count)]
            let n = min(f.length, 8)
            var original: UInt64 = 0
            for i in 0..<n { original |= UInt64(b[f.offset + i]) << (8 * UInt64(i)) }
            let value = edge(original: original, length: n)
            for i in 0..<n { b[f.offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            return (b, "field '\(f.note)' = \(value)")
        case 4 where b.count > 1:
            let n = int(b.count)
            return (Array(b.prefix(n)), "truncated to \(n) bytes")
        case 5:
            let n = 1 + int(64)
            return (b + (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, "\(n) bytes appended")
        case 6 where v.codec == "message" && b.count >= 40:
            let len = UInt32(truncatingIfNeeded: [UInt64(b.count - 40) + 1, UInt64(b.count - 40) &- 1, 0, 1 << 24, rng.next()][int(5)])
            for i in 0..<4 { b[32 + i] = UInt8(truncatingIfNeeded: len >> (8 * UInt32(i))) }
            return (b, "bodyLength = \(len)")
        case 7 where v.codec == "message" && b.count >= 40:
            let command = UInt16(truncatingIfNeeded: rng.next())
            b[6] = UInt8(command & 0xFF)
            b[7] = UInt8(command >> 8)
            return (b, "command = 0x\(String(command, radix: 16))")
        default:
            // Splice: a field's bytes repeated (a length that no longer matches what follows).
            guard let f = v.fields.isEmpty ? nil : v.fields[int(v.fields.count)] else { return (b + [0], "1 byte appended") }
            b.insert(contentsOf: b[f.offset..<(f.offset + f.length)], at: f.offset)
            return (b, "field '\(f.note)' doubled")
        }
    }
}

/// Server log lines that give a reason for ending a connection.
func closeReasons(in log: String) -> [Substring] {
    log.split(separator: "\n").filter {
        $0.contains("connection closed:") || $0.contains("closing connection from") || $0.contains("failed to set up")
    }
}

/// Runs blocking work (a process to wait for, a SIGTERM and its wait) on its own thread, so
/// it never holds one of the two cooperative threads the rest of the test needs.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
        Thread { c.resume(returning: body()) }.start()
    }
}

/// Opens `path` O_RDWR from another process, as any local program would (bounded by
/// timeout(1) at `limit` seconds); returns whether it opened and how long it took.
func localOpen(_ path: String, limit: Int = 90) async -> (opened: Bool, took: Duration) {
    await onThread {
        let started = ContinuousClock.now
        let r = try? run("/usr/bin/timeout", ["--signal=KILL", "\(limit)", "/bin/sh", "-c", "exec 3<>\"$0\" && echo opened", path])
        return (r?.status == 0 && r?.out.contains("opened") == true, ContinuousClock.now - started)
    }
}

/// The server's counters through a session of its own.
func serverCounters(_ server: ServerProcess) async throws -> [String: UInt64] {
    let s = try await ProbeSession(host: try Testbed.address, port: server.port)
    defer { s.close() }
    try await s.authenticate(secret: try server.secret, tree: nil)
    return try await s.counters()
}

/// SIGTERM, then at most `seconds` for the server to exit, then SIGKILL. Returns how it
/// ended: "exit 0" is a clean stop; "signal N" a crash; "hung" when it would not stop.
func stopBounded(_ server: ServerProcess, _ seconds: Double = 60) -> String {
    let p = server.process
    if p.isRunning {
        print("reliability-trace: daxshared on port \(server.port) before SIGTERM: \(memoryFigures(pid: p.processIdentifier))")
        p.terminate()
        let end = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < end { usleep(50_000) }
        if p.isRunning {
            print("reliability: daxshared on port \(server.port) did not stop within \(seconds) s of SIGTERM; log tail:\n\(server.log.suffix(8000))")
            server.kill9()
            return "hung"
        }
    }
    p.waitUntilExit()
    return p.terminationReason == .exit ? "exit \(p.terminationStatus)" : "signal \(p.terminationStatus)"
}

/// VmRSS, VmPin and VmLck of a process and the machine's MemAvailable (for leak hunting).
func memoryFigures(pid: Int32) -> String {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
    let pick = { (text: String, key: String) -> String in
        text.split(separator: "\n").first { $0.hasPrefix(key + ":") }.map { $0.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces) } ?? "?"
    }
    return "VmRSS \(pick(status, "VmRSS")), VmPin \(pick(status, "VmPin")), VmLck \(pick(status, "VmLck")); MemAvailable \(pick(meminfo, "MemAvailable"))"
}
