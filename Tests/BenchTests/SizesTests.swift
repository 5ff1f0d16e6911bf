import DaxshareBench
import Testing

@Suite("Bench sizes")
struct SizesTests {
    @Test(arguments: [("4K", 4096), ("64KiB", 65536), ("1M", 1 << 20), ("4mib", 4 << 20), ("512", 512), ("512B", 512),
                      ("1G", 1 << 30), (" 8K ", 8192)])
    func parses(_ text: String, _ value: Int) throws {
        #expect(try ByteSize.parse(text) == value)
    }

    @Test(arguments: ["", "K", "0", "-4K", "1.5M", "4X", "0x10", "99999999999999999999G"])
    func rejects(_ text: String) {
        #expect(throws: ByteSize.ParseError.self) { try ByteSize.parse(text) }
    }

    @Test func listKeepsOrderAndDropsDuplicates() throws {
        #expect(try ByteSize.parseList("64K,4K,64K,1M") == [65536, 4096, 1 << 20])
        #expect(throws: ByteSize.ParseError.self) { try ByteSize.parseList("4K,,1M") }
    }

    @Test func formatsShortestExactSpelling() {
        #expect(ByteSize.format(4096) == "4K")
        #expect(ByteSize.format(1 << 20) == "1M")
        #expect(ByteSize.format(3 << 30) == "3G")
        #expect(ByteSize.format(1000) == "1000")
        #expect(ByteSize.format(4096 + 512) == "4608")
    }
}
