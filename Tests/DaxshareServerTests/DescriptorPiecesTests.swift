@testable import DaxshareServer
import DaxshareWire
import Testing

@Suite struct DescriptorPiecesTests {
    let descriptors = [
        BufferDescriptor(address: 0x1000, rkey: 1, length: 4096),
        BufferDescriptor(address: 0x9000, rkey: 2, length: 100),
        BufferDescriptor(address: 0x20000, rkey: 3, length: 1 << 20),
    ]

    @Test func aChunkInsideOneDescriptor() {
        #expect(descriptors.pieces(offset: 10, length: 20) == [DescriptorPiece(descriptor: 0, offset: 10, length: 20)])
    }

    @Test func aChunkAcrossDescriptorsIsOnePiecePerDescriptor() {
        #expect(descriptors.pieces(offset: 4000, length: 300) == [
            DescriptorPiece(descriptor: 0, offset: 4000, length: 96),
            DescriptorPiece(descriptor: 1, offset: 0, length: 100),
            DescriptorPiece(descriptor: 2, offset: 0, length: 104),
        ])
    }

    @Test func laterChunksSkipWholeDescriptors() {
        #expect(descriptors.pieces(offset: 4196 + 65536, length: 65536) == [DescriptorPiece(descriptor: 2, offset: 65536, length: 65536)])
    }

    @Test func piecesStopWhereTheDescriptorsEnd() {
        let total = 4096 + 100 + (1 << 20)
        #expect(descriptors.pieces(offset: total - 8, length: 64) == [DescriptorPiece(descriptor: 2, offset: (1 << 20) - 8, length: 8)])
        #expect(descriptors.pieces(offset: total, length: 64).isEmpty)
    }
}
