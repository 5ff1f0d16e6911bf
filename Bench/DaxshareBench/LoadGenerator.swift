#if canImport(Glibc)
import Glibc
#endif

/// One client as the load generator sees it: something that performs one I/O of `length`
/// bytes at `offset`, through the slot's own buffer. A mode supplies one per client.
public protocol IOTarget: Sendable {
    func perform(_ op: BenchOp, offset: UInt64, length: Int, slot: Int) async throws
}

/// What one run of the load generator does.
public struct LoadSpec: Sendable, Equatable {
    public var op: BenchOp
    public var pattern: AccessPattern
    public var size: Int
    /// I/Os each client keeps in flight.
    public var qd: Int
    /// Bytes of the target each client's offsets fall in.
    public var span: Int
    /// Seconds run but not measured first (ODP faults, layouts, caches).
    public var warmup: Double
    /// Seconds measured.
    public var duration: Double
    public var seed: UInt64

    public init(op: BenchOp, pattern: AccessPattern, size: Int, qd: Int, span: Int, warmup: Double, duration: Double, seed: UInt64 = 1) {
        self.op = op
        self.pattern = pattern
        self.size = size
        self.qd = qd
        self.span = span
        self.warmup = warmup
        self.duration = duration
        self.seed = seed
    }
}

/// Counts the process's heap allocations (the benchmark's is ordo-one's malloc interposer,
/// preloaded): `start` at the end of the warm-up, `stop` after the last I/O.
public protocol AllocationCounter: Sendable {
    func start()
    /// Allocations since `start`; nil when nothing is counting (the interposer is not loaded).
    func stop() -> UInt64?
}

/// What the generator saw.
public struct LoadResult: Sendable {
    /// I/Os and bytes completed inside the measured window, and its length (from the end of
    /// the warm-up to the last completion).
    public var ops: UInt64 = 0
    public var bytes: UInt64 = 0
    public var seconds: Double = 0
    public var latency = LatencyRecorder()
    /// Everything, warm-up included, and the whole run's length: for the server's CPU per byte.
    public var allBytes: UInt64 = 0
    public var allSeconds: Double = 0
    /// Heap allocations from the end of the warm-up to the last completion, if counted.
    public var allocations: UInt64?

    public init() {}

    public var measurement: BenchMeasurement {
        var m = BenchMeasurement(bytes: bytes, ops: ops, seconds: seconds, latency: latency.summary)
        if let allocations, ops > 0 { m.allocationsPerIO = Double(allocations) / Double(ops) }
        return m
    }
}

/// Drives `qd` I/Os in flight per client against every target for warm-up + duration, timing
/// each I/O into an HdrHistogram. I/Os completing after the warm-up are measured; no new I/O
/// starts after the end, and the window closes at the last completion.
public enum LoadGenerator {
    /// With an `executor` (the targets' event loop) every I/O task runs on it, so a completion
    /// resumes its task on the thread that polled it.
    /// With `allocations`, the heap allocations of the measured window are counted (steady
    /// state: after the warm-up's first layouts and registrations).
    public static func run(targets: [any IOTarget], spec: LoadSpec, executor: (any TaskExecutor)? = nil,
                           allocations: (any AllocationCounter)? = nil) async throws -> LoadResult {
        precondition(spec.qd >= 1 && spec.size > 0)
        let start = monotonicNanoseconds()
        let measureFrom = start + UInt64(max(0, spec.warmup) * 1e9)
        let end = measureFrom + UInt64(max(0, spec.duration) * 1e9)
        let counting = allocations.map { counter in
            Task {
                try? await Task.sleep(for: .nanoseconds(Int64(measureFrom - min(measureFrom, monotonicNanoseconds()))))
                counter.start()
            }
        }
        let partials = try await withThrowingTaskGroup(of: (LoadResult, UInt64).self) { group in
            for (c, target) in targets.enumerated() {
                for slot in 0..<spec.qd {
                    group.addTask(executorPreference: executor) {
                        var offsets = OffsetSequence(pattern: spec.pattern, blockSize: spec.size, span: spec.span, slot: slot,
                                                     depth: spec.qd, seed: spec.seed &+ UInt64(c) &* 1_000_003)
                        var r = LoadResult()
                        var last = start
                        while monotonicNanoseconds() < end {
                            let t0 = monotonicNanoseconds()
                            try await target.perform(spec.op, offset: offsets.next(), length: spec.size, slot: slot)
                            let t1 = monotonicNanoseconds()
                            r.allBytes += UInt64(spec.size)
                            if t1 >= measureFrom {
                                r.ops += 1
                                r.bytes += UInt64(spec.size)
                                r.latency.record(nanoseconds: t1 - t0)
                            }
                            last = t1
                        }
                        return (r, last)
                    }
                }
            }
            var all: [(LoadResult, UInt64)] = []
            for try await p in group { all.append(p) }
            return all
        }
        var total = LoadResult()
        if let counting, let allocations {
            await counting.value
            total.allocations = allocations.stop()
        }
        var lastCompletion = measureFrom
        for (p, last) in partials {
            total.ops += p.ops
            total.bytes += p.bytes
            total.allBytes += p.allBytes
            total.latency.merge(p.latency)
            lastCompletion = max(lastCompletion, last)
        }
        total.seconds = Double(lastCompletion - measureFrom) / 1e9
        total.allSeconds = Double(max(lastCompletion, start) - start) / 1e9
        return total
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
