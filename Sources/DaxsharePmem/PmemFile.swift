import CLinux
import Glibc
import Logging
import Synchronization
import SystemPackage

/// An open file on a (possibly DAX) filesystem: the descriptor plus the
/// operations that change its size and block map.
///
/// The descriptor is closed by `close()` or on deinit; after that every
/// operation throws `closed`. Mappings keep the file alive, and may still be
/// read and written after `close()`, but cannot grow.
// @unchecked: the descriptor is immutable and `closed` is a Mutex.
public final class PmemFile: @unchecked Sendable {
    /// The open descriptor. Valid until `close()`.
    public let descriptor: FileDescriptor
    /// Whether the descriptor was opened for writing (O_WRONLY or O_RDWR).
    public let isWritable: Bool
    /// The path the file was opened by, for log messages only.
    public let path: FilePath?

    private let closed = Mutex(false)

    /// Takes ownership of an open descriptor; reads its access mode with
    /// `fcntl(F_GETFL)`.
    public init(adopting descriptor: FileDescriptor, path: FilePath? = nil) throws(PmemError) {
        let flags = try retryingInterrupts("fcntl(F_GETFL)") { fcntl(descriptor.rawValue, F_GETFL) }
        self.descriptor = descriptor
        self.isWritable = (flags & O_ACCMODE) != O_RDONLY
        self.path = path
    }

