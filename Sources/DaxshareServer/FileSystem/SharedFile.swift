import CLinux
import DaxsharePmem
import Glibc
import Logging
import Synchronization
import SystemPackage

/// Bytes of a file in its mapping (`SharedFile.mappedRange`): `count` bytes at `address`,
/// which the mapping holds while `mapping` is alive and its size is not cut (a memory region
/// on them keeps `mapping` as its owner). `address` is nil when `count` is 0. Until the
/// last copy of `read` goes (keep it with the RDMA WRITEs until they complete), the
/// server's own size changes wait before cutting the mapping.
public struct MappedRange: @unchecked Sendable {  // @unchecked: `address` is only handed to the NIC (a memory region), never dereferenced
    public var mapping: PmemMapping
    public var address: UnsafeMutableRawPointer?
    public var count: Int
    public var endOfFile: Bool
    public var read: NICRead?
}

/// One large READ the NIC is taking from a file's mapping, counted in the file's
/// `nicReads` from `mappedRange` until this goes.
public final class NICRead: Sendable {
    private let file: SharedFile
    init(_ file: SharedFile) { self.file = file }
    deinit { file.nicReads.end() }
}

/// What a read copied.
public struct ReadResult: Sendable, Equatable {
    /// Bytes copied: fewer than asked at end of file.
    public var count: Int
    /// The read reached the end of the file.
    public var endOfFile: Bool

    public init(count: Int, endOfFile: Bool) {
        self.count = count
        self.endOfFile = endOfFile
    }
}

/// Identifies a file on the server: `(st_dev, st_ino)`.
public struct FileKey: Hashable, Sendable, CustomStringConvertible {
    public let device: UInt64
    public let inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    public var description: String { "\(device):\(inode)" }
}

/// One open file on the server: ONE descriptor and ONE mapping, shared by
/// every client handle on it (`OpenFile`), whichever export or session it
/// came through. `FileTable` creates it on the first open and closes it
/// after the last handle closes.
///
/// One descriptor matters beyond economy: a file lease belongs to a
/// descriptor and is broken by any *other* open of the file, the server's
/// own included.
///
/// The mapping is for layouts (memory regions registered on it) and for
/// persisting what their one-sided writes stored; two-sided READ and WRITE use
/// pread/pwrite on the descriptor instead (see "Operations"). It covers the
/// file's bytes (past end of file a touch would SIGBUS) inside a larger
/// reservation, so it grows in place. Past the reservation the file is mapped
/// anew at a new base address (`mappingGeneration` counts those moves); a
/// copy still running on the old mapping keeps it alive until it finishes.
///
/// Locking: reads and writes hold `ioLock` shared; size changes, hole punches
/// and remaps hold it exclusively, so none of them runs under another. Another
/// *process* truncating the file cannot hurt pread/pwrite (a short read, or a
/// write that extends the file again); the few flushes through the mapping
/// clip to the size fstat reports and, while layouts exist, the lease
/// (issue 6) makes such a truncate wait.
// @unchecked: the mapping, its generation and the visible size live under ioLock; the rest is immutable or atomic.
public final class SharedFile: @unchecked Sendable {
    public let key: FileKey
    /// The one descriptor; O_RDWR unless the file could only be opened read-only.
    public let file: PmemFile
    /// Where the file was first opened ("export:path"), for logs.
    public let origin: String

    private let ioLock = ReadWriteLock()
    private var currentMapping: PmemMapping  // guarded by ioLock
    /// Whether the file is on DAX (its mapping took MAP_SYNC): then every byte the server
    /// makes durable is on the media before the fsync, which only has metadata left to do.
    private let onDAX: Bool
    private var generation = 0  // guarded by ioLock
    /// Set by size and block-map changes: fdatasync makes them durable.
    private let metadataDirty = Atomic<Bool>(false)
    /// Set when the visible-size attribute changed: that takes an fsync.
    private let attributesDirty = Atomic<Bool>(false)
    /// fsyncs done, for tests: whether an xattr reached the media cannot be
    /// observed without a crash, but whether it was fsynced can.
    let fullSynchronizations = Atomic<Int>(0)
    /// Whether `synchronizeInode` fell back to fsync(2) already (said once per process).
    private static let rangedSyncRefused = Atomic<Bool>(false)
    /// Whether an RW layout was ever prepared: only then can one-sided
    /// writes sit in the mapping for `flush` to persist.
    private let writableLayoutsGranted = Atomic<Bool>(false)
    /// Whether any layout was ever prepared: only then can a memory region map a page that a
    /// two-sided write must invalidate.
    private let layoutsPrepared = Atomic<Bool>(false)
    private let minimumReservation: Int
    private let logger: Logger
    /// Large READs whose RDMA WRITEs the NIC may still be taking from the mapping (`NICRead`),
    /// and size changes waiting for them (`withNICReadsDrained`): while one waits, READs are
    /// not offered the mapping, so the NIC never faults on a page the server itself cut away
    /// (which would fail the WRITE and close that client's connection).
    fileprivate let nicReads = NICReads()
    private let nicReadsBlocked = Atomic<Int>(0)

