import DaxshareWire

// The arithmetic of the one-sided data path (PROTOCOL.md §5), kept pure so it is tested on its
// own: which range to ask LAYOUTGET for, how an I/O maps onto a layout's extents and work
// requests, which written ranges are dirty, how they become LAYOUTCOMMITs, and what to do
// when the server refuses a layout.

/// One RDMA READ or WRITE of the one-sided path: file bytes `[fileOffset, fileOffset+length)`
/// at `remoteAddress` (with `rkey`), to or from the caller's buffer at `bufferOffset`.
public struct OneSidedPiece: Sendable, Hashable {
    public var fileOffset: UInt64
    public var bufferOffset: Int
    public var length: Int
    public var remoteAddress: UInt64
    public var rkey: UInt32

    public init(fileOffset: UInt64, bufferOffset: Int, length: Int, remoteAddress: UInt64, rkey: UInt32) {
        self.fileOffset = fileOffset
        self.bufferOffset = bufferOffset
        self.length = length
        self.remoteAddress = remoteAddress
        self.rkey = rkey
    }
}

/// What LAYOUTGET asks for.
public struct LayoutRequestRange: Sendable, Hashable {
    public var offset: UInt64
    public var length: UInt64
    public var minLength: UInt64
}

public enum LayoutPlan {
    /// The window an I/O at `offset` falls in: `[start, start + window)`, `start` a multiple of
    /// `window`. Layouts are asked for per window, so one layout serves many I/Os (a whole
    /// `put` of up to a window) and an I/O crossing a window boundary is split there.
    public static func window(containing offset: UInt64, window: UInt64) -> Range<UInt64> {
        let start = offset - offset % window
        let end = start > UInt64(Int64.max) - window ? UInt64(Int64.max) : start + window
        return start..<end
    }

    /// The LAYOUTGET range for the part `[ioStart, ioEnd)` of an I/O inside `window`.
    ///
    /// A READ layout asks for the whole window (the server clips it at the visible size). An
    /// RW layout asks for the window up to the furthest byte the client expects to write
    /// (`expectedEnd`, e.g. the size of the file being put), rounded up to a page, so a 4 KiB
    /// put does not make the server allocate a whole window past the end of the file.
    /// `minLength` is what this I/O needs, counted from the request's offset.
    public static func request(window: Range<UInt64>, ioStart: UInt64, ioEnd: UInt64, iomode: LayoutIOMode,
                               expectedEnd: UInt64?, pageSize: UInt64 = 4096) -> LayoutRequestRange {
        precondition(window.contains(ioStart) && ioEnd > ioStart && ioEnd <= window.upperBound)
        var end = window.upperBound
        if iomode == .readWrite, let expected = expectedEnd {
            let wanted = roundUp(max(expected, ioEnd), pageSize)
            end = min(window.upperBound, max(wanted, ioEnd))
        }
        return LayoutRequestRange(offset: window.lowerBound, length: end - window.lowerBound,
                                  minLength: ioEnd - window.lowerBound)
    }

    /// True when the extents cover every byte of `[start, end)`.
    public static func covers(_ extents: [LayoutExtent], _ start: UInt64, _ end: UInt64) -> Bool {
        var pos = start
        for e in extents.sorted(by: { $0.fileOffset < $1.fileOffset }) {
            if e.fileOffset > pos { break }
            let eEnd = e.fileOffset + e.length
            if eEnd > pos { pos = eEnd }
            if pos >= end { return true }
        }
        return pos >= end
    }

