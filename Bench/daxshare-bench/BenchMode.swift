import DaxshareBench

/// One way of moving bytes that the harness measures: a small pluggable piece.
///
/// `setUp` makes `clients` clients, each able to keep `qd` I/Os of up to `maxSize` bytes in
/// flight over its own `span` bytes of target; `targets` hands the first `clients` of them to the
/// load generator. A mode whose set-up fails is left out of the run (with the reason on stderr).
protocol BenchMode: AnyObject, Sendable {
    /// As it appears in the `mode` column.
    var name: String { get }
    /// The mode this one is judged against (see `Baselines.defaults`), nil for a baseline.
    var baseline: String? { get }
    func setUp(clients: Int, qd: Int, maxSize: Int, span: Int) async throws
    func targets(clients: Int) -> [any IOTarget]
    /// The server's CPU seconds so far (user + system), for modes with a server process.
    func serverCPUSeconds() -> Double?
    /// Runs after each measured repeat, inside the measured time: what makes the writes durable
    /// (LAYOUTCOMMIT for one-sided, FLUSH for two-sided). Returns a note for the row, if any.
    func finishRepeat(op: BenchOp, clients: Int) async throws -> String?
    func tearDown() async
}

extension BenchMode {
    var baseline: String? { Baselines.defaults[name] }
    func serverCPUSeconds() -> Double? { nil }
    func finishRepeat(op: BenchOp, clients: Int) async throws -> String? { nil }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
