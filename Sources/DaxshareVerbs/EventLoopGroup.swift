import Synchronization

/// A fixed set of event loops handed out round-robin, one per connection, as swift-nio's
/// `MultiThreadedEventLoopGroup` does: a connection's completions, and the tasks that prefer
/// its loop, stay on one thread while connections spread over as many threads as there are.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let next = Atomic<Int>(0)

    /// `count` loops (at least one) named `name-0`, `name-1`…
    public init(name: String, count: Int, waiting: EventLoop.Waiting = .blocking) {
        loops = (0..<max(1, count)).map { EventLoop(name: "\(name)-\($0)", waiting: waiting) }
    }

    /// The next loop in turn.
    public func nextLoop() -> EventLoop {
        loops[next.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }
}