    // MARK: Layouts and leases (issues 5 and 6)
    //
    // Per-file layout state belongs here, beside the descriptor it leases:
    // the layouts granted (client, range, iomode, MRs on `mapping`), the
    // write lease on `file.descriptor` (`FileLease`, taken while layouts
    // exist), and whether a recall is in progress. Callers must recall
    // layouts before `setSize` down, `punchHole`, and before a remap moves
    // the base (`mappingGeneration` changes), since MRs point at addresses.

    /// The visible size while RW layouts reach past it (PROTOCOL.md §5.7): the
    /// file itself is longer then, so one-sided writes land in backed pages,
    /// but STAT and READ honour this. Also kept in an extended attribute so a
    /// restart trims the file back. Guarded by ioLock.
    private var visibleOverride: Int?
    /// Layouts with extents past the visible size; the file is trimmed back
    /// to the visible size when the last one ends. Guarded by ioLock.
    private var pastEndLayouts = 0
    static let visibleSizeAttribute = "user.daxshare.visible_size"
    /// Where the server's own metadata changes go through once the file has layout state
    /// (`FileLayouts`, which may hold a delegation that such a change would break).
    private let ownChanges = Mutex<(any OwnMetadataChanges)?>(nil)

    init(key: FileKey, file: PmemFile, origin: String, minimumReservation: Int, logger: Logger) throws(FileSystemError) {
        self.key = key
        self.file = file
        self.origin = origin
        self.minimumReservation = minimumReservation
        self.logger = logger
        do throws(PmemError) {
            // A visible size left behind by a crash during an RW layout past
            // end of file: the bytes beyond it were never committed.
            if let visible = Self.savedVisibleSize(file.descriptor), visible < (try file.size()) {
                try file.setSize(visible)
                try file.synchronizeMetadata()
                logger.notice("trimmed \(origin) back to its committed size \(visible) after a restart")
            }
            _ = fremovexattr(file.descriptor.rawValue, Self.visibleSizeAttribute)
            let size = try file.size()
            currentMapping = try file.map(
                length: size, capacity: Self.reservation(for: size, minimum: minimumReservation), logger: logger)
            onDAX = currentMapping.isPmem
        } catch {
            throw FileSystemError(error, operation: "map(\(origin))")
        }
    }

    /// Unmaps and closes; the table calls this after the last handle closed.
    func close() {
        ioLock.withWriteLock { currentMapping.unmap() }
        try? file.close()
    }

    /// The shared descriptor (for the lease code and the lease-break lookup).
    public var descriptor: FileDescriptor { file.descriptor }

    /// The current mapping. Its base address holds until the file grows past
    /// the reservation, i.e. while `mappingGeneration` stays the same.
    public var mapping: PmemMapping { ioLock.withReadLock { currentMapping } }

    /// How many times the file has been mapped anew at a different base.
    public var mappingGeneration: Int { ioLock.withReadLock { generation } }

    /// Whether stores plus `flush` are durable without msync (MAP_SYNC on DAX).
    public var isPmem: Bool { mapping.isPmem }

    // MARK: - Operations (OpenFile checks permissions before calling these)
    //
    // Two-sided data moves with pread/pwrite on the shared descriptor, never
    // through the mapping: on DAX the kernel copies with machine-check-safe
    // routines (a poisoned line is EIO) and checks the size under its own
    // locks (a range another process truncated away is a short count), where a
    // CPU copy through the mapping would take SIGBUS and the whole server with
    // it. Offsets and lengths arrive as the wire's UInt64 and are checked here,
    // so no value a client sends can trap.

    func status() throws(FileSystemError) -> FileStatus {
        do throws(PmemError) {
            var status = FileStatus(try file.status())
            if let visible = ioLock.withReadLock({ visibleOverride }) { status.size = Int64(visible) }
            return status
        } catch {
            throw FileSystemError(error, operation: "fstat(\(origin))")
        }
    }

