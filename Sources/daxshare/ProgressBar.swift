import DaxshareClient
import Synchronization

/// A one-line progress bar on stderr for get and put, drawn only when stderr is a terminal
/// (so logs and pipes never get carriage returns), at most ten times a second:
///
///     big.bin  [##########----------]  52%  33.5 MiB / 64.0 MiB  212.4 MiB/s
final class ProgressBar: Sendable {
    private struct State {
        var lastDraw: ContinuousClock.Instant?
        var drawn = false
    }
    private let label: String
    private let start = ContinuousClock.now
    private let state = Mutex(State())

    /// Nil when the bar should not be shown.
    init?(label: String, enabled: Bool) {
        guard enabled, Console.stderrIsTerminal else { return nil }
        self.label = EntryFormat.displayName(label)
    }

    var callback: TransferProgress { { [self] done, total in update(done, total) } }

    func update(_ done: UInt64, _ total: UInt64?, force: Bool = false) {
        let now = ContinuousClock.now
        let draw = state.withLock { s -> Bool in
            if !force, let last = s.lastDraw, now - last < .milliseconds(100) { return false }
            s.lastDraw = now
            s.drawn = true
            return true
        }
        if draw { Console.writeStderr("\r" + Self.render(label: label, done: done, total: total, elapsed: now - start) + "\u{1B}[K") }
    }

    /// Draws the final state and ends the line.
    func finish(_ done: UInt64, _ total: UInt64?) {
        update(done, total, force: true)
        Console.writeStderr("\n")
    }

    /// Ends the line after a failure, leaving the last drawn state visible.
    func abandon() {
        if state.withLock({ $0.drawn }) { Console.writeStderr("\n") }
    }

    static func render(label: String, done: UInt64, total: UInt64?, elapsed: Duration) -> String {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? UInt64(Double(done) / seconds) : 0
        let width = 20
        guard let total, total > 0 else {
            return "\(label)  \(ByteCount.format(done))  \(ByteCount.format(rate))/s"
        }
        let fraction = min(1, Double(done) / Double(total))
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let percent = Int(fraction * 100)
        return "\(label)  [\(bar)] \(percent < 10 ? "  " : percent < 100 ? " " : "")\(percent)%  "
            + "\(ByteCount.format(done)) / \(ByteCount.format(total))  \(ByteCount.format(rate))/s"
    }
}