    /// The largest work request for an I/O of `length` bytes on registered caller memory.
    ///
    /// Up to `oneRequestUpTo` (4 MiB) an I/O is one work request: our verbs loop moves one
    /// 1-4 MiB WRITE or READ as fast as raw-odp does, and pieces in flight would cost a task
    /// group (about 35 allocations per I/O, measured). Two kinds are cut into about `ways`
    /// pieces in flight (fewer if `queueDepth` is smaller), none under `minPiece` nor over
    /// `maxPiece`, each whole pages:
    /// - a `durable` write (WRITE + FLUSH chains) of at least twice `minPiece`: the FLUSH of one
    ///   piece, which walks its pages on the server's NIC, overlaps the transfer of the next
    ///   (4 MiB QD1 write + FLUSH: 100 MB/s against 80 as one chain, in the testbed). The
    ///   caller says false while other I/O of the file is in flight: the queue is busy then;
    /// - anything larger than `oneRequestUpTo` (a CLI put's 16 MiB batch): rxe moves a few
    ///   transfers in flight faster than one large one (perftest: one 4 MiB WRITE at a time 57
    ///   MiB/s, four 1 MiB WRITEs 102).
    /// A limit for one work request is the length rounded up to a page (`split` rounds limits
    /// down to its alignment), and at most `maxSingle` (1 GiB, under every device's maximum
    /// message size: rxe's is 2 GiB).
    public static func directPieceLimit(length: Int, queueDepth: Int, maxPiece: Int, durable: Bool,
                                        oneRequestUpTo: Int = 4 << 20, minPiece: Int = 256 << 10,
                                        ways: Int = 4, pageSize: Int = 4096, maxSingle: Int = 1 << 30) -> Int {
        let whole = min(maxSingle, max(pageSize, roundUp(length, pageSize)))
        let split = min(max(1, queueDepth), max(1, ways))
        guard split > 1, length >= 2 * minPiece, durable || length > oneRequestUpTo else { return whole }
        let even = roundUp((length + split - 1) / split, pageSize)
        return min(max(even, minPiece), max(minPiece, maxPiece))
    }

    /// Maps `[offset, offset + length)` (the caller's buffer from `bufferOffset`) onto the
    /// extents: the pieces inside extents, each at most `maxPiece` bytes and never crossing an
    /// extent boundary, and the gaps no extent covers (as chunks for the two-sided path).
    ///
    /// With `alignment` > 1 every piece starts at a remote address that is a multiple of it
    /// (the bytes before the first one are a gap) and pieces after it stay aligned (`maxPiece`
    /// is rounded down to a multiple of it): see `LayoutSettings.remoteAlignment`.
    public static func split(offset: UInt64, length: Int, bufferOffset: Int = 0, extents: [LayoutExtent],
                             maxPiece: Int, alignment: Int = 1) -> (pieces: [OneSidedPiece], gaps: [Chunk]) {
        precondition(maxPiece > 0 && length >= 0 && alignment > 0)
        let align = UInt64(alignment)
        let pieceLimit = UInt64(max(alignment, maxPiece / alignment * alignment))
        var pieces: [OneSidedPiece] = []
        var gaps: [Chunk] = []
        let end = offset + UInt64(length)
        var pos = offset
        func gap(to stop: UInt64) {
            guard stop > pos else { return }
            gaps.append(Chunk(fileOffset: pos, bufferOffset: bufferOffset + Int(pos - offset), length: Int(stop - pos)))
            pos = stop
        }
        for e in extents.sorted(by: { $0.fileOffset < $1.fileOffset }) where pos < end {
            let eEnd = e.fileOffset + e.length
            if eEnd <= pos { continue }
            if e.fileOffset >= end { break }
            gap(to: e.fileOffset)
            let stop = min(end, eEnd)
            let address = e.remoteAddress + (pos - e.fileOffset)
            if address % align != 0 { gap(to: min(stop, pos + (align - address % align))) }
            while pos < stop {
                let n = Int(min(pieceLimit, stop - pos))
                pieces.append(OneSidedPiece(fileOffset: pos, bufferOffset: bufferOffset + Int(pos - offset), length: n,
                                            remoteAddress: e.remoteAddress + (pos - e.fileOffset), rkey: e.rkey))
                pos += UInt64(n)
            }
        }
        gap(to: end)
        return (pieces, gaps)
    }

