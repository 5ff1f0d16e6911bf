import CLinux
import DaxsharePmem
import Glibc
import Logging
import Synchronization
import SystemPackage

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
/// The mapping covers exactly the file's bytes (past end of file a touch
/// would SIGBUS) inside a larger reservation, so it grows in place. Past
/// the reservation the file is mapped anew at a new base address
/// (`mappingGeneration` counts those moves); a copy still running on the
/// old mapping keeps it alive until it finishes.
///
/// Locking: copies hold `ioLock` shared; size changes, hole punches and
/// remaps hold it exclusively, so no copy ever runs on a range being cut.
/// Another *process* truncating the file under a copy would still raise
/// SIGBUS; the lease (issue 6) is what makes such a truncate wait.
public final class SharedFile: @unchecked Sendable {
    public let key: FileKey
    /// The one descriptor; O_RDWR unless the file could only be opened read-only.
    public let file: PmemFile
    /// Where the file was first opened ("export:path"), for logs.
    public let origin: String

    private let ioLock = ReadWriteLock()
    private var currentMapping: PmemMapping  // guarded by ioLock
    private var generation = 0  // guarded by ioLock
    /// Set by size and block-map changes; `flush` then adds an fdatasync.
    private let metadataDirty = Atomic<Bool>(false)
    private let minimumReservation: Int
    private let logger: Logger

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

    func status() throws(FileSystemError) -> FileStatus {
        do throws(PmemError) {
            var status = FileStatus(try file.status())
            if let visible = ioLock.withReadLock({ visibleOverride }) { status.size = Int64(visible) }
            return status
        } catch {
            throw FileSystemError(error, operation: "fstat(\(origin))")
        }
    }

    /// Copies up to `buffer.count` bytes from `offset`: fewer at end of
    /// file, none at or past it.
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> ReadResult {
        guard offset >= 0 else { throw FileSystemError(.invalidArgument, operation: "read(\(origin)) at \(offset)") }
        // The size on disk wins: another process may have grown or cut the file.
        let size = try currentSize()
        if size != mapping.length {
            try ioLock.withWriteLock { () throws(FileSystemError) in try adjustMapping(to: try currentSize()) }
        }
        return try ioLock.withReadLock { () throws(FileSystemError) -> ReadResult in
            let length = min(currentMapping.length, visibleOverride ?? .max)
            guard offset < length else { return ReadResult(count: 0, endOfFile: true) }
            let count = min(buffer.count, length - offset)
            if count > 0 {
                do throws(PmemError) {
                    try currentMapping.copyOut(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
                } catch {
                    throw FileSystemError(error, operation: "read(\(origin))")
                }
            }
            return ReadResult(count: count, endOfFile: offset + count == length)
        }
    }

    /// Copies `bytes` in at `offset`, first growing the file with zeroed
    /// blocks (fallocate) and the mapping when the write ends past end of
    /// file. With `writeThrough` the bytes, and any size change, are durable
    /// on return.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, writeThrough: Bool) throws(FileSystemError) {
        guard offset >= 0, offset <= Int.max - bytes.count else {
            throw FileSystemError(.invalidArgument, operation: "write(\(origin)) at \(offset)+\(bytes.count)")
        }
        let end = offset + bytes.count
        // A concurrent shrink can land between growing and copying; try again then.
        for _ in 0..<3 {
            let copied = try ioLock.withReadLock { () throws(FileSystemError) -> Bool in
                guard end <= currentMapping.length else { return false }
                do throws(PmemError) {
                    try currentMapping.copyIn(bytes, at: offset, persist: writeThrough)
                } catch {
                    throw FileSystemError(error, operation: "write(\(origin))")
                }
                return true
            }
            if copied {
                try ioLock.withWriteLock { () throws(FileSystemError) in
                    if let visible = visibleOverride, end > visible { try setVisible(end) }
                }
                if writeThrough { try synchronizeMetadataIfNeeded() }
                return
            }
            try ioLock.withWriteLock { () throws(FileSystemError) in
                let size = try currentSize()
                if end > size { try allocate(from: size, to: end) }
                try adjustMapping(to: max(size, end))
            }
        }
        throw FileSystemError(.ioError, operation: "write(\(origin)): the file kept shrinking under the write")
    }

