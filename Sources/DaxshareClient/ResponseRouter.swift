import DaxshareWire
import Synchronization

/// Matches the server's responses to the requests waiting for them, by message id
/// (PROTOCOL.md §3.4: many requests may be outstanding and the server answers in any order).
///
/// Pure bookkeeping, no I/O, so it is unit-tested directly. The protocol of use:
///
/// 1. `allocate(command:)` takes the next message id and expects a response to it;
/// 2. the request is sent (on failure: `cancel(id)`);
/// 3. `wait(id)` suspends until `deliver` brings the response — it may already have arrived;
/// 4. `close(error)` fails every waiting and later request with the connection's error.
///
/// `deliver` returns a reason when a response matches nothing outstanding or answers a
/// different command: the protocol calls that a violation, and the caller disconnects.
final class ResponseRouter: Sendable {
    private enum Slot {
        case expecting(Command)
        case waiting(Command, CheckedContinuation<Result<Message, ClientError>, Never>)
        case arrived(Result<Message, ClientError>)
    }
    private struct State {
        var slots: [UInt64: Slot] = [:]
        var nextId: UInt64 = 1
        var closed: ClientError?
    }
    private let state = Mutex(State())

    /// The next message id (counting up from 1, as the protocol suggests), now expected.
    func allocate(command: Command) throws(ClientError) -> UInt64 {
        try state.withLock { s throws(ClientError) -> UInt64 in
            if let e = s.closed { throw e }
            let id = s.nextId
            s.nextId &+= 1
            if s.nextId == 0 { s.nextId = 1 }
            s.slots[id] = .expecting(command)
            return id
        }
    }

    /// Suspends until the response to `id` arrives or the router closes. Not cancellable:
    /// the server may still be writing into the request's buffers until it answers.
    func wait(_ id: UInt64) async -> Result<Message, ClientError> {
        await withCheckedContinuation { (k: CheckedContinuation<Result<Message, ClientError>, Never>) in
            let now = state.withLock { s -> Result<Message, ClientError>? in
                switch s.slots[id] {
                case let .arrived(result):
                    s.slots[id] = nil
                    return result
                case let .expecting(command):
                    s.slots[id] = .waiting(command, k)
                    return nil
                case .waiting:
                    return .failure(.protocol("internal: two waiters for message id \(id)"))
                case nil:
                    return .failure(s.closed ?? .protocol("internal: no request with message id \(id)"))
                }
            }
            if let now { k.resume(returning: now) }
        }
    }

    /// Forgets `id` (its request was never sent).
    func cancel(_ id: UInt64) {
        state.withLock { _ = $0.slots.removeValue(forKey: id) }
    }

    /// Hands a response (status OK or not) to its request. Returns nil when it matched, or
    /// why it is a protocol violation.
    func deliver(_ message: Message) -> String? {
        let id = message.messageId
        let outcome = state.withLock { s -> (String?, CheckedContinuation<Result<Message, ClientError>, Never>?) in
            if s.closed != nil { return (nil, nil) }
            switch s.slots[id] {
            case nil, .arrived:
                return ("a \(message.command) response with message id \(id), which matches no outstanding request", nil)
            case let .expecting(command):
                if command != message.command { return (Self.mismatch(message, command), nil) }
                s.slots[id] = .arrived(.success(message))
                return (nil, nil)
            case let .waiting(command, k):
                if command != message.command { return (Self.mismatch(message, command), nil) }
                s.slots[id] = nil
                return (nil, k)
            }
        }
        outcome.1?.resume(returning: .success(message))
        return outcome.0
    }

    /// Fails every outstanding and future request with `error`. The first reason wins.
    func close(_ error: ClientError) {
        let waiters = state.withLock { s -> [CheckedContinuation<Result<Message, ClientError>, Never>] in
            if s.closed != nil { return [] }
            s.closed = error
            var waiters: [CheckedContinuation<Result<Message, ClientError>, Never>] = []
            for (id, slot) in s.slots {
                switch slot {
                case .expecting: s.slots[id] = .arrived(.failure(error))
                case let .waiting(_, k):
                    waiters.append(k)
                    s.slots[id] = nil
                case .arrived: break
                }
            }
            return waiters
        }
        waiters.forEach { $0.resume(returning: .failure(error)) }
    }

    var closedError: ClientError? { state.withLock { $0.closed } }

    /// Requests sent and not yet answered (or answered and not yet collected).
    var outstanding: Int { state.withLock { $0.slots.count } }

    private static func mismatch(_ m: Message, _ expected: Command) -> String {
        "message id \(m.messageId) was a \(expected) request but the response is for \(m.command)"
    }
}
