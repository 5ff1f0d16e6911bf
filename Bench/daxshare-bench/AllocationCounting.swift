import DaxshareBench
import Glibc
import MallocInterposerSwift

/// Heap allocations counted by ordo-one's malloc interposer, when `make bench` preloads it
/// (`LD_PRELOAD=libMallocInterposerSwift.so`); without it nothing is counted and rows say "-".
struct InterposerAllocationCounter: AllocationCounter {
    /// A counter if the interposer is preloaded, else nil.
    static func ifLoaded() -> InterposerAllocationCounter? {
        guard let preload = getenv("LD_PRELOAD").map({ String(cString: $0) }),
              preload.contains("libMallocInterposerSwift") else { return nil }
        MallocInterposerSwift.initialize()
        return InterposerAllocationCounter()
    }

    func start() {
        MallocInterposerSwift.reset()
        MallocInterposerSwift.hook()
    }

    func stop() -> UInt64? {
        MallocInterposerSwift.unhook()
        return UInt64(max(0, MallocInterposerSwift.getStatistics().mallocCount))
    }
}
