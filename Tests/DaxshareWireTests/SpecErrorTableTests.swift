import DaxshareWire
import Testing

/// PROTOCOL.md §3.9.3 lists every codec rule and the error it gives. Each case here breaks one
/// rule of one valid vector (by overwriting one annotated field) and expects the error as that
/// table spells it, so the table and the codec cannot drift apart unnoticed.
@Suite("PROTOCOL.md §3.9 error table")
struct SpecErrorTableTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var vector: String
        /// The field's name as the vector annotates it (the first word of the note).
        var field: String
        var value: UInt64
        /// nil: the mutated message still decodes (a server check, not a codec rule).
        var error: String?
        var testDescription: String { "\(vector) \(field)=\(value)" }
    }

    static func c(_ vector: String, _ field: String, _ value: UInt64, _ error: String?) -> Case {
        Case(vector: vector, field: field, value: value, error: error)
    }

    static let cases: [Case] = [
        // Private data (§2.2).
        c("pd-connect", "kind", 4, "outOfRange(kind)"),
        c("pd-reject-too-many", "reason", 5, "outOfRange(reason)"),
        c("pd-reject-too-many", "reason", 0, "outOfRange(reason)"),
        c("pd-connect", "reason", 1, "reservedNotZero(reason)"),
        c("pd-connect", "minVersion", 0x0200, "outOfRange(minVersion)"),
        // Transport (§2.4–2.6).
        c("transport-negotiate-request", "minVersion", 0x0200, "outOfRange(minVersion)"),
        c("transport-negotiate-request", "creditsRequested", 0, nil),  // server: INVALID_PARAMETER
        c("transport-negotiate-request", "maxReceiveSize", 16, nil),
        c("transport-negotiate-response", "status", 4, "outOfRange(status)"),
        c("transport-negotiate-response", "minVersion", 0x0200, "outOfRange(minVersion)"),
        c("dt-echo-request", "dataOffset", 16, "outOfRange(dataOffset)"),
        c("dt-echo-request", "remainingDataLength", 16 << 20, "oversized(remainingDataLength)"),
        c("dt-echo-request", "flags", 0x8001, "unknownFlags(flags, 0x8000)"),
        // Header and command (§3.2–3.3).
        c("echo-request", "headerSize", 64, "outOfRange(headerSize)"),
        c("echo-request", "bodyLength", 0xFFFF_FF00, "oversized(bodyLength)"),
        c("echo-request", "command", 0x0040, "outOfRange(command)"),
        c("echo-request", "command", 0x0099, "unknownCommand(0x0099)"),
        c("cb-layoutrecall", "command", 0x0010, "outOfRange(command)"),
        c("cb-layoutrecall", "command", 0x0099, "unknownCommand(0x0099)"),
        c("cb-layoutrecall", "status", 1, "reservedNotZero(status)"),
        c("cb-layoutrecall-reply", "command", 0x0011, "outOfRange(command)"),
        c("cb-layoutrecall-reply", "status", 0x17, nil),  // any status, the §5.5 body
        c("layoutget-try-later", "command", 0x0040, nil),  // an error response names any command
        // NEGOTIATE (§4.3).
        c("negotiate-request", "minDialect", 0x0200, "outOfRange(minDialect)"),
        c("negotiate-request", "capabilities", 1 << 40, nil),
        c("negotiate-response", "maxOutstandingRequests", 0, "outOfRange(maxOutstandingRequests)"),
        c("negotiate-response", "defaultRecallDeadlineMs", 0, "outOfRange(defaultRecallDeadlineMs)"),
        c("negotiate-response", "maxBufferDescriptors", 65, "outOfRange(maxBufferDescriptors)"),
        c("negotiate-response", "maxExtentsPerLayout", 0, "outOfRange(maxExtentsPerLayout)"),
        c("negotiate-response", "maxPathLength", 4096, "outOfRange(maxPathLength)"),
        c("negotiate-response", "maxListEntries", 1025, "outOfRange(maxListEntries)"),
        c("negotiate-response", "dialect", 0x0200, nil),  // the client's check
        // SESSION_SETUP, TREE_*, SERVER_STATS (§4.4–4.9).
        c("session-setup-begin", "identityLength", 256, "oversized(identity)"),
        c("session-setup-challenge", "phase", 3, "outOfRange(phase)"),
        c("tree-connect-request", "nameLength", 0, "outOfRange(exportName)"),
        c("tree-connect-request", "nameLength", 256, "oversized(exportName)"),
        c("tree-connect-request", "exportName", 0xFF, "invalidUTF8(exportName)"),
        c("tree-connect-response", "treeId", 0, "outOfRange(treeId)"),
        c("tree-connect-response", "treeFlags", 6, "unknownFlags(treeFlags, 0x4)"),
        c("tree-disconnect-request", "treeId", 0, "outOfRange(treeId)"),
        c("server-stats-response", "count", 257, "oversized(count)"),
        c("server-stats-response", "counter[0].nameLength", 65, "oversized(counterName)"),
        c("server-stats-response", "counter[0].nameLength", 0, "outOfRange(counterName)"),
        c("server-stats-response", "counter[0].name", 0xFF, "invalidUTF8(counterName)"),
        // File attributes, OPEN, CLOSE, STAT (§4.2, 4.10–4.12).
        c("stat-response", "attr.type", 5, "outOfRange(type)"),
        c("stat-response", "attr.mode", 0o10000, "outOfRange(mode)"),
        c("stat-response", "attr.attributeFlags", 2, "unknownFlags(attributeFlags, 0x2)"),
        c("open-request", "mode", 0o10000, "outOfRange(mode)"),
        c("open-request", "pathLength", 4096, "oversized(path)"),
        c("open-request", "openFlags", 0x08, nil),  // EXCLUSIVE without CREATE: server, INVALID_ARGUMENT
        c("open-response", "fileId", 0, "outOfRange(fileId)"),
        c("close-request", "fileId", 0, "outOfRange(fileId)"),
        c("stat-by-id-request", "kind", 3, "outOfRange(kind)"),
        c("stat-by-id-request", "pathLength", 1, "reservedNotZero(pathLength)"),
        c("stat-by-id-request", "treeId", 1, "reservedNotZero(treeId)"),
        c("stat-by-id-request", "fileId", 0, "outOfRange(fileId)"),
        c("stat-by-path-request", "fileId", 1, "reservedNotZero(fileId)"),
        c("stat-by-path-request", "treeId", 0, "outOfRange(treeId)"),
        c("stat-by-path-request", "pathLength", 4096, "oversized(path)"),
        c("stat-by-path-request", "path", 0xFF, "invalidUTF8(path)"),
        // LIST (§4.13).
        c("list-request", "maxEntries", 0, "outOfRange(maxEntries)"),
        c("list-request", "maxEntries", 1025, "outOfRange(maxEntries)"),
        c("list-request", "treeId", 0, "outOfRange(treeId)"),
        c("list-request", "cookie", 0xDEAD_BEEF, nil),  // server: a cookie it can tell is made up
        c("list-request", "pathLength", 4096, "oversized(path)"),
        c("list-response", "count", 1025, "oversized(count)"),
        c("list-response", "listFlags", 1, "reservedNotZero(nextCookie)"),
        c("list-response", "listFlags", 3, "unknownFlags(listFlags, 0x2)"),
        c("list-response", "nextCookie", 0, "outOfRange(nextCookie)"),
        c("list-response", "entry[0].nameLength", 256, "oversized(name)"),
        c("list-response", "entry[0].name", 0x2F, "outOfRange(name)"),
        c("list-response", "entry[0].name", 0xFF, "invalidUTF8(name)"),
        // SET_SIZE, PUNCH_HOLE, UNLINK, RENAME, FLUSH (§4.14–4.18).
        c("set-size-request", "size", 1 << 63, "outOfRange(size)"),
        c("set-size-request", "fileId", 0, "outOfRange(fileId)"),
        c("punch-hole-request", "length", 0, "outOfRange(length)"),
        c("punch-hole-request", "offset", UInt64.max - 4095, "outOfRange(length)"),
        c("flush-request", "offset", 1, nil),  // length 0: to the end of the file
        c("flush-request", "fileId", 0, "outOfRange(fileId)"),
        c("unlink-request", "treeId", 0, "outOfRange(treeId)"),
        c("unlink-request", "unlinkFlags", 2, "unknownFlags(unlinkFlags, 0x2)"),
        c("unlink-request", "pathLength", 4096, "oversized(path)"),
        c("rename-request", "renameFlags", 3, "unknownFlags(renameFlags, 0x2)"),
        c("rename-request", "fromLength", 4096, "oversized(from)"),
        c("rename-request", "toLength", 4096, "oversized(to)"),
        c("rename-request", "from", 0xFF, "invalidUTF8(from)"),
        c("rename-request", "to", 0xFF, "invalidUTF8(to)"),
        // MKDIR, SET_ATTRIBUTES, STATFS, ALLOCATE (§4.21–4.24).
        c("mkdir-request", "treeId", 0, "outOfRange(treeId)"),
        c("mkdir-request", "mode", 0o10000, "outOfRange(mode)"),
        c("mkdir-request", "mode", 0o7777, nil),
        c("mkdir-request", "pathLength", 4096, "oversized(path)"),
        c("mkdir-request", "path", 0xFF, "invalidUTF8(path)"),
        c("set-attributes-by-path-request", "kind", 3, "outOfRange(kind)"),
        c("set-attributes-by-path-request", "fileId", 1, "reservedNotZero(fileId)"),
        c("set-attributes-by-path-request", "treeId", 0, "outOfRange(treeId)"),
        c("set-attributes-by-path-request", "pathLength", 4096, "oversized(path)"),
        c("set-attributes-by-path-request", "path", 0xFF, "invalidUTF8(path)"),
        c("set-attributes-by-path-request", "which", 0x2D, "unknownFlags(which, 0x20)"),
        c("set-attributes-by-path-request", "mode", 0o10000, "outOfRange(mode)"),
        c("set-attributes-by-path-request", "atimeNs", 5, "reservedNotZero(atimeNs)"),  // ATIME_NOW, not ATIME
        c("set-attributes-by-path-request", "mtimeNs", 0, nil),
        c("set-attributes-by-id-request", "pathLength", 1, "reservedNotZero(pathLength)"),
        c("set-attributes-by-id-request", "treeId", 1, "reservedNotZero(treeId)"),
        c("set-attributes-by-id-request", "fileId", 0, "outOfRange(fileId)"),
        c("set-attributes-by-id-request", "which", 0x0A, "outOfRange(which)"),  // ATIME with ATIME_NOW
        c("set-attributes-by-id-request", "which", 0x1A, "outOfRange(which)"),  // MTIME with MTIME_NOW
        c("set-attributes-by-id-request", "which", 0x10, "reservedNotZero(atimeNs)"),
        c("set-attributes-by-id-request", "which", 0x13, nil),  // MODE 0: every permission bit cleared
        c("set-attributes-by-id-request", "mode", 0o644, "reservedNotZero(mode)"),
        c("set-attributes-by-id-request", "mtimeNs", 1, "reservedNotZero(mtimeNs)"),
        c("set-attributes-by-id-request", "fileId", 0xDEAD, nil),  // server: STALE_FILE
        c("statfs-request", "treeId", 0, "outOfRange(treeId)"),
        c("statfs-response", "blockSize", 0, "outOfRange(blockSize)"),
        c("statfs-response", "freeBlocks", 1 << 40, nil),  // more free than total: the file system's word
        c("allocate-request", "fileId", 0, "outOfRange(fileId)"),
        c("allocate-request", "length", 0, "outOfRange(length)"),
        c("allocate-request", "offset", UInt64.max - 4095, "outOfRange(length)"),
        c("allocate-request", "offset", 1 << 63, nil),  // server: FILE_TOO_LARGE
        c("allocate-request", "allocateFlags", 3, "unknownFlags(allocateFlags, 0x2)"),
        c("allocate-response", "attr.mode", 0o10000, "outOfRange(mode)"),
        // READ, WRITE (§4.19–4.20).
        c("read-request", "fileId", 0, "outOfRange(fileId)"),
        c("read-request", "ioFlags", 1, "unknownFlags(ioFlags, 0x1)"),
        c("read-request", "offset", UInt64.max - 65535, "outOfRange(offset)"),
        c("read-request", "offset", 1 << 63, nil),  // server: INVALID_ARGUMENT
        c("write-request", "ioFlags", 3, "unknownFlags(ioFlags, 0x2)"),
        c("read-response", "readFlags", 3, "unknownFlags(readFlags, 0x2)"),
        // Layouts (§5.1–5.5).
        c("layoutget-request", "fileId", 0, "outOfRange(fileId)"),
        c("layoutget-request", "iomode", 0, "outOfRange(iomode)"),
        c("layoutget-request", "minLength", 1 << 21, "outOfRange(minLength)"),
        c("layoutget-request", "offset", 1 << 63, nil),  // server: INVALID_ARGUMENT
        c("layoutget-response-rw", "stateid.id", 0, "outOfRange(stateid.id)"),
        c("layoutget-response-rw", "iomode", 3, "outOfRange(iomode)"),
        c("layoutget-response-rw", "recallDeadlineMs", 0, "outOfRange(recallDeadlineMs)"),
        c("layoutget-response-rw", "extentCount", 65, "oversized(extentCount)"),
        c("layoutget-response-rw", "extent[0].length", 0, "outOfRange(extent.length)"),
        c("layoutget-response-rw", "extent[0].remoteAddress", UInt64.max, "outOfRange(extent.remoteAddress)"),
        c("layoutget-response-rw", "extent[0].flags", 8, "unknownFlags(extent.flags, 0x8)"),
        c("layoutget-response-rw", "extent[0].flags", 5, "outOfRange(extent.flags)"),  // READ_ONLY with PERSISTENT_FLUSH
        c("layoutget-response-rw", "extent[1].fileOffset", 0, "outOfRange(extent.fileOffset)"),
        c("layoutcommit-request", "commitFlags", 5, "unknownFlags(commitFlags, 0x4)"),
        c("layoutcommit-request", "rangeCount", 65, "oversized(rangeCount)"),
        c("layoutcommit-request", "range[0].length", 0, "outOfRange(range.length)"),
        c("layoutcommit-request", "newSize", 1 << 63, "outOfRange(newSize)"),
        c("layoutreturn-request-all", "offset", 1, "reservedNotZero(offset)"),
        c("layoutreturn-request-all", "length", 1, "reservedNotZero(length)"),
        c("layoutreturn-request-all", "returnFlags", 3, "unknownFlags(returnFlags, 0x2)"),
        c("layoutreturn-request-range", "length", 0, "outOfRange(length)"),
        c("cb-layoutrecall", "fileId", 0, "outOfRange(fileId)"),
        c("cb-layoutrecall", "length", 0, "outOfRange(length)"),
        c("cb-layoutrecall", "recallId", 0, "outOfRange(recallId)"),
        c("cb-layoutrecall", "deadlineMs", 0, "outOfRange(deadlineMs)"),
        c("cb-layoutrecall", "reason", 9, "outOfRange(reason)"),
        c("cb-layoutrecall-reply", "recallId", 0, "outOfRange(recallId)"),
    ]

    @Test(arguments: cases)
    func eachRuleGivesTheDocumentedError(_ c: Case) throws {
        let v = Vectors.named(c.vector)
        let f = try #require(v.fields.first { $0.note.prefix { $0 != " " } == c.field }, "no field \(c.field)")
        var bytes = v.bytes
        for i in 0..<f.length { bytes[f.offset + i] = i < 8 ? UInt8(truncatingIfNeeded: c.value >> (8 * UInt64(i))) : 0 }
        if let expected = c.error {
            #expect(wireError { _ = try decodeAndReencode(v.codec, bytes) }.map { String(describing: $0) } == expected)
        } else {
            #expect(throws: Never.self) { _ = try decodeAndReencode(v.codec, bytes) }
        }
    }

    @Test func truncationNamesTheFirstFieldThatDoesNotFit() throws {
        // §3.9.1: a body too short for its fields is truncated at the first that does not fit.
        var stat = Vectors.named("stat-by-path-request").bytes
        stat = Array(stat[..<50])  // header + kind, pathLength, treeId, 2 bytes of fileId
        stat[32] = 10
        #expect(wireError { _ = try Message.decode(stat) } == .truncated(field: "fileId"))
        var pd = Vectors.named("pd-connect").bytes
        pd.removeLast(14)
        #expect(wireError { _ = try ConnectPrivateData.decode(pd) } == .truncated(field: "privateData.magic"))
        // §3.9: a count is checked when read, before what it counts: oversized, not truncated.
        var open = Vectors.named("open-request").bytes
        open[52] = 0x88; open[53] = 0x13  // pathLength 5000, with 6 bytes of path
        #expect(wireError { _ = try Message.decode(open) } == .oversized(field: "path"))
    }
}
