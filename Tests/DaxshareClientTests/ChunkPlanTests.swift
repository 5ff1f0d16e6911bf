import DaxshareClient
import Testing

@Suite("Chunking")
struct ChunkPlanTests {
    @Test func splitsByTheLimitInOrder() throws {
        let chunks = try ChunkPlan.split(offset: 100, length: 2500, maxChunk: 1000)
        #expect(chunks == [
            Chunk(fileOffset: 100, bufferOffset: 0, length: 1000),
            Chunk(fileOffset: 1100, bufferOffset: 1000, length: 1000),
            Chunk(fileOffset: 2100, bufferOffset: 2000, length: 500),
        ])
    }

    @Test func exactMultiplesAndEmpty() throws {
        #expect(try ChunkPlan.split(offset: 0, length: 4096, maxChunk: 1024).map(\.length) == [1024, 1024, 1024, 1024])
        #expect(try ChunkPlan.split(offset: 7, length: 0, maxChunk: 1024).isEmpty)
        #expect(try ChunkPlan.split(offset: 0, length: 1, maxChunk: 1 << 20) == [Chunk(fileOffset: 0, bufferOffset: 0, length: 1)])
    }

    @Test func chunksTileTheRange() throws {
        for (length, max) in [(1, 1), (10, 3), (1 << 20, 65536), (1_000_003, 4096)] {
            let chunks = try ChunkPlan.split(offset: 12345, length: length, maxChunk: max)
            #expect(chunks.reduce(0) { $0 + $1.length } == length)
            #expect(chunks.allSatisfy { $0.length >= 1 && $0.length <= max })
            for (a, b) in zip(chunks, chunks.dropFirst()) {
                #expect(b.bufferOffset == a.bufferOffset + a.length)
                #expect(b.fileOffset == a.fileOffset + UInt64(a.length))
            }
        }
    }

    @Test func refusesRangesPastTheLargestOffset() {
        #expect(throws: ClientError.self) { try ChunkPlan.split(offset: UInt64(Int64.max), length: 1, maxChunk: 10) }
        #expect(throws: ClientError.self) { try ChunkPlan.split(offset: UInt64.max - 5, length: 10, maxChunk: 10) }
        #expect(throws: ClientError.self) { try ChunkPlan.split(offset: 0, length: 10, maxChunk: 0) }
        #expect((try? ChunkPlan.split(offset: UInt64(Int64.max) - 1, length: 1, maxChunk: 10))?.count == 1)
    }

    @Test func contiguousBytesStopAtTheFirstShortChunk() throws {
        let chunks = try ChunkPlan.split(offset: 0, length: 30, maxChunk: 10)
        #expect(ChunkPlan.contiguousBytes(requested: chunks, completed: [10, 10, 10]) == 30)
        #expect(ChunkPlan.contiguousBytes(requested: chunks, completed: [10, 4, 10]) == 14)
        #expect(ChunkPlan.contiguousBytes(requested: chunks, completed: [0, 10, 10]) == 0)
        #expect(ChunkPlan.contiguousBytes(requested: chunks, completed: [10, 10, 3]) == 23)
    }

    @Test func bounceGeometry() {
        // The budget split by depth, when the server allows more per request.
        #expect(ChunkPlan.bounceGeometry(maxReadWriteSize: 8 << 20, budget: 4 << 20, queueDepth: 4) == (1 << 20, 4))
        // The server's limit, when it is smaller.
        #expect(ChunkPlan.bounceGeometry(maxReadWriteSize: 65536, budget: 4 << 20, queueDepth: 4) == (65536, 4))
        // Rounded down to whole pages above a page...
        #expect(ChunkPlan.bounceGeometry(maxReadWriteSize: 100_000, budget: 4 << 20, queueDepth: 4) == (98304, 4))
        #expect(ChunkPlan.bounceGeometry(maxReadWriteSize: 8 << 20, budget: 1_000_000, queueDepth: 3) == (331_776, 3))
        // ...but not below one.
        #expect(ChunkPlan.bounceGeometry(maxReadWriteSize: 1000, budget: 4 << 20, queueDepth: 2) == (1000, 2))
        #expect(ChunkPlan.bounceGeometry(maxReadWriteSize: 8 << 20, budget: 0, queueDepth: 0) == (1, 1))
    }
}
