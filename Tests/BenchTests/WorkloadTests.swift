import DaxshareBench
import Testing

@Suite("Offset sequences")
struct WorkloadTests {
    @Test func sequentialSlotsWalkTheSpanInOrder() {
        // 4 blocks, depth 2: slot 0 takes 0, 2, 0, ...; slot 1 takes 1, 3, 1, ...
        var s0 = OffsetSequence(pattern: .seq, blockSize: 4096, span: 16384, slot: 0, depth: 2)
        var s1 = OffsetSequence(pattern: .seq, blockSize: 4096, span: 16384, slot: 1, depth: 2)
        #expect((0..<3).map { _ in s0.next() } == [0, 8192, 0])
        #expect((0..<3).map { _ in s1.next() } == [4096, 12288, 4096])
    }

    @Test func randomOffsetsAreAlignedInsideTheSpanAndRepeatable() {
        var a = OffsetSequence(pattern: .rand, blockSize: 65536, span: 32 << 20, slot: 3, depth: 4, seed: 7)
        var b = OffsetSequence(pattern: .rand, blockSize: 65536, span: 32 << 20, slot: 3, depth: 4, seed: 7)
        var other = OffsetSequence(pattern: .rand, blockSize: 65536, span: 32 << 20, slot: 2, depth: 4, seed: 7)
        let xs = (0..<200).map { _ in a.next() }
        #expect(xs == (0..<200).map { _ in b.next() })
        #expect(xs != (0..<200).map { _ in other.next() })
        #expect(xs.allSatisfy { $0 % 65536 == 0 && $0 < 32 << 20 })
        #expect(Set(xs).count > 100)  // 512 blocks: a uniform draw of 200 repeats few
    }

    @Test func aSpanSmallerThanABlockStillHasOneBlock() {
        var s = OffsetSequence(pattern: .seq, blockSize: 1 << 20, span: 4096, slot: 0, depth: 1)
        #expect(s.blocks == 1)
        #expect(s.next() == 0)
        #expect(s.next() == 0)
    }
}
