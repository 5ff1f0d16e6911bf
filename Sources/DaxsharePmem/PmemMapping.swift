import CLinux
import CPmem
import Glibc
import Logging
import SystemPackage
import Synchronization

/// A shared mapping of a file range, made with `mmap(2)`.
///
/// **MAP_SYNC first.** The file is mapped `MAP_SHARED_VALIDATE | MAP_SYNC`.
/// Only a DAX filesystem accepts that; elsewhere mmap fails with EOPNOTSUPP
/// (or EINVAL on kernels without MAP_SHARED_VALIDATE) and the mapping falls
/// back, with the reason logged, to a plain `MAP_SHARED` page-cache mapping.
///
/// **`isPmem` means "MAP_SYNC succeeded".** The kernel then guarantees the
/// pages are the persistent media and that their block mapping is durable
/// before a store can land, so a CPU cache flush (`pmem_persist`) makes
/// stores durable. `pmem_is_pmem` is deliberately not consulted: libpmem
/// answers it only for ranges it mapped itself (`pmem_map_file`) and says
/// false for any mapping made with mmap directly.
///
/// **Growing in place.** Touching a mapped page wholly past end of file
/// raises SIGBUS, so only the file's current bytes are mapped. Around them the
/// mapping reserves `capacity` bytes of address space (PROT_NONE, no memory
/// behind it), and `resize(to:)` maps more of the file into that reservation
/// with MAP_FIXED, or hands the tail back to it. The base address therefore
/// never moves, which memory regions registered on it rely on. Growing past
/// `capacity` fails with `capacityExceeded`: map the file again.
///
/// Order of operations: extend the file (`PmemFile.allocate`) before growing
/// the mapping; shrink the mapping before truncating the file.
///
/// Copies and `persist` take a shared lock; `resize` and `unmap` take it
/// exclusively, so a range is never replaced under a running copy.
// @unchecked: the range state changes only under its ReadWriteLock (above).
public final class PmemMapping: @unchecked Sendable {
    /// The file mapped. Resizing needs its descriptor.
    public let file: PmemFile
    /// The file offset that the base address maps (page aligned).
    public let fileOffset: Int
    /// Bytes of address space reserved from the base address.
    public let capacity: Int
    /// True when MAP_SYNC succeeded: stores plus `persist` are durable.
    public let isPmem: Bool
    /// Why MAP_SYNC was refused, when the mapping fell back to the page cache.
    public let fallbackReason: Errno?
    /// Whether the mapping is writable (the file was opened for writing).
    public let isWritable: Bool

    private let lock = ReadWriteLock()
    private var base: UnsafeMutableRawPointer?
    private var mappedLength: Int

    /// The system page size; offsets given to mmap must be multiples of it.
    public static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    init(file: PmemFile, offset: Int, length: Int, capacity: Int, logger: Logger) throws(PmemError) {
        let page = Self.pageSize
        guard offset >= 0, offset % page == 0 else {
            throw .misaligned(offset: offset, alignment: page)
        }
        guard length >= 0, capacity >= length else {
            throw .capacityExceeded(requested: length, capacity: capacity)
        }
        // At least one page, so MAP_SYNC can be probed even for an empty file.
        let reserved = max(Self.roundUp(capacity), page)
        let reservation = try Self.reserve(reserved, congruentTo: offset)
        let protection = file.isWritable ? PROT_READ | PROT_WRITE : PROT_READ
        // Probe with at least a page; mapping past EOF is allowed, touching it is not.
        let probe = max(Self.roundUp(length), page)
        let fd: Int32
        do {
            fd = try file.openDescriptor()
        } catch {
            munmap(reservation, reserved)
            throw error
        }
        let synchronous = mmap(
            reservation, probe, protection, dxs_MAP_SHARED_VALIDATE | dxs_MAP_SYNC | MAP_FIXED, fd, off_t(offset))
        var reason: Errno? = nil
        if synchronous == MAP_FAILED {
            let errno = currentErrno()
            guard errno == .notSupported || errno == .invalidArgument else {
                munmap(reservation, reserved)
                throw .system(call: "mmap(MAP_SYNC)", errno: errno)
            }
            reason = errno
            let plain = mmap(reservation, probe, protection, MAP_SHARED | MAP_FIXED, fd, off_t(offset))
            if plain == MAP_FAILED {
                let errno = currentErrno()
                munmap(reservation, reserved)
                throw .system(call: "mmap", errno: errno)
            }
            logger.notice(
                "MAP_SYNC refused; using a page-cache mapping persisted with msync",
                metadata: [
                    "file": "\(file.path?.description ?? "fd \(file.descriptor.rawValue)")",
                    "reason": "\(errno) (errno \(errno.rawValue))",
                    "meaning": "\(errno == .notSupported ? "filesystem is not mounted with DAX" : "kernel lacks MAP_SHARED_VALIDATE")",
                ])
        }
        self.file = file
        self.fileOffset = offset
        self.capacity = reserved
        self.isPmem = reason == nil
        self.fallbackReason = reason
        self.isWritable = file.isWritable
        self.base = reservation
        self.mappedLength = probe
        // Hand the probe's surplus back to the reservation.
        self.mappedLength = try replaceTail(from: probe, to: length)
    }