    /// Opens or creates a file with `open(2)`, always O_CLOEXEC.
    ///
    /// - Parameter permissions: the mode for a created file; required with `.create`.
    public static func open(
        _ path: FilePath,
        _ access: FileDescriptor.AccessMode,
        options: FileDescriptor.OpenOptions = [],
        permissions: FilePermissions? = nil
    ) throws(PmemError) -> PmemFile {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(
                path, access, options: options.union(.closeOnExec),
                permissions: permissions ?? (options.contains(.create) ? [.ownerReadWrite] : nil))
        } catch {
            throw .wrapping("open", error)
        }
        do {
            return try PmemFile(adopting: fd, path: path)
        } catch {
            try? fd.close()
            throw error
        }
    }

    deinit {
        try? close()
    }

    /// Closes the descriptor with `close(2)`. Idempotent.
    public func close() throws(PmemError) {
        let wasClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        if wasClosed { return }
        do {
            try descriptor.close()
        } catch {
            throw .wrapping("close", error)
        }
    }

    /// The file's metadata, from `fstat(2)`.
    public func status() throws(PmemError) -> Stat {
        _ = try openDescriptor()
        do {
            return try descriptor.stat()
        } catch {
            throw .system(call: "fstat", errno: error)
        }
    }

    /// The file's size in bytes, from `fstat(2)`.
    public func size() throws(PmemError) -> Int {
        Int(try status().size)
    }

    /// Where the first hole at or after `offset` starts, with `lseek(2)`'s SEEK_HOLE: the
    /// file's size when no hole comes before its end, nil at or past end of file (ENXIO).
    /// On ext4 DAX a preallocated (unwritten) extent counts as a hole.
    public func nextHole(from offset: Int) throws(PmemError) -> Int? {
        let fd = try openDescriptor()
        let hole = lseek(fd, off_t(offset), dxs_SEEK_HOLE)
        if hole >= 0 { return Int(hole) }
        let errno = currentErrno()
        if errno == .noSuchAddressOrDevice { return nil }
        throw .system(call: "lseek(SEEK_HOLE)", errno: errno)
    }

    /// Sets the file's size with `ftruncate(2)`. Growing this way leaves a
    /// hole (reads as zeros); use `allocate` to back the new range with blocks.
    /// Shrink any mapping of the file first: touching a mapped page past the
    /// new end of file raises SIGBUS.
    public func setSize(_ size: Int) throws(PmemError) {
        guard size >= 0 else { throw .outOfBounds(offset: size, length: 0, bound: Int.max) }
        let fd = try openDescriptor()
        _ = try retryingInterrupts("ftruncate") { ftruncate(fd, off_t(size)) }
    }

    /// Allocates blocks for a range with `fallocate(fd, 0, offset, length)`,
    /// extending the file size if the range ends past it (unless `keepSize`:
    /// `FALLOC_FL_KEEP_SIZE`, blocks past the end stay beyond it). The
    /// filesystem hands out zeroed blocks, so newly exposed bytes are never
    /// stale data; bytes already in the file are left alone. An empty range
    /// does nothing.
    public func allocate(offset: Int, length: Int, keepSize: Bool = false) throws(PmemError) {
        try checkRange(offset: offset, length: length)
        if length == 0 { return }
        let fd = try openDescriptor()
        let mode = keepSize ? FALLOC_FL_KEEP_SIZE : 0
        _ = try retryingInterrupts("fallocate") { dxs_fallocate(fd, mode, Int64(offset), Int64(length)) }
    }

    /// Frees the blocks of a range with
    /// `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`: the range reads
    /// back as zeros and the size is unchanged. Partial blocks at either end
    /// are zeroed instead of freed. An empty range does nothing.
    public func punchHole(offset: Int, length: Int) throws(PmemError) {
        try checkRange(offset: offset, length: length)
        if length == 0 { return }
        let fd = try openDescriptor()
        _ = try retryingInterrupts("fallocate(PUNCH_HOLE)") {
            dxs_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, Int64(offset), Int64(length))
        }
    }

    /// Reads up to `buffer.count` bytes at `offset` with `pread(2)`, looping
    /// over short counts; returns fewer only at end of file. On a DAX file the
    /// kernel copies from pmem with machine-check-safe routines, so a poisoned
    /// line is an EIO here, not a signal; and a range cut off by a concurrent
    /// truncate is a short count, not a SIGBUS as it would be through a mapping.
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(PmemError) -> Int {
        try checkRange(offset: offset, length: buffer.count)
        let fd = try openDescriptor()
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let n = try retryingInterrupts("pread") { pread(fd, base + done, buffer.count - done, off_t(offset + done)) }
            if n == 0 { break }  // end of file
            done += n
        }
        return done
    }

    /// Writes all of `bytes` at `offset` with `pwrite(2)`, looping over short
    /// counts, extending the file if the range ends past it (a gap is a hole).
    /// On a DAX file the kernel copies straight to pmem with cache-flushing
    /// stores (`dax_copy_from_iter`), but the final fence and any block-map
    /// change (an unwritten extent converted to written) become durable only
    /// with `synchronizeMetadata()`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(PmemError) {
        try checkRange(offset: offset, length: bytes.count)
        let fd = try openDescriptor()
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = try retryingInterrupts("pwrite") { pwrite(fd, base + done, bytes.count - done, off_t(offset + done)) }
            // pwrite returns 0 only for a zero count; never loop forever on it.
            if n == 0 { throw .system(call: "pwrite", errno: .ioError) }
            done += n
        }
    }

    /// Sets the modification time, and so the change time, to now with
    /// `futimens(fd, {UTIME_OMIT, UTIME_NOW})`: stores through a mapping or by
    /// a NIC do not update them, as `write(2)` does. Durable after `synchronize()`.
    public func touchModificationTime() throws(PmemError) {
        let fd = try openDescriptor()
        let times = [timespec(tv_sec: 0, tv_nsec: dxs_UTIME_OMIT), timespec(tv_sec: 0, tv_nsec: dxs_UTIME_NOW)]
        _ = try retryingInterrupts("futimens") { times.withUnsafeBufferPointer { futimens(fd, $0.baseAddress) } }
    }

    /// Sets the permission bits with `fchmod(2)` (the change time moves too).
    /// Durable after `synchronize()`.
    public func setPermissions(_ permissions: FilePermissions) throws(PmemError) {
        let fd = try openDescriptor()
        _ = try retryingInterrupts("fchmod") { fchmod(fd, permissions.rawValue) }
    }

    /// Sets the access and modification times with `futimens(2)`: each a
    /// `timespec`, or `UTIME_NOW` / `UTIME_OMIT` in `tv_nsec`. Durable after
    /// `synchronize()`.
    public func setTimes(access: timespec, modification: timespec) throws(PmemError) {
        let fd = try openDescriptor()
        let times = [access, modification]
        _ = try retryingInterrupts("futimens") { times.withUnsafeBufferPointer { futimens(fd, $0.baseAddress) } }
    }

    /// Makes the file's data and all its metadata, times included, durable
    /// with `fsync(2)`.
    public func synchronize() throws(PmemError) {
        let fd = try openDescriptor()
        _ = try retryingInterrupts("fsync") { fsync(fd) }
    }

    /// Makes the file's metadata durable (size, block map, times, attributes) without writing
    /// back a page of any mapping of it: `fsync` of one byte far past the end of file, through
    /// io_uring's `IORING_OP_FSYNC` (`dxs_fsync_range`), the only fsync that takes a range. ext4
    /// and xfs write back that range (nothing there) and commit the inode's journal
    /// transaction, as `fsync(2)` does. `fsync(2)` would also write back every page a CPU or a
    /// NIC wrote through a mapping since the last one: the caches flushed once more and, on
    /// DAX, each page write-protected, which unmaps it from every on-demand memory region
    /// over the mapping (the next RDMA WRITE to it faults again).
    ///
    /// For data already durable by other means: `persist` through a MAP_SYNC mapping, or
    /// `pwrite` on DAX (flushing stores). Falls back to `fsync(2)` where io_uring is missing or
    /// refused; returns whether the ranged call did it.
    @discardableResult
    public func synchronizeMetadataAndTimes() throws(PmemError) -> Bool {
        try synchronizeInode(dataSync: false)
    }

    /// `synchronizeMetadataAndTimes` for what `fdatasync(2)` makes durable (size and block
    /// map, not times or attributes): its ranged form, falling back to `fdatasync(2)`.
    @discardableResult
    public func synchronizeSizeAndBlocks() throws(PmemError) -> Bool {
        try synchronizeInode(dataSync: true)
    }

    private func synchronizeInode(dataSync: Bool) throws(PmemError) -> Bool {
        let fd = try openDescriptor()
        while true {
            let result = dxs_fsync_range(fd, Self.pastAnyEndOfFile, 1, dataSync ? 1 : 0)
            if result == 0 { return true }
            let errno = Errno(rawValue: -result)
            if errno == .interrupted { continue }
            if errno == .noFunction || errno == .notPermitted || errno == .invalidArgument || errno == .noMemory
                || errno == .resourceTemporarilyUnavailable || errno == .tooManyOpenFiles {
                if dataSync { try synchronizeMetadata() } else { try synchronize() }
                return false
            }
            throw PmemError.system(call: dataSync ? "fdatasync (io_uring, ranged)" : "fsync (io_uring, ranged)", errno: errno)
        }
    }

    /// Where the ranged syncs ask for their one byte: 2^62, past the end of any file ext4 or
    /// xfs can hold, and still a positive `loff_t` once the length is added.
    static let pastAnyEndOfFile: UInt64 = 1 << 62

    /// Makes the file's size and block allocation durable with `fdatasync(2)`.
    /// Data written through a MAP_SYNC mapping needs only `persist`; a size
    /// change (ftruncate, fallocate) needs this as well.
    public func synchronizeMetadata() throws(PmemError) {
        let fd = try openDescriptor()
        _ = try retryingInterrupts("fdatasync") { fdatasync(fd) }
    }

    /// Maps `length` bytes of the file from `offset` (page aligned) shared,
    /// trying `MAP_SHARED_VALIDATE | MAP_SYNC` first. See `PmemMapping`.
    ///
    /// - Parameters:
    ///   - length: bytes of the file to map now; the file must be at least
    ///     `offset + length` bytes long before they are touched.
    ///   - capacity: address space to reserve so the mapping can grow in
    ///     place (`PmemMapping.resize(to:)`); at least `length`.
    ///   - logger: receives the reason when MAP_SYNC is refused.
    public func map(
        offset: Int = 0, length: Int, capacity: Int? = nil,
        logger: Logger = Logger(label: "daxshare.pmem")
    ) throws(PmemError) -> PmemMapping {
        try PmemMapping(
            file: self, offset: offset, length: length, capacity: capacity ?? length,
            logger: logger)
    }

    /// The descriptor's number, or `closed`: a number used after close(2)
    /// could already name another file.
    func openDescriptor() throws(PmemError) -> Int32 {
        if closed.withLock({ $0 }) { throw .closed }
        return descriptor.rawValue
    }

    private func checkRange(offset: Int, length: Int) throws(PmemError) {
        guard offset >= 0, length >= 0, offset <= Int.max - length else {
            throw .outOfBounds(offset: offset, length: length, bound: Int.max)
        }
    }
}