    /// Sets the size: growing allocates zeroed blocks (fallocate), so no
    /// stale data is ever exposed; shrinking unmaps the tail, then
    /// truncates. The new size is durable on return (fdatasync).
    func setSize(_ newSize: Int) throws(FileSystemError) {
        guard newSize >= 0 else { throw FileSystemError(.invalidArgument, operation: "setSize(\(origin), \(newSize))") }
        try ioLock.withWriteLock { () throws(FileSystemError) in
            let size = try currentSize()
            if newSize > size {
                try allocate(from: size, to: newSize)
                try adjustMapping(to: newSize)
            } else if newSize < size {
                try adjustMapping(to: newSize)
                do throws(PmemError) {
                    try file.setSize(newSize)
                } catch {
                    throw FileSystemError(error, operation: "ftruncate(\(origin))")
                }
                metadataDirty.store(true, ordering: .releasing)
            }
        }
        try synchronizeMetadataIfNeeded()
    }

    /// Frees the blocks of a range; it reads back as zeros, the size stays.
    /// Durable on return (fdatasync).
    func punchHole(offset: Int, length: Int) throws(FileSystemError) {
        guard offset >= 0, length >= 0, offset <= Int.max - length else {
            throw FileSystemError(.invalidArgument, operation: "punchHole(\(origin)) \(offset)+\(length)")
        }
        try ioLock.withWriteLock { () throws(FileSystemError) in
            do throws(PmemError) {
                try file.punchHole(offset: offset, length: length)
            } catch {
                throw FileSystemError(error, operation: "fallocate(PUNCH_HOLE, \(origin))")
            }
            metadataDirty.store(true, ordering: .releasing)
        }
        try synchronizeMetadataIfNeeded()
    }

    /// Makes a range durable (`pmem_persist` on pmem, msync otherwise), then
    /// the file's size and times (`fsync`). The range is clipped to end of
    /// file; `length` 0 means to the end.
    func flush(offset: Int, length: Int) throws(FileSystemError) {
        guard offset >= 0, length >= 0 else {
            throw FileSystemError(.invalidArgument, operation: "flush(\(origin)) \(offset)+\(length)")
        }
        try ioLock.withReadLock { () throws(FileSystemError) in
            let size = currentMapping.length
            guard offset < size else { return }
            let count = length == 0 ? size - offset : min(length, size - offset)
            do throws(PmemError) {
                try currentMapping.persist(offset: offset, length: count)
            } catch {
                throw FileSystemError(error, operation: "persist(\(origin))")
            }
        }
        metadataDirty.store(false, ordering: .releasing)
        do throws(PmemError) {
            try file.synchronize()
        } catch {
            metadataDirty.store(true, ordering: .releasing)
            throw FileSystemError(error, operation: "fsync(\(origin))")
        }
    }

    // MARK: - Layouts (PROTOCOL.md §5)

    /// Makes `[0, end)` backed and mapped for a layout, growing the file with
    /// zeroed blocks if `end` is past the visible size (which then stays where
    /// it was). Returns the mapping to register and whether the layout
    /// reaches past the visible size; such a layout must end with
    /// `layoutEnded(pastEnd: true)`.
    public func prepareLayout(end: Int, writable: Bool) throws(FileSystemError) -> (mapping: PmemMapping, pastEnd: Bool) {
        try ioLock.withWriteLock { () throws(FileSystemError) -> (PmemMapping, Bool) in
            let size = try currentSize()
            if size != currentMapping.length { try adjustMapping(to: size) }
            guard writable, end > (visibleOverride ?? size) else { return (currentMapping, false) }
            let firstPastEnd = visibleOverride == nil
            if firstPastEnd { try setVisible(size) }
            if end > size {
                do throws(FileSystemError) {
                    try allocate(from: size, to: end)
                    try adjustMapping(to: end)
                } catch {
                    if firstPastEnd && pastEndLayouts == 0 {  // as if this layout was never asked for
                        visibleOverride = nil
                        _ = fremovexattr(file.descriptor.rawValue, Self.visibleSizeAttribute)
                    }
                    throw error
                }
            }
            pastEndLayouts += 1
            return (currentMapping, true)
        }
    }