    deinit {
        unmap()
    }

    /// What a DAX file system maps with one PMD entry where the file's blocks allow it.
    static let hugePageSize = 2 << 20

    /// `length` bytes of address space (PROT_NONE, `mmap(2)` of anonymous memory), placed so
    /// that the address minus `offset` is a multiple of 2 MiB, as PMDK's `pmem_map_file` places
    /// its mappings: fsdax can then map each 2 MiB-aligned extent with one PMD entry (one fault,
    /// for the CPU and for an on-demand region alike) instead of 512 PTEs. The kernel aligns
    /// some large anonymous mappings by itself, depending on version and length; this makes it
    /// hold for every mapping. In the testbed (extents 2 MiB-aligned by mkfs's stride), a
    /// 64 MiB `daxshare get` of a file not mapped yet took 32 PMD faults and no 4 KiB ones.
    static func reserve(_ length: Int, congruentTo offset: Int) throws(PmemError) -> UnsafeMutableRawPointer {
        let huge = hugePageSize
        let (padded, overflow) = length.addingReportingOverflow(huge)
        guard !overflow else { throw .capacityExceeded(requested: length, capacity: Int.max - huge) }
        guard let raw = mmap(nil, padded, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              raw != MAP_FAILED else {
            throw .system(call: "mmap(reserve)", errno: currentErrno())
        }
        let start = UInt(bitPattern: raw)
        let phase = UInt(offset % huge)
        // The first address at or after `start` whose remainder modulo 2 MiB is `phase`.
        let aligned = start + ((phase &- start % UInt(huge)) & UInt(huge - 1))
        let head = Int(aligned - start)
        if head > 0 { munmap(raw, head) }
        let tail = huge - head
        if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + UInt(length)), tail) }
        return UnsafeMutableRawPointer(bitPattern: aligned)!
    }

    /// The base address, for registering memory regions on the mapping; nil
    /// once unmapped. Bytes past `length` are inaccessible (PROT_NONE).
    public var baseAddress: UnsafeMutableRawPointer? {
        lock.withReadLock { base }
    }

    /// Bytes of the file currently mapped from `fileOffset`.
    public var length: Int {
        lock.withReadLock { mappedLength }
    }

    /// Maps or unmaps the end of the file range so that `length` bytes are
    /// mapped, keeping the base address (see the type's notes on order).
    public func resize(to length: Int) throws(PmemError) {
        guard length >= 0, length <= capacity else {
            throw .capacityExceeded(requested: length, capacity: capacity)
        }
        try lock.withWriteLock { () throws(PmemError) in
            guard base != nil else { throw .closed }
            mappedLength = try replaceTail(from: mappedLength, to: length)
        }
    }

    /// Drops this process's page-table entries for the pages holding `[offset, offset + count)`
    /// (`madvise(MADV_DONTNEED)`: a shared file mapping keeps its data; the next touch faults
    /// the file's page in again). Memory regions registered on demand (ODP) over the mapping
    /// follow this process's page tables, so they let go of those pages too.
    ///
    /// Why: on ext4 DAX, a `pwrite` into pages a reader had mapped as a hole (the zero page,
    /// an unwritten extent) can leave that zero page mapped (measured, Linux 7.2, soak test):
    /// a layout then reads zeros where the file has the written bytes.
    public func dropPageMappings(offset: Int, count: Int) {
        lock.withReadLock {
            guard let base, count > 0, offset < mappedLength else { return }
            let page = Self.pageSize
            let start = offset / page * page
            let end = min((offset + count + page - 1) / page * page, (mappedLength + page - 1) / page * page)
            guard end > start else { return }
            _ = madvise(base + start, end - start, MADV_DONTNEED)
        }
    }

    /// Copies bytes into the mapping at `offset`. With `persist`, they are
    /// made durable before returning (`pmem_memcpy_persist` on pmem).
    ///
    /// A plain CPU copy: bounds are checked against `length`, not the file,
    /// so a page another process truncated away (or a poisoned pmem line)
    /// raises SIGBUS. Code that cannot rule that out uses `PmemFile.read`/`write`.
    public func copyIn(_ bytes: UnsafeRawBufferPointer, at offset: Int, persist: Bool = false) throws(PmemError) {
        guard isWritable else { throw .notWritable }
        try lock.withReadLock { () throws(PmemError) in
            let target = try address(offset: offset, length: bytes.count)
            guard let source = bytes.baseAddress, bytes.count > 0 else { return }
            if persist && isPmem {
                pmem_memcpy_persist(target, source, bytes.count)
            } else {
                target.copyMemory(from: source, byteCount: bytes.count)
                if persist { try flush(target, bytes.count) }
            }
        }
    }

    /// Copies `buffer.count` bytes out of the mapping from `offset`; the same
    /// caveat as `copyIn` about pages truncated away and poisoned lines.
    public func copyOut(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(PmemError) {
        try lock.withReadLock { () throws(PmemError) in
            let source = try address(offset: offset, length: buffer.count)
            guard let target = buffer.baseAddress, buffer.count > 0 else { return }
            target.copyMemory(from: source, byteCount: buffer.count)
        }
    }

    /// Runs `body` on a bounds-checked range of the mapping. The range cannot
    /// be unmapped or resized while `body` runs; don't keep the pointer.
    public func withUnsafeMutableBytes<R>(
        offset: Int, length: Int, _ body: (UnsafeMutableRawBufferPointer) -> R
    ) throws(PmemError) -> R {
        try lock.withReadLock { () throws(PmemError) -> R in
            let start = try address(offset: offset, length: length)
            return body(UnsafeMutableRawBufferPointer(start: start, count: length))
        }
    }

    /// Makes stores to a range durable: `pmem_persist` (cache flush + fence)
    /// when `isPmem`, otherwise `pmem_msync` (msync MS_SYNC over the pages
    /// that hold the range). A cache flush faults like a load, so clip the
    /// range to the file's current size first. It is the only way to make
    /// stores through a MAP_SYNC mapping durable: such faults leave no dirty
    /// page-cache entry for fsync to write back.
    public func persist(offset: Int, length: Int) throws(PmemError) {
        try lock.withReadLock { () throws(PmemError) in
            let start = try address(offset: offset, length: length)
            if length > 0 {
                try flush(start, length)
                Self.persistCalls.add(1, ordering: .relaxed)
            }
        }
    }

    /// `persist` calls that flushed something, in this process: how often a server's CPU
    /// made clients' stores durable (SERVER_STATS' pmem_persists; a commit by RDMA FLUSH runs none).
    public static let persistCalls = Atomic<UInt64>(0)

    /// Releases the whole reservation with `munmap(2)`. Idempotent; memory
    /// regions registered on the mapping must be gone first.
    public func unmap() {
        lock.withWriteLock {
            guard let base else { return }
            munmap(base, capacity)
            self.base = nil
            mappedLength = 0
        }
    }

    // MARK: - Internals (callers hold the lock)

    private func address(offset: Int, length: Int) throws(PmemError) -> UnsafeMutableRawPointer {
        guard let base else { throw .closed }
        guard offset >= 0, length >= 0, offset <= mappedLength, length <= mappedLength - offset else {
            throw .outOfBounds(offset: offset, length: length, bound: mappedLength)
        }
        return base + offset
    }

    private func flush(_ start: UnsafeMutableRawPointer, _ length: Int) throws(PmemError) {
        if isPmem {
            pmem_persist(start, length)
        } else {
            _ = try retryingInterrupts("pmem_msync") { pmem_msync(start, length) }
        }
    }

    /// Maps file pages for [old, new) or returns [new, old) to PROT_NONE,
    /// in whole pages. Returns `new`.
    private func replaceTail(from old: Int, to new: Int) throws(PmemError) -> Int {
        guard let base else { throw .closed }
        let oldEnd = Self.roundUp(old), newEnd = Self.roundUp(new)
        if newEnd > oldEnd {
            let protection = isWritable ? PROT_READ | PROT_WRITE : PROT_READ
            let flags = (isPmem ? dxs_MAP_SHARED_VALIDATE | dxs_MAP_SYNC : MAP_SHARED) | MAP_FIXED
            let fd = try file.openDescriptor()
            let result = mmap(base + oldEnd, newEnd - oldEnd, protection, flags, fd, off_t(fileOffset + oldEnd))
            if result == MAP_FAILED {
                let errno = currentErrno()
                reserve(base + oldEnd, newEnd - oldEnd)  // a failed MAP_FIXED may leave a gap
                throw .system(call: "mmap(grow)", errno: errno)
            }
        } else if newEnd < oldEnd {
            guard reserve(base + newEnd, oldEnd - newEnd) else {
                throw .system(call: "mmap(shrink)", errno: currentErrno())
            }
        }
        return new
    }

    @discardableResult
    private func reserve(_ start: UnsafeMutableRawPointer, _ length: Int) -> Bool {
        mmap(start, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)
            != MAP_FAILED
    }

    static func roundUp(_ value: Int) -> Int {
        let page = pageSize
        return (value + page - 1) / page * page
    }
}
