import DaxshareClient
import Testing

@Suite("Sizes")
struct ByteCountTests {
    @Test(arguments: [
        ("0", UInt64(0)), ("4096", 4096), ("4K", 4096), ("4k", 4096), ("4KiB", 4096), ("64M", 64 << 20),
        ("1G", 1 << 30), ("2t", 2 << 40), (" 12 ", 12), ("8388607T", 8_388_607 << 40),
    ])
    func parses(_ text: String, _ value: UInt64) throws {
        #expect(try ByteCount.parse(text) == value)
    }

    @Test(arguments: ["", "K", "-1", "1.5M", "12X", "4KB", "1 M", "0x10", "8388608T", "9223372036854775808",
                      "99999999999999999999999"])
    func rejects(_ text: String) {
        #expect(throws: ClientError.self) { try ByteCount.parse(text) }
    }

    @Test func largestSizeIsAccepted() throws {
        #expect(try ByteCount.parse("9223372036854775807") == UInt64(Int64.max))
    }

    @Test func formats() {
        #expect(ByteCount.format(0) == "0 B")
        #expect(ByteCount.format(1023) == "1023 B")
        #expect(ByteCount.format(1024) == "1.0 KiB")
        #expect(ByteCount.format(1536) == "1.5 KiB")
        #expect(ByteCount.format(64 << 20) == "64.0 MiB")
        #expect(ByteCount.format(3 << 30 + 1 << 29) == "3.5 GiB")
    }
}
