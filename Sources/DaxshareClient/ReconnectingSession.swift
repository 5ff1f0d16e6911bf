import Synchronization

/// When a `ReconnectingSession` tries again, and for how long.
public struct ReconnectPolicy: Sendable {
    /// How long after the connection broke to keep trying before giving up with the last error.
    public var giveUpAfter: Duration = .seconds(120)
    /// The first pause between attempts; it doubles up to `maxDelay`.
    public var initialDelay: Duration = .milliseconds(100)
    public var maxDelay: Duration = .seconds(2)

    public init() {}
}

/// A session that outlives its connection: when an operation fails because the connection
/// broke (the link went down, the server restarted, a keepalive went unanswered), it connects
/// again (transport negotiate, NEGOTIATE, SESSION_SETUP with the same secret, TREE_CONNECT)
/// and runs the operation again on the new session.
///
/// Open files and layouts belong to a session and die with it, as on the server: the operation
/// passed to `run` opens what it uses, so on a new session it opens its files again, and the
/// layout engine takes layouts anew as the I/O needs them. Only what was acknowledged durable
/// (a LAYOUTCOMMIT or FLUSH reply, a write-through WRITE) survives a broken session, so an
/// operation must be safe to run again: writes at fixed offsets and reads are.
///
/// Attempts wait while the local port is down (`VerbsError.portDown`), back off on refusals and
/// unreachable servers, and stop at once on an authentication or protocol failure: a wrong
/// secret does not get better by repeating it.
public final class ReconnectingSession: Sendable {
    public let policy: ReconnectPolicy
    private let connector: @Sendable () async throws(ClientError) -> ClientSession
    private let state = Mutex<(session: ClientSession?, reconnects: Int, closed: Bool)>((nil, 0, false))
    private let connectGate = AsyncSemaphore(permits: 1)

    /// `connect` makes one session (e.g. `ClientSession.connect(host:...)`); it is called for the
    /// first connection and for each reconnection.
    public init(policy: ReconnectPolicy = .init(),
                connect: @escaping @Sendable () async throws(ClientError) -> ClientSession) {
        self.policy = policy
        self.connector = connect
    }

    /// A session on `host:port`/`export`, reconnecting with the same secret and configuration.
    public convenience init(host: String, port: UInt16 = DaxshareURL.defaultPort, export: String, secret: SessionSecret,
                            config: ClientConfiguration = .init(), policy: ReconnectPolicy = .init()) {
        self.init(policy: policy) { () async throws(ClientError) -> ClientSession in
            try await ClientSession.connect(host: host, port: port, export: export, secret: secret, config: config)
        }
    }

    /// Sessions made after the first one.
    public var reconnects: Int { state.withLock { $0.reconnects } }

    /// The live session, connecting (with retries) if there is none or it broke.
    public func session() async throws(ClientError) -> ClientSession {
        if let s = state.withLock({ $0.session }), s.isConnected { return s }
        // One reconnection at a time: concurrent callers that saw the same broken session share it.
        await connectGate.acquire()
        defer { connectGate.release() }
        let (current, closed) = state.withLock { ($0.session, $0.closed) }
        if closed { throw .invalidArgument("the session was closed") }
        if let current, current.isConnected { return current }
        if let current { await current.close() }
        let fresh = try await connectWithRetries(first: current == nil)
        let keep = state.withLock { s -> Bool in
            if s.closed { return false }
            if current != nil { s.reconnects += 1 }
            s.session = fresh
            return true
        }
        if !keep {
            await fresh.close()
            throw .invalidArgument("the session was closed")
        }
        return fresh
    }

    /// Runs `body` on the live session; if it fails and the session's connection is gone, runs
    /// it again on a new one, until it succeeds, fails otherwise, or the policy gives up.
    public func run<T: Sendable>(_ body: (ClientSession) async throws(ClientError) -> T) async throws(ClientError) -> T {
        let started = ContinuousClock.now
        while true {
            let s = try await session()
            do throws(ClientError) {
                return try await body(s)
            } catch {
                // A transport failure (a work request that failed or was flushed) means the
                // connection is gone even before the session has noticed.
                if case .transport = error, s.isConnected {
                    s.dispatcher.shutdown(error, reason: "the connection failed: \(error)")
                }
                guard !s.isConnected, ContinuousClock.now - started < policy.giveUpAfter else { throw error }
            }
        }
    }

    /// Ends the session (LOGOFF and disconnect); `run` and `session` fail afterwards.
    public func close() async {
        let s = state.withLock { st -> ClientSession? in
            st.closed = true
            defer { st.session = nil }
            return st.session
        }
        await s?.close()
    }

    private func connectWithRetries(first: Bool) async throws(ClientError) -> ClientSession {
        let started = ContinuousClock.now
        var delay = policy.initialDelay
        while true {
            do throws(ClientError) {
                return try await connector()
            } catch {
                guard Self.isTransient(error), ContinuousClock.now - started < policy.giveUpAfter else { throw error }
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, policy.maxDelay)
        }
    }

    /// Failures that another attempt may not meet: the connection (unreachable, refused, port
    /// down, broken mid-setup) and the server's "not now" answers.
    static func isTransient(_ error: ClientError) -> Bool {
        switch error {
        case .transport: true
        case let .status(status, _, _): status == .tooMany || status == .tryLater
        default: false
        }
    }
}