    /// Joins chunks that continue one another in both the file and the buffer, so the
    /// two-sided path gets few large requests rather than many small ones.
    public static func coalesce(_ chunks: [Chunk]) -> [Chunk] {
        // Nothing to merge (a one-sided read with no gaps, the common case): no sort, no copy.
        if chunks.count < 2 { return chunks }
        var out: [Chunk] = []
        for c in chunks.sorted(by: { $0.fileOffset < $1.fileOffset }) {
            if var last = out.last, last.fileOffset + UInt64(last.length) == c.fileOffset,
               last.bufferOffset + last.length == c.bufferOffset {
                last.length += c.length
                out[out.count - 1] = last
            } else {
                out.append(c)
            }
        }
        return out
    }

    static func roundUp<T: BinaryInteger>(_ x: T, _ to: T) -> T {
        let r = x % to
        return r == 0 ? x : x + (to - r)
    }
}

/// The ranges of a layout written one-sided since its last acknowledged LAYOUTCOMMIT, kept
/// sorted and merged (touching or overlapping ranges become one).
public struct DirtyRanges: Sendable, Hashable {
    public private(set) var ranges: [ByteRange] = []

    public init() {}
    public init(_ ranges: [ByteRange]) { for r in ranges { insert(r) } }

    public var isEmpty: Bool { ranges.isEmpty }
    /// One past the last dirty byte (0 when clean).
    public var end: UInt64 { ranges.last.map { $0.offset + $0.length } ?? 0 }
    public var byteCount: UInt64 { ranges.reduce(0) { $0 + $1.length } }

    public mutating func insert(offset: UInt64, length: UInt64) {
        insert(ByteRange(offset: offset, length: length))
    }

    public mutating func insert(_ r: ByteRange) {
        guard r.length > 0 else { return }
        var start = r.offset
        var stop = r.offset + r.length
        // First range that ends at or after `start` (could merge).
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].offset + ranges[mid].length < start { lo = mid + 1 } else { hi = mid }
        }
        var k = lo
        while k < ranges.count && ranges[k].offset <= stop {
            start = min(start, ranges[k].offset)
            stop = max(stop, ranges[k].offset + ranges[k].length)
            k += 1
        }
        // In place for the usual cases (a new range, or one grown): no array is made.
        let merged = ByteRange(offset: start, length: stop - start)
        if k == lo {
            ranges.insert(merged, at: lo)
        } else {
            ranges[lo] = merged
            if k > lo + 1 { ranges.removeSubrange((lo + 1)..<k) }
        }
    }

    /// Adds every range of `other` (a failed commit puts its ranges back).
    public mutating func formUnion(_ other: DirtyRanges) {
        for r in other.ranges { insert(r) }
    }

    /// Takes all ranges out, leaving this empty.
    public mutating func removeAll() -> DirtyRanges {
        defer { ranges = [] }
        return self
    }
}

public enum CommitPlan {
    /// The LAYOUTCOMMIT requests that make `dirty` durable: at most `Limits.maxCommitRanges`
    /// ranges each, in file order, NEW_SIZE (the end of the last dirty byte, if it passes
    /// `knownSize`) only on the last, so the size grows only once every byte before it is durable.
    /// No requests when nothing is dirty.
    public static func requests(stateid: LayoutStateid, dirty: DirtyRanges, knownSize: UInt64,
                                maxRanges: Int = Limits.maxCommitRanges) -> [LayoutCommitRequest] {
        guard !dirty.isEmpty else { return [] }
        let batches = stride(from: 0, to: dirty.ranges.count, by: maxRanges).map {
            Array(dirty.ranges[$0..<min($0 + maxRanges, dirty.ranges.count)])
        }
        let newSize: UInt64? = dirty.end > knownSize ? dirty.end : nil
        return batches.enumerated().map { i, ranges in
            LayoutCommitRequest(stateid: stateid, newSize: i == batches.count - 1 ? newSize : nil, ranges: ranges)
        }
    }
}