    /// LAYOUTCOMMIT: persists the ranges, raises the visible size to
    /// `newSize`, makes size and times durable, and returns the visible size.
    public func commitLayout(ranges: [(offset: Int, length: Int)], newSize: Int?) throws(FileSystemError) -> Int {
        try ioLock.withReadLock { () throws(FileSystemError) in
            for r in ranges {
                let count = min(r.length, max(0, currentMapping.length - r.offset))
                guard count > 0 else { continue }
                do throws(PmemError) {
                    try currentMapping.persist(offset: r.offset, length: count)
                } catch {
                    throw FileSystemError(error, operation: "persist(\(origin))")
                }
            }
        }
        let visible = try ioLock.withWriteLock { () throws(FileSystemError) -> Int in
            let size = try currentSize()
            if let newSize {
                if let v = visibleOverride {
                    if newSize > v { try setVisible(min(newSize, size)) }
                } else if newSize > size {
                    try allocate(from: size, to: newSize)
                    try adjustMapping(to: newSize)
                }
            }
            if let v = visibleOverride { return v }
            return try currentSize()
        }
        do throws(PmemError) {
            try file.synchronize()
        } catch {
            throw FileSystemError(error, operation: "fsync(\(origin))")
        }
        return visible
    }

    /// A layout ended (returned, revoked, or its connection gone) after its
    /// memory regions were deregistered. When the last layout past the
    /// visible size ends, the file is trimmed back to the visible size.
    public func layoutEnded(pastEnd: Bool) {
        guard pastEnd else { return }
        ioLock.withWriteLock {
            pastEndLayouts -= 1
            guard pastEndLayouts == 0, let visible = visibleOverride else { return }
            do throws(FileSystemError) {
                try adjustMapping(to: visible)
                do throws(PmemError) {
                    try file.setSize(visible)
                    try file.synchronizeMetadata()
                } catch {
                    throw FileSystemError(error, operation: "ftruncate(\(origin))")
                }
                visibleOverride = nil
                _ = fremovexattr(file.descriptor.rawValue, Self.visibleSizeAttribute)
            } catch {
                logger.error("could not trim \(origin) back to \(visible) bytes: \(error)")
            }
        }
    }

    /// Records the visible size, in memory and in the extended attribute. Holds ioLock exclusively.
    private func setVisible(_ size: Int) throws(FileSystemError) {
        var value = UInt64(size).littleEndian
        let rc = withUnsafeBytes(of: &value) {
            fsetxattr(file.descriptor.rawValue, Self.visibleSizeAttribute, $0.baseAddress, 8, 0)
        }
        if rc != 0 { throw FileSystemError(errno: Errno(rawValue: errno), operation: "fsetxattr(\(origin))") }
        visibleOverride = size
        metadataDirty.store(true, ordering: .releasing)
    }

    private static func savedVisibleSize(_ fd: FileDescriptor) -> Int? {
        var value: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &value) { fgetxattr(fd.rawValue, visibleSizeAttribute, $0.baseAddress, 8) }
        return n == 8 ? Int(UInt64(littleEndian: value)) : nil
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
    /// A failed allocation (ENOSPC) is undone: what it allocated is freed and the size is
    /// `size` again, so one oversized request cannot fill the device for every client.
    private func allocate(from size: Int, to end: Int) throws(FileSystemError) {
        do throws(PmemError) {
            try file.allocate(offset: size, length: end - size)
        } catch {
            do throws(PmemError) {
                try file.setSize(size)
            } catch {
                logger.error("could not trim \(origin) back to \(size) bytes after a failed fallocate: \(error)")
            }
            throw FileSystemError(error, operation: "fallocate(\(origin), \(size)..<\(end))")
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

    private func synchronizeMetadataIfNeeded() throws(FileSystemError) {
        guard metadataDirty.exchange(false, ordering: .acquiringAndReleasing) else { return }
        do throws(PmemError) {
            try file.synchronizeMetadata()
        } catch {
            metadataDirty.store(true, ordering: .releasing)
            throw FileSystemError(error, operation: "fdatasync(\(origin))")
        }
    }

    /// Address space to reserve for a file of `size` bytes: room to double.
    static func reservation(for size: Int, minimum: Int) -> Int {
        let (doubled, overflow) = size.multipliedReportingOverflow(by: 2)
        return max(minimum, overflow ? size : doubled)
    }
}
