@testable import DaxshareServer
import Testing

/// Which part of a file's mapping a large two-sided READ registers (`MappedRegions.window`).
@Suite struct MappedRegionsTests {
    let mib = 1 << 20

    @Test func aWindowStartsAtAMultipleOfItsSizeAndStopsAtTheMappingsEnd() {
        #expect(MappedRegions.window(offset: 0, count: mib, mappedLength: 3 * mib, window: 64 * mib) == 0..<(3 * mib))
        #expect(MappedRegions.window(offset: 70 * mib + 5, count: mib, mappedLength: 200 * mib, window: 64 * mib)
            == (64 * mib)..<(128 * mib))
        #expect(MappedRegions.window(offset: 130 * mib, count: 4096, mappedLength: 131 * mib, window: 64 * mib)
            == (128 * mib)..<(131 * mib))
    }

    @Test func aReadCrossingWindowsGetsOneWindowHoldingAllOfIt() {
        let w = MappedRegions.window(offset: 63 * mib, count: 4 * mib, mappedLength: 200 * mib, window: 64 * mib)
        #expect(w == 0..<(67 * mib))
        #expect(w.contains(63 * mib) && w.upperBound >= 67 * mib)
    }

    /// The mapping may be shorter than the bytes asked for (the file grew since it was looked
    /// at): the window still holds them; on-demand paging faults them in when the NIC reads.
    @Test func theBytesAskedForAreAlwaysInside() {
        for offset in [0, 1, 4095, 64 * mib - 1, 64 * mib, 100 * mib + 17] {
            for count in [1, 65536, mib, 5 * mib] {
                let w = MappedRegions.window(offset: offset, count: count, mappedLength: offset + count / 2 + 1, window: 64 * mib)
                #expect(w.lowerBound <= offset && w.upperBound >= offset + count, "\(offset)+\(count): \(w)")
                #expect(w.lowerBound % (64 * mib) == 0)
            }
        }
    }
}