/// A commit by RDMA FLUSH (PROTOCOL.md §5.8): what to FLUSH, and what LAYOUTCOMMIT is left.
public enum FlushPlan {
    /// The server memory holding `dirty`, one span per piece of a dirty range inside an extent,
    /// each widened to whole pages of its extent (a FLUSH of a few more bytes costs nothing and
    /// ranges in one page merge), adjacent spans of one region merged. nil when an extent is
    /// not marked PERSISTENT_FLUSH or a dirty byte lies outside every extent.
    public static func spans(dirty: DirtyRanges, extents: [LayoutExtent], pageSize: UInt64 = UInt64(ChunkPlan.pageSize)) -> [RemoteSpan]? {
        var spans: [RemoteSpan] = []
        for r in dirty.ranges {
            var pos = r.offset
            let end = r.offset + r.length
            while pos < end {
                guard let e = extents.first(where: { $0.fileOffset <= pos && pos < $0.fileOffset + $0.length }),
                      e.flags.contains(.persistentFlush) else { return nil }
                let stop = min(end, e.fileOffset + e.length)
                let from = (pos - e.fileOffset) / pageSize * pageSize
                let to = min(e.length, (stop - e.fileOffset + pageSize - 1) / pageSize * pageSize)
                let span = RemoteSpan(address: e.remoteAddress + from, rkey: e.rkey, length: to - from)
                if let last = spans.last, last.rkey == span.rkey, last.address + last.length >= span.address {
                    let newEnd = max(last.address + last.length, span.address + span.length)
                    spans[spans.count - 1].length = newEnd - last.address
                } else {
                    spans.append(span)
                }
                pos = stop
            }
        }
        return spans
    }

    /// After the FLUSHes: the LAYOUTCOMMIT that makes the file's size cover the writes (NEW_SIZE,
    /// no ranges: a FLUSH already made the bytes durable), or nil when they did not grow it.
    public static func sizeCommit(stateid: LayoutStateid, dirty: DirtyRanges, knownSize: UInt64) -> LayoutCommitRequest? {
        guard !dirty.isEmpty, dirty.end > knownSize else { return nil }
        return LayoutCommitRequest(stateid: stateid, newSize: dirty.end, ranges: [])
    }
}

/// What the client does when LAYOUTGET does not give it a layout.
public enum LayoutRefusal: Sendable, Hashable {
    /// Ask again after `milliseconds` (TRY_LATER, within the retry budget).
    case retry(afterMilliseconds: UInt32)
    /// Move this I/O two-sided, and do not ask again for this file before `milliseconds`
    /// (TRY_LATER past the budget: a recall is taking long).
    case twoSidedFor(milliseconds: UInt32)
    /// Move this I/O two-sided; ask again for the next one (a transient limit or a race with
    /// the file's size).
    case twoSidedThisIO
    /// Never ask again for this file: the server will not grant one (not supported, denied,
    /// read-only, an unexpected status).
    case twoSidedForFile(reason: String)
    /// Not a refusal: the session is broken; fail the I/O.
    case fail

    /// The decision for LAYOUTGET failing with `error` on attempt `attempt` (0-based) of
    /// `maxAttempts`.
    public static func decide(_ error: ClientError, attempt: Int, maxAttempts: Int,
                              maxRetryDelayMs: UInt32 = 1000) -> LayoutRefusal {
        guard case let .status(status, _, retryAfterMs) = error else { return .fail }
        switch status {
        case .tryLater:
            let delay = max(retryAfterMs, 1)
            if attempt + 1 < maxAttempts && delay <= maxRetryDelayMs { return .retry(afterMilliseconds: delay) }
            return .twoSidedFor(milliseconds: max(delay, 100))
        case .tooMany, .invalidArgument, .noSpace:
            return .twoSidedThisIO
        case .notAuthenticated, .shuttingDown, .staleFile:
            return .fail
        default:
            return .twoSidedForFile(reason: "LAYOUTGET: \(status.summary)")
        }
    }
}
