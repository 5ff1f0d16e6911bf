/// One named counter in a SERVER_STATS reply.
public struct Counter: Sendable, Hashable {
    /// 1...64 bytes of UTF-8; v1 names are lowercase ASCII with "_" (see ``ServerCounter``).
    public var name: String
    public var value: UInt64
    public init(name: String, value: UInt64) {
        self.name = name
        self.value = value
    }
}

/// The counter names every v1 server reports (PROTOCOL.md §4.9). A server may add others;
/// clients ignore names they do not know.
public enum ServerCounter {
    public static let bytesReadTwoSided = "bytes_read_two_sided"
    public static let bytesWrittenTwoSided = "bytes_written_two_sided"
    public static let bytesLayoutGranted = "bytes_layout_granted"
    public static let bytesCommittedOneSided = "bytes_committed_one_sided"
    public static let layoutsGranted = "layouts_granted"
    public static let layoutsReturned = "layouts_returned"
    public static let layoutsRecalled = "layouts_recalled"
    public static let layoutsRevoked = "layouts_revoked"
    public static let layoutsLive = "layouts_live"
    public static let mrsLive = "mrs_live"
    public static let openFiles = "open_files"
    public static let connections = "connections"
    public static let sessions = "sessions"
    public static let recallsInProgress = "recalls_in_progress"
    public static let protocolViolations = "protocol_violations"
    public static let authFailures = "auth_failures"
    public static let authRefusals = "auth_refusals"
    /// Bytes of layout memory regions registered now (the sum of mrs_live's lengths).
    public static let bytesRegistered = "bytes_registered"
    /// OPENs that succeeded, since start (open_files is how many are open now).
    public static let filesOpened = "files_opened"
    /// Configuration reloads applied (SIGHUP); one that failed changes nothing and is not counted.
    public static let configReloads = "config_reloads"
    /// Cache flushes (pmem_persist; msync off pmem) the server's CPU ran over a file mapping to
    /// make stores durable (LAYOUTCOMMIT, FLUSH); a commit by RDMA FLUSH runs none (§5.8).
    public static let pmemPersists = "pmem_persists"
    /// Of bytes_read_two_sided, those the NIC sent straight from the file's mapping: the
    /// server's CPU copied none of them (a large READ on a device with on-demand paging).
    public static let bytesReadFromMappings = "bytes_read_from_mappings"
    public static let all: [String] = [
        bytesReadTwoSided, bytesWrittenTwoSided, bytesLayoutGranted, bytesCommittedOneSided,
        layoutsGranted, layoutsReturned, layoutsRecalled, layoutsRevoked, layoutsLive, mrsLive,
        openFiles, connections, sessions, recallsInProgress, protocolViolations, authFailures, authRefusals,
        configReloads, bytesRegistered, filesOpened, pmemPersists, bytesReadFromMappings,
    ]
}

/// SERVER_STATS response: a snapshot of the server's counters (whole server, not per session).
public struct ServerStatsResponse: WireBody {
    public var counters: [Counter]
    public init(counters: [Counter]) { self.counters = counters }

    static func validateName(_ name: String) throws(WireError) {
        let n = name.utf8.count
        if n > Limits.maxCounterNameLength { throw .oversized(field: "counterName") }
        if n == 0 { throw .outOfRange(field: "counterName") }
    }

    func encode(into w: inout ByteWriter) throws(WireError) {
        if counters.count > Limits.maxCounters { throw .oversized(field: "count") }
        w.u16(UInt16(counters.count))
        w.zeros(6)
        for c in counters {
            try Self.validateName(c.name)
            w.u64(c.value)
            w.u16(UInt16(c.name.utf8.count))
            w.append(c.name.utf8)
        }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ServerStatsResponse {
        let count = Int(try r.u16("count"))
        if count > Limits.maxCounters { throw .oversized(field: "count") }
        try r.reserved(6, "reserved")
        var counters: [Counter] = []
        counters.reserveCapacity(min(count, r.remaining / 11))
        for _ in 0..<count {
            let v = try r.u64("value")
            let n = Int(try r.u16("nameLength"))
            if n > Limits.maxCounterNameLength { throw .oversized(field: "counterName") }
            let name = try r.utf8(n, "counterName")
            try validateName(name)
            counters.append(Counter(name: name, value: v))
        }
        return ServerStatsResponse(counters: counters)
    }
}