    /// Copies up to `buffer.count` bytes from `offset` with pread: fewer at
    /// the visible end of file, none at or past it. A read cut short because
    /// another process truncated the file reports end of file.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> ReadResult {
        try read(at: offset, count: buffer.count, into: buffer)
    }

    /// `read` of `count` bytes into a buffer that may be longer. With room for one byte more,
    /// that byte is read too and says whether the read reached the end of the file, without
    /// the fstat a READ otherwise costs (a system call per two-sided READ); while RW layouts
    /// reach past the visible size, that size says it.
    func read(at offset: UInt64, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> ReadResult {
        precondition(count >= 0 && count <= buffer.count, "read of \(count) bytes into \(buffer.count)")
        return try ioLock.withReadLock { () throws(FileSystemError) -> ReadResult in
            // With a byte to spare (and no visible size to honour), the byte after the range
            // stands in for the file's size.
            let probe = visibleOverride == nil && count < buffer.count && offset < UInt64(Int.max - count)
            let end = probe ? Int.max : min(try currentSize(), visibleOverride ?? .max)
            guard offset < UInt64(end) else { return ReadResult(count: 0, endOfFile: true) }
            let start = Int(offset)  // < end <= Int.max
            let wanted = probe ? count + 1 : min(count, end - start)
            let got: Int
            do throws(PmemError) {
                got = try file.read(at: start, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<wanted]))
            } catch {
                throw FileSystemError(error, operation: "pread(\(origin))")
            }
            if probe { return got > count ? ReadResult(count: count, endOfFile: false) : ReadResult(count: got, endOfFile: true) }
            return ReadResult(count: got, endOfFile: got < wanted || start + got == end)
        }
    }

    /// Where up to `count` bytes at `offset` lie in the file's MAP_SYNC mapping, for a
    /// two-sided READ whose RDMA WRITE the NIC takes straight from pmem (no pread into a
    /// chunk first): fewer at end of file or at a hole. The file's size comes from fstat (and
    /// the visible size), so a range another process truncated away is never offered: a NIC
    /// faulting on it would break the connection. Nil where the mapping does not hold the
    /// bytes (a page-cache mapping, a hole at `offset`, a file grown past the mapping's
    /// reservation): pread then.
    func mappedRange(at offset: UInt64, count: Int) throws(FileSystemError) -> MappedRange? {
        // Counted in before looking at the blocking count, as `withNICReadsDrained` blocks
        // before looking at this one: one of the two sees the other.
        nicReads.begin()
        let read = NICRead(self)
        guard nicReadsBlocked.load(ordering: .sequentiallyConsistent) == 0 else { return nil }
        let found = try ioLock.withReadLock { () throws(FileSystemError) in try locateMapped(offset, count, grow: false) }
        if case var .found(range) = found {
            range.read = read
            return range
        }
        guard case .short = found else { return nil }
        // The file grew since it was mapped (a WRITE's pwrite does not grow the mapping): grow
        // it in place, which keeps the base address that layouts' regions point into.
        let grown = try ioLock.withWriteLock { () throws(FileSystemError) in try locateMapped(offset, count, grow: true) }
        if case var .found(range) = grown {
            range.read = read
            return range
        }
        return nil
    }

    /// How long a size change waits for the NIC's READs from the mapping: a client that stalls
    /// its own queue pair longer only loses its connection (its READ's WRITE faults).
    static let nicReadsWait = Duration.seconds(1)

    /// Runs `body`, which may cut the mapping (`setSize`, and what calls it), once the NIC has
    /// finished the large READs it is taking from it, offering the mapping to no new ones
    /// meanwhile; the wait suspends, so an event loop that runs the caller goes on polling the
    /// completions that end those READs. What a client's SET_SIZE and OPEN+TRUNCATE take:
    /// `setSize` inside then finds none left and does not wait.
    public func afterNICReads<T, E: Error>(_ body: () async throws(E) -> T) async throws(E) -> T {
        nicReadsBlocked.add(1, ordering: .sequentiallyConsistent)
        defer { nicReadsBlocked.subtract(1, ordering: .sequentiallyConsistent) }
        await nicReads.drained(within: Self.nicReadsWait)
        return try await body()
    }

    /// `afterNICReads` for a synchronous `setSize` whose caller did not go through it: the wait
    /// blocks the thread, polling. Short (a transfer on the wire) and rare (a shrink during a
    /// large READ), but on an event loop's thread it would sit out the deadline if the READ's
    /// completion is that loop's to poll: client requests go through `afterNICReads`, and then
    /// find nothing left to wait for here.
    private func withNICReadsDrained<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        nicReadsBlocked.add(1, ordering: .sequentiallyConsistent)
        defer { nicReadsBlocked.subtract(1, ordering: .sequentiallyConsistent) }
        let deadline = ContinuousClock.now + Self.nicReadsWait
        while nicReads.inFlight > 0 && ContinuousClock.now < deadline {
            usleep(1000)
        }
        return try body()
    }

    private enum Located { case found(MappedRange), short, unmapped }

    /// `mappedRange`'s work, under ioLock (exclusively when `grow`).
    private func locateMapped(_ offset: UInt64, _ count: Int, grow: Bool) throws(FileSystemError) -> Located {
        let size = try currentSize()
        let end = min(size, visibleOverride ?? .max)
        guard offset < UInt64(end) else {
            return .found(MappedRange(mapping: currentMapping, address: nil, count: 0, endOfFile: true))
        }
        let start = Int(offset)  // < end <= Int.max
        guard currentMapping.isPmem, currentMapping.fileOffset == 0, let base = currentMapping.baseAddress else { return .unmapped }
        // Only bytes the file holds in written blocks. A NIC faulting on a hole or on a
        // preallocated (unwritten) page maps the zero page into this process's page tables,
        // and ext4 DAX may leave it there when a write fills the page later (see
        // `PmemMapping.dropPageMappings`): the next READ would send zeros. pread has no such
        // trap, so a hole's bytes go through a chunk.
        let hole: Int?
        do throws(PmemError) { hole = try file.nextHole(from: start) } catch {
            throw FileSystemError(error, operation: "lseek(\(origin), SEEK_HOLE)")
        }
        guard let hole, hole > start else { return .unmapped }
        let n = min(count, end - start, hole - start)
        if n > currentMapping.length - start {
            guard size <= currentMapping.capacity else { return .unmapped }
            guard grow else { return .short }
            do throws(PmemError) { try currentMapping.resize(to: size) } catch {
                throw FileSystemError(error, operation: "remap(\(origin), \(size))")
            }
        }
        return .found(MappedRange(mapping: currentMapping, address: base + start, count: n, endOfFile: start + n == end))
    }

    /// Writes `bytes` at `offset` with pwrite, first growing the file with
    /// zeroed, allocated blocks (fallocate) when the write ends past end of
    /// file. With `writeThrough` the bytes, and any size change, are durable
    /// on return: fdatasync, for the fence after the kernel's flushing copy
    /// and for the extent conversion the write may have made; fsync when the
    /// visible size (an extended attribute, which fdatasync skips) moved.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, writeThrough: Bool) throws(FileSystemError) {
        let (end64, overflow) = offset.addingReportingOverflow(UInt64(bytes.count))
        guard !overflow else {
            throw FileSystemError(.invalidArgument, operation: "write(\(origin)) at \(offset)+\(bytes.count) wraps")
        }
        guard end64 <= UInt64(Int.max) else {
            throw FileSystemError(.fileTooLarge, operation: "write(\(origin)) at \(offset)+\(bytes.count)")
        }
        if bytes.isEmpty { return }  // as pwrite: an empty write does not extend the file
        let start = Int(offset), end = Int(end64)
        // A concurrent shrink can land between growing and writing; try again then.
        for _ in 0..<3 {
            let written = try ioLock.withReadLock { () throws(FileSystemError) -> Bool in
                guard end <= (try currentSize()) else { return false }
                do throws(PmemError) {
                    try file.write(bytes, at: start)
                } catch {
                    throw FileSystemError(error, operation: "pwrite(\(origin))")
                }
                // Layouts over these pages must see what pwrite wrote, not a zero page they
                // mapped before (see `PmemMapping.dropPageMappings`).
                if layoutsPrepared.load(ordering: .acquiring) {
                    currentMapping.dropPageMappings(offset: start, count: end - start)
                }
                return true
            }
            if written {
                try ioLock.withWriteLock { () throws(FileSystemError) in
                    if let visible = visibleOverride, end > visible { try setVisible(end) }
                }
                if writeThrough {
                    metadataDirty.store(true, ordering: .releasing)
                    try synchronizeMetadataIfNeeded()
                }
                return
            }
            try ioLock.withWriteLock { () throws(FileSystemError) in
                let size = try currentSize()
                if end > size { try allocate(from: size, to: end) }
            }
        }
        throw FileSystemError(.ioError, operation: "write(\(origin)): the file kept shrinking under the write")
    }

    /// Sets the visible size: growing exposes zeroed, allocated blocks
    /// (fallocate), so no stale data is ever exposed; shrinking unmaps the
    /// tail, then truncates. While RW layouts reach past the visible size
    /// (`visibleOverride`) the file itself stays long enough for them and the
    /// override moves instead. Durable on return.
    func setSize(_ newSize: UInt64) throws(FileSystemError) {
        guard newSize <= UInt64(Int.max) else {
            throw FileSystemError(.fileTooLarge, operation: "setSize(\(origin), \(newSize))")
        }
        let target = Int(newSize)
        try withNICReadsDrained { () throws(FileSystemError) in try ioLock.withWriteLock { () throws(FileSystemError) in
            let size = try currentSize()
            if let visible = visibleOverride {
                try setVisibleSize(target, from: visible, fileSize: size)
            } else if target > size {
                try allocate(from: size, to: target)
            } else if target < size {
                if currentMapping.length > target { try adjustMapping(to: target) }
                try truncate(to: target)
                metadataDirty.store(true, ordering: .releasing)
            }
        } }
        try synchronizeMetadataIfNeeded()
    }

    /// SET_SIZE while layouts reach past the visible size `visible`: the file
    /// (`fileSize` bytes) keeps its length, so those layouts stay backed.
    /// A shrink punches out [newSize, visible), the bytes it cuts off, so a
    /// later grow exposes zeros (callers recall the layouts over them first;
    /// a later layout there is backed again by `prepareLayout`); a grow
    /// extends the file if it must. Holds ioLock exclusively.
    ///
    /// Bytes in [visible, newSize) inside the file are zeros unless a live RW
    /// layout wrote them there: those are that layout's, as two-sided and
    /// one-sided access to the same bytes are not ordered (PROTOCOL.md §4.20).
    private func setVisibleSize(_ newSize: Int, from visible: Int, fileSize: Int) throws(FileSystemError) {
        if newSize < visible {
            let cutEnd = min(visible, fileSize)
            if newSize < cutEnd {
                do throws(PmemError) {
                    try file.punchHole(offset: newSize, length: cutEnd - newSize)
                } catch {
                    throw FileSystemError(error, operation: "fallocate(PUNCH_HOLE, \(origin), \(newSize)..<\(cutEnd))")
                }
                metadataDirty.store(true, ordering: .releasing)
            }
        } else if newSize > fileSize {
            try allocate(from: fileSize, to: newSize)
        }
        if newSize != visible { try setVisible(newSize) }
    }

    /// Frees the blocks of a range; it reads back as zeros, the size stays.
    /// The part past end of file is ignored. Durable on return (fdatasync).
    func punchHole(offset: UInt64, length: UInt64) throws(FileSystemError) {
        let (end64, overflow) = offset.addingReportingOverflow(length)
        guard !overflow else {
            throw FileSystemError(.invalidArgument, operation: "punchHole(\(origin)) \(offset)+\(length) wraps")
        }
        try ioLock.withWriteLock { () throws(FileSystemError) in
            let size = try currentSize()
            guard offset < UInt64(size) else { return }
            let start = Int(offset), end = Int(min(end64, UInt64(size)))
            guard end > start else { return }
            do throws(PmemError) {
                try file.punchHole(offset: start, length: end - start)
            } catch {
                throw FileSystemError(error, operation: "fallocate(PUNCH_HOLE, \(origin))")
            }
            metadataDirty.store(true, ordering: .releasing)
        }
        try synchronizeMetadataIfNeeded()
    }

    /// ALLOCATE: zeroed, allocated blocks for `[offset, offset + length)`
    /// (fallocate; bytes already there stay). Without `keepSize` a range that
    /// ends past the visible size grows it to the range's end, as SET_SIZE up
    /// does (while RW layouts reach past the visible size the file is longer
    /// already and only the visible size moves); a failed allocation leaves
    /// the size as it was. With `keepSize` the size stays, whatever the range.
    /// Durable on return: fdatasync, fsync when the visible size moved.
    func allocate(offset: UInt64, length: UInt64, keepSize: Bool) throws(FileSystemError) {
        let (end64, overflow) = offset.addingReportingOverflow(length)
        guard !overflow else {
            throw FileSystemError(.invalidArgument, operation: "allocate(\(origin)) \(offset)+\(length) wraps")
        }
        guard end64 <= UInt64(Int.max) else {
            throw FileSystemError(.fileTooLarge, operation: "allocate(\(origin)) \(offset)+\(length)")
        }
        guard length > 0 else { return }
        let start = Int(offset), end = Int(end64)
        try ioLock.withWriteLock { () throws(FileSystemError) in
            if keepSize {
                do throws(PmemError) {
                    try file.allocate(offset: start, length: end - start, keepSize: true)
                } catch {
                    throw FileSystemError(error, operation: "fallocate(KEEP_SIZE, \(origin), \(start)..<\(end))")
                }
                metadataDirty.store(true, ordering: .releasing)
                return
            }
            try allocate(from: start, to: end, restoringSize: try currentSize())
            if let visible = visibleOverride, end > visible { try setVisible(end) }
        }
        try synchronizeMetadataIfNeeded()
    }

    /// SET_ATTRIBUTES on the open file: `fchmod` and `futimens` on the shared
    /// descriptor, as the server's own change (a delegation is given up around
    /// it, so no layout is recalled), then fsync. Returns the new status.
    func setAttributes(_ change: FileAttributeChange) throws(FileSystemError) -> FileStatus {
        try ownChange { () throws(FileSystemError) in
            do throws(PmemError) {
                if let mode = change.mode { try file.setPermissions(FilePermissions(rawValue: mode)) }
                if change.changesTimes {
                    let times = change.timespecs
                    try file.setTimes(access: times.access, modification: times.modification)
                }
            } catch {
                throw FileSystemError(error, operation: "fchmod/futimens(\(origin))")
            }
        }
        try synchronizeAll()
        return try status()
    }

    /// FLUSH: makes a range durable, then the file's size and times (`fsync`).
    /// `length` 0 means to the end; any range is clipped to the visible size,
    /// and one that wraps past 2^64 to it as well.
    ///
    /// Two-sided writes need only the fsync: pwrite already copied them to
    /// pmem with flushing stores, and fsync adds the fence and the block map.
    /// One-sided writes sit in the mapping, possibly in CPU caches, and the
    /// fsync here writes back no page (`synchronizeAll`), so on pmem the range
    /// is `pmem_persist`ed through the mapping, but only on a file that ever
    /// had an RW layout, and clipped to the size fstat reports under the
    /// lock: a cache flush of a page past end of file would raise SIGBUS.
    /// Another process truncating between that fstat and the flush could
    /// still do it; while layouts exist the lease holds such a truncate back.
    /// Off pmem, fsync writes back the mapping's dirty pages itself.
    func flush(offset: UInt64, length: UInt64) throws(FileSystemError) {
        if writableLayoutsGranted.load(ordering: .acquiring) {
            try ioLock.withReadLock { () throws(FileSystemError) in
                guard currentMapping.isPmem else { return }
                let limit = min(currentMapping.length, try currentSize(), visibleOverride ?? .max)
                guard offset < UInt64(limit) else { return }
                let (end, overflow) = offset.addingReportingOverflow(length)
                let clippedEnd = length == 0 || overflow ? limit : Int(min(end, UInt64(limit)))
                do throws(PmemError) {
                    try currentMapping.persist(offset: Int(offset), length: clippedEnd - Int(offset))
                } catch {
                    throw FileSystemError(error, operation: "persist(\(origin))")
                }
            }
        }
        try synchronizeAll()
    }

    // MARK: - Layouts (PROTOCOL.md §5)

    /// Makes a layout on `[start, end)` possible: maps the file, and for an RW
    /// layout that reaches past the visible size makes the layout's own bytes
    /// past it backed with zeroed blocks (fallocate of [max(start, visible),
    /// end) only), extending the file sparsely to `end` when it must (the gap
    /// before `start` stays a hole, so a small layout far past end of file
    /// costs its own size, not its offset). The visible size stays where it
    /// was. Returns the mapping to register (it covers `[0, end)`) and whether
    /// the layout reaches past the visible size; such a layout must end with
    /// `layoutEnded(pastEnd: true)`.
    public func prepareLayout(start: Int, end: Int, writable: Bool) throws(FileSystemError) -> (mapping: PmemMapping, pastEnd: Bool) {
        guard start >= 0, start <= end else {
            throw FileSystemError(.invalidArgument, operation: "prepareLayout(\(origin), \(start)..<\(end))")
        }
        return try ioLock.withWriteLock { () throws(FileSystemError) -> (PmemMapping, Bool) in
            let size = try currentSize()
            if size != currentMapping.length { try adjustMapping(to: size) }
            layoutsPrepared.store(true, ordering: .releasing)
            if writable { writableLayoutsGranted.store(true, ordering: .releasing) }
            let visible = visibleOverride ?? size
            guard writable, end > visible else { return (currentMapping, false) }
            let firstPastEnd = visibleOverride == nil
            if firstPastEnd { try setVisible(size) }
            do throws(FileSystemError) {
                // fallocate's mode 0 extends the size to `end` past end of file,
                // leaving [size, from) a hole: the sparse extension.
                try allocate(from: max(start, visible), to: end, restoringSize: size)
                try adjustMapping(to: max(size, end))
            } catch {
                if firstPastEnd && pastEndLayouts == 0 {  // as if this layout was never asked for
                    visibleOverride = nil
                    removeVisibleAttribute()
                }
                throw error
            }
            pastEndLayouts += 1
            return (currentMapping, true)
        }
    }

    /// LAYOUTCOMMIT: persists the ranges (clipped to the file's real size, so
    /// a flush never touches a page past end of file), raises the visible size
    /// to `newSize`, sets mtime and ctime to now when bytes were written or the
    /// size grew (a NIC's stores do not), makes size, times and the visible
    /// size durable (fsync), and returns the visible size.
    /// `touch` (TOUCH, §5.8): set the times as if bytes were written (they were, by RDMA FLUSH).
    public func commitLayout(ranges: [(offset: Int, length: Int)], newSize: Int?, touch: Bool = false) throws(FileSystemError) -> Int {
        try ioLock.withReadLock { () throws(FileSystemError) in
            let limit = min(currentMapping.length, try currentSize())
            for r in ranges where r.offset >= 0 && r.length > 0 && r.offset < limit {
                let count = min(r.length, limit - r.offset)
                do throws(PmemError) {
                    try currentMapping.persist(offset: r.offset, length: count)
                } catch {
                    throw FileSystemError(error, operation: "persist(\(origin))")
                }
            }
        }
        let (visible, grew) = try ioLock.withWriteLock { () throws(FileSystemError) -> (Int, Bool) in
            let size = try currentSize()
            var grew = false
            if let newSize {
                if let v = visibleOverride {
                    if newSize > v, min(newSize, size) > v {
                        try setVisible(min(newSize, size))
                        grew = true
                    }
                } else if newSize > size {
                    try allocate(from: size, to: newSize)
                    grew = true
                }
            }
            if let v = visibleOverride { return (v, grew) }
            return (try currentSize(), grew)
        }
        if !ranges.isEmpty || grew || touch {
            try ownChange { () throws(FileSystemError) in
                do throws(PmemError) {
                    try file.touchModificationTime()
                } catch {
                    throw FileSystemError(error, operation: "futimens(\(origin))")
                }
            }
        }
        try synchronizeAll()
        return visible
    }

    /// A layout ended (returned, revoked, or its connection gone) after its
    /// memory regions were deregistered. When the last layout past the
    /// visible size ends, the file is trimmed back to the visible size.
    ///
    /// It does not wait for the NIC's READs from the mapping (`mappedRange`): they never reach
    /// past the visible size, and the trim cuts only beyond it (the mapping shrinks in place).
    public func layoutEnded(pastEnd: Bool) {
        guard pastEnd else { return }
        ioLock.withWriteLock {
            pastEndLayouts -= 1
            guard pastEndLayouts == 0, let visible = visibleOverride else { return }
            do throws(FileSystemError) {
                try adjustMapping(to: visible)
                // Trimming the room a layout had past the end changes no byte anyone wrote: the
                // times stay as they were (a client's futimens after its writes, tar's, survives).
                var before = Glibc.stat()
                let hadTimes = fstat(file.descriptor.rawValue, &before) == 0
                try truncate(to: visible)
                if hadTimes {
                    try ownChange { () throws(FileSystemError) in
                        do throws(PmemError) {
                            try file.setTimes(access: before.st_atim, modification: before.st_mtim)
                        } catch {
                            throw FileSystemError(error, operation: "futimens(\(origin))")
                        }
                    }
                }
                do throws(PmemError) {
                    try synchronizeInode(dataSync: true)
                } catch {
                    throw FileSystemError(error, operation: "fdatasync(\(origin))")
                }
                visibleOverride = nil
                removeVisibleAttribute()
            } catch {
                logger.error("could not trim \(origin) back to \(visible) bytes: \(error)")
            }
        }
    }

    /// Records the visible size, in memory and in the extended attribute. Holds ioLock exclusively.
    private func setVisible(_ size: Int) throws(FileSystemError) {
        var value = UInt64(size).littleEndian
        try ownChange { () throws(FileSystemError) in
            let rc = withUnsafeBytes(of: &value) {
                fsetxattr(file.descriptor.rawValue, Self.visibleSizeAttribute, $0.baseAddress, 8, 0)
            }
            if rc != 0 { throw FileSystemError(errno: Errno(rawValue: errno), operation: "fsetxattr(\(origin))") }
        }
        visibleOverride = size
        attributesDirty.store(true, ordering: .releasing)
    }

    /// The visible size saved in the extended attribute, if any (internal for tests).
    static func savedVisibleSize(_ fd: FileDescriptor) -> Int? {
        var value: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &value) { fgetxattr(fd.rawValue, visibleSizeAttribute, $0.baseAddress, 8) }
        return n == 8 ? Int(UInt64(littleEndian: value)) : nil
    }

    // MARK: - The server's own metadata changes

    /// Routes the server's own metadata changes (ftruncate, futimens, the visible-size
    /// attribute) through `changes` from now on. The registry calls this when it makes the
    /// file's layout state.
    func routeOwnChanges(through changes: any OwnMetadataChanges) {
        ownChanges.withLock { $0 = changes }
    }

    private func ownChange(_ change: () throws(FileSystemError) -> Void) throws(FileSystemError) {
        guard let changes = ownChanges.withLock({ $0 }) else { return try change() }
        try changes.ownChange(expectingUnlink: false, change)
    }

    /// ftruncate(2) to `size`. Holds ioLock exclusively.
    private func truncate(to size: Int) throws(FileSystemError) {
        try ownChange { () throws(FileSystemError) in
            do throws(PmemError) {
                try file.setSize(size)
            } catch {
                throw FileSystemError(error, operation: "ftruncate(\(origin))")
            }
        }
    }

    /// Drops the visible-size attribute (best effort: a stale one only trims at the next open
    /// what no layout reaches any more). Holds ioLock exclusively.
    private func removeVisibleAttribute() {
        try? ownChange { () throws(FileSystemError) in
            _ = fremovexattr(file.descriptor.rawValue, Self.visibleSizeAttribute)
        }
    }

    // MARK: - Internals

    private func currentSize() throws(FileSystemError) -> Int {
        do throws(PmemError) {
            return try file.size()
        } catch {
            throw FileSystemError(error, operation: "fstat(\(origin))")
        }
    }

    /// fallocate(size..<end): zeroed blocks, size becomes `end`. Holds ioLock exclusively.
    private func allocate(from size: Int, to end: Int) throws(FileSystemError) {
        try allocate(from: size, to: end, restoringSize: size)
    }

    /// fallocate(from..<end), mode 0: zeroed blocks, and the size becomes `end`
    /// if it was smaller. Holds ioLock exclusively. A failed allocation (ENOSPC)
    /// is undone: the size is `size` again, which frees what it allocated past
    /// it, so one oversized request cannot fill the device for every client.
    private func allocate(from start: Int, to end: Int, restoringSize size: Int) throws(FileSystemError) {
        guard end > start else { return }
        do throws(PmemError) {
            try file.allocate(offset: start, length: end - start)
        } catch {
            do throws(FileSystemError) {
                if try currentSize() > size { try truncate(to: size) }
            } catch {
                logger.error("could not trim \(origin) back to \(size) bytes after a failed fallocate: \(error)")
            }
            throw FileSystemError(error, operation: "fallocate(\(origin), \(start)..<\(end))")
        }
        metadataDirty.store(true, ordering: .releasing)
    }

    /// Makes the mapping cover `size` bytes, in place if the reservation
    /// allows, else by mapping the file anew. Holds ioLock exclusively.
    private func adjustMapping(to size: Int) throws(FileSystemError) {
        if size == currentMapping.length { return }
        do throws(PmemError) {
            if size <= currentMapping.capacity {
                try currentMapping.resize(to: size)
                return
            }
            let reservation = Self.reservation(for: size, minimum: minimumReservation)
            currentMapping = try file.map(length: size, capacity: reservation, logger: logger)
            generation += 1
            logger.info(
                "file outgrew its reserved address space; mapped anew",
                metadata: ["file": "\(origin)", "size": "\(size)", "reservation": "\(reservation)"])
        } catch {
            throw FileSystemError(error, operation: "remap(\(origin), \(size))")
        }
    }

    /// Makes pending size and block-map changes durable: fdatasync, or fsync
    /// when the visible-size attribute changed too (fdatasync does not write
    /// an xattr-only inode change).
    private func synchronizeMetadataIfNeeded() throws(FileSystemError) {
        if attributesDirty.load(ordering: .acquiring) { return try synchronizeAll() }
        guard metadataDirty.exchange(false, ordering: .acquiringAndReleasing) else { return }
        do throws(PmemError) {
            try synchronizeInode(dataSync: true)
        } catch {
            metadataDirty.store(true, ordering: .releasing)
            throw FileSystemError(error, operation: "fdatasync(\(origin))")
        }
    }

    /// fsync (`dataSync` false) or fdatasync. On DAX the data is durable already (`persist`
    /// through the mapping, or `pwrite`'s flushing stores), so the sync covers no page
    /// (`PmemFile.synchronizeMetadataAndTimes`, `synchronizeSizeAndBlocks`): a whole-file one
    /// would flush every page written through the mapping again and write-protect it, unmapping
    /// it from the layouts' on-demand regions, whose next RDMA WRITE to it would fault it back in.
    private func synchronizeInode(dataSync: Bool) throws(PmemError) {
        guard onDAX else {
            if dataSync { try file.synchronizeMetadata() } else { try file.synchronize() }
            return
        }
        let ranged = dataSync ? try file.synchronizeSizeAndBlocks() : try file.synchronizeMetadataAndTimes()
        if !ranged, !Self.rangedSyncRefused.exchange(true, ordering: .relaxed) {
            logger.notice("io_uring is unavailable: syncs use fsync(2) and fdatasync(2), which write back and write-protect the mapping's pages")
        }
    }

    /// fsync: data, size, times and extended attributes (`synchronizeInode`).
    private func synchronizeAll() throws(FileSystemError) {
        metadataDirty.store(false, ordering: .releasing)
        attributesDirty.store(false, ordering: .releasing)
        do throws(PmemError) {
            try synchronizeInode(dataSync: false)
            fullSynchronizations.add(1, ordering: .relaxed)
        } catch {
            metadataDirty.store(true, ordering: .releasing)
            attributesDirty.store(true, ordering: .releasing)
            throw FileSystemError(error, operation: "fsync(\(origin))")
        }
    }

    /// Address space to reserve for a file of `size` bytes: room to double.
    static func reservation(for size: Int, minimum: Int) -> Int {
        let (doubled, overflow) = size.multipliedReportingOverflow(by: 2)
        return max(minimum, overflow ? size : doubled)
    }
}
