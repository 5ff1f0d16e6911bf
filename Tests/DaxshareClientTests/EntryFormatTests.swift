import DaxshareClient
import DaxshareWire
import Testing

@Suite("Output formats")
struct EntryFormatTests {
    func attrs(_ type: FileType = .regular, size: UInt64 = 4096, mode: UInt32 = 0o644, nlink: UInt32 = 1,
               mtimeNs: Int64 = 1_714_564_800_000_000_000, flags: AttributeFlags = []) -> FileAttributes {
        FileAttributes(size: size, allocatedSize: size, mtimeNs: mtimeNs, ctimeNs: mtimeNs + 1, fileIndex: 77,
                       mode: mode, nlink: nlink, type: type, flags: flags)
    }

    @Test func permissions() {
        #expect(EntryFormat.permissions(.regular, mode: 0o644) == "-rw-r--r--")
        #expect(EntryFormat.permissions(.directory, mode: 0o755) == "drwxr-xr-x")
        #expect(EntryFormat.permissions(.symlink, mode: 0o777) == "lrwxrwxrwx")
        #expect(EntryFormat.permissions(.other, mode: 0) == "?---------")
        #expect(EntryFormat.permissions(.regular, mode: 0o4755) == "-rwsr-xr-x")
        #expect(EntryFormat.permissions(.regular, mode: 0o2644) == "-rw-r-Sr--")
        #expect(EntryFormat.permissions(.directory, mode: 0o1777) == "drwxrwxrwt")
        #expect(EntryFormat.octalMode(0o644) == "0644")
        #expect(EntryFormat.octalMode(0o4755) == "4755")
        #expect(EntryFormat.octalMode(0) == "0000")
    }

    @Test func civilTimeInUTC() {
        #expect(CivilTime(nanosecondsSinceEpoch: 0).iso8601 == "1970-01-01T00:00:00.000000000Z")
        #expect(CivilTime(nanosecondsSinceEpoch: 1_714_564_800_000_000_000).listingText == "2024-05-01 12:00")
        // A leap day, with nanoseconds.
        #expect(CivilTime(nanosecondsSinceEpoch: 951_782_400_123_456_789).iso8601 == "2000-02-29T00:00:00.123456789Z")
        // Before the epoch: floor, not truncation.
        #expect(CivilTime(nanosecondsSinceEpoch: -1).iso8601 == "1969-12-31T23:59:59.999999999Z")
        #expect(CivilTime(nanosecondsSinceEpoch: 4_102_444_800 * 1_000_000_000).listingText == "2100-01-01 00:00")
    }

    @Test func longListingAlignsColumns() {
        let entries = [
            ListEntry(attributes: attrs(.directory, size: 4096, mode: 0o755, nlink: 12), name: "data"),
            ListEntry(attributes: attrs(size: 67_108_864), name: "big.bin"),
            ListEntry(attributes: attrs(size: 0), name: "bad\nname"),
        ]
        #expect(EntryFormat.longListing(entries) == [
            "drwxr-xr-x 12     4096 2024-05-01 12:00 data",
            "-rw-r--r--  1 67108864 2024-05-01 12:00 big.bin",
            "-rw-r--r--  1        0 2024-05-01 12:00 bad?name",
        ])
        #expect(EntryFormat.longListing([]).isEmpty)
    }

    @Test func jsonEntry() {
        let text = EntryFormat.json(attrs(flags: [.dax]), name: "a \"b\"\n").text
        #expect(text == #"{"name":"a \"b\"\n","type":"regular","size":4096,"allocatedSize":4096,"mode":"0644","#
            + #""permissions":"-rw-r--r--","nlink":1,"fileIndex":77,"mtime":"2024-05-01T12:00:00.000000000Z","#
            + #""mtimeNs":1714564800000000000,"ctimeNs":1714564800000000001,"dax":true}"#)
        let stat = EntryFormat.json(attrs(.directory, mode: 0o755), nameKey: "path", name: "").text
        #expect(stat.hasPrefix(#"{"path":"","type":"directory","#))
        #expect(stat.hasSuffix(#""dax":false}"#))
    }

    @Test func jsonStringEscaping() {
        #expect(JSONValue.quote("plain") == #""plain""#)
        #expect(JSONValue.quote("tab\there\\") == #""tab\there\\""#)
        #expect(JSONValue.quote("\u{01}\u{1F}") == #""\u0001\u001f""#)
        #expect(JSONValue.quote("é✓") == "\"é✓\"")
        #expect(JSONValue.object([("a", .int(-1)), ("b", .null), ("c", .object([]))]).text == #"{"a":-1,"b":null,"c":{}}"#)
    }

    @Test func statText() {
        let text = EntryFormat.statText(attrs(size: 1536, flags: [.dax]), path: "dir/f")
        #expect(text.contains("Path: dir/f"))
        #expect(text.contains("Type: regular file"))
        #expect(text.contains("Size: 1536 (1.5 KiB)"))
        #expect(text.contains("Mode: 0644 (-rw-r--r--)"))
        #expect(text.contains("DAX: yes"))
        #expect(EntryFormat.statText(attrs(.directory), path: "").contains("Path: (export root)"))
    }

    @Test func counters() {
        #expect(EntryFormat.counters([Counter(name: "sessions", value: 2), Counter(name: "bytes_read_two_sided", value: 10)]) == [
            "sessions              2",
            "bytes_read_two_sided  10",
        ])
    }
}

extension EntryFormatTests {
    static let clients = ServerClientsResponse(
        clients: [
            ClientEntry(
                sessionId: 0xab, ageSeconds: 42, openFiles: 2, bytesReadTwoSided: 1 << 20, bytesWrittenTwoSided: 0,
                bytesLayoutGranted: 4 << 20, bytesCommittedOneSided: 3 << 20, layoutsHeld: 3,
                layouts: [ClientLayoutEntry(offset: 0, length: 4 << 20, readWrite: true, file: "data:big.bin")],
                address: "169.254.77.1:40000", identity: "putter"),
            ClientEntry(
                sessionId: 0xcd, ageSeconds: 1, openFiles: 0, bytesReadTwoSided: 0, bytesWrittenTwoSided: 0,
                bytesLayoutGranted: 0, bytesCommittedOneSided: 0, layoutsHeld: 0, layouts: [], address: "10.0.0.2:1", identity: ""),
        ],
        total: 3)

    /// `stat --server --clients`: a line per session, a line per layout listed, and what was cut.
    @Test func clientsTable() {
        let lines = EntryFormat.clients(Self.clients)
        #expect(lines.count == 6)
        #expect(lines[0].hasPrefix("SESSION"))
        #expect(lines[1].hasPrefix("ab ") && lines[1].contains("putter") && lines[1].contains("42s"))
        #expect(lines[2] == "    rw data:big.bin [0, 4194304)")
        #expect(lines[3] == "    ... and 2 more")
        #expect(lines[4].hasPrefix("cd ") && lines[4].contains(" - "))
        #expect(lines[5] == "(1 more not listed)")
    }

    @Test func clientsJSON() {
        let text = EntryFormat.clientsJSON(Self.clients).text
        #expect(text.hasPrefix(#"{"total":3,"clients":[{"session":"ab","address":"169.254.77.1:40000","identity":"putter","ageSeconds":42,"openFiles":2,"layoutsHeld":3,"#))
        #expect(text.contains(#""layouts":[{"file":"data:big.bin","offset":0,"length":4194304,"mode":"rw"}]"#))
        #expect(text.hasSuffix(#""layouts":[]}]}"#))
    }
}
