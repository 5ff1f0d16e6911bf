import DaxshareWire
import Synchronization

/// How the one-sided path sizes its work. See `ClientConfiguration` for the defaults.
public struct LayoutSettings: Sendable, Hashable {
    /// One-sided RDMA operations kept in flight per read or write.
    public var queueDepth = 16
    /// Bytes per RDMA READ or WRITE work request through the staging slots (the slots' size);
    /// larger I/O is split. On registered caller memory pieces are sized by
    /// `LayoutPlan.directPieceLimit` instead.
    public var maxWorkRequest = 1 << 20
    /// Layouts are asked for per aligned window of this size (READ: the whole window, clipped
    /// by the server at the end of file; RW: up to the expected end of the writes).
    public var window: UInt64 = 64 << 20
    /// LAYOUTGET attempts on TRY_LATER before the I/O goes two-sided.
    public var tryLaterAttempts = 3
    /// After a recall, the file's I/O goes two-sided this long before asking for a new layout
    /// (the server answers TRY_LATER until its recall is over, and a conflicting client should
    /// get its turn).
    public var recallBackoffMs = 500
    /// TEST ONLY: acknowledge CB_LAYOUTRECALL but keep using the layout and never return it, so
    /// that tests can watch the server fence a misbehaving client. Never set it otherwise.
    public var ignoreRecallsForTesting = false
    /// Every RDMA READ and WRITE starts at a remote address that is a multiple of this; the
    /// bytes before the first such address in an I/O move two-sided (written write-through).
    /// Soft-RoCE's on-demand paging (Linux 7.2 rxe) misplaces transfers that start inside a
    /// page: measured in the testbed (OneSidedPmemTests.unalignedWritesAndReadsLandExactly),
    /// while any length from a page boundary is exact. 1 turns this off.
    public var remoteAlignment = 4096
    /// Make one-sided writes durable with RDMA FLUSH (PROTOCOL.md §5.8) where the server agrees
    /// to RDMA_FLUSH and marks the layout's extents PERSISTENT_FLUSH: a commit is then FLUSHes of
    /// the dirty ranges on the client's own queue pair (no server CPU, no message), plus a
    /// LAYOUTCOMMIT without ranges only when the writes grew the file. False: LAYOUTCOMMIT always.
    public var flushCommits = true

    public init() {}
}

/// The one-sided data path (PROTOCOL.md §5, issue 5): per open file, layouts from LAYOUTGET,
/// RDMA READ/WRITE issued by the client straight into the server's pmem mapping, LAYOUTCOMMIT
/// as the durability point, LAYOUTRETURN on close and on recall.
///
/// - An I/O is cut at layout windows; each window's layout is asked for once and cached per
///   file. Its extents map the I/O to work requests of at most `maxWorkRequest` bytes, up to
///   `queueDepth` in flight, each through a slot of registered staging memory (one region
///   registered once per session, `BouncePool`).
/// - What no layout covers — refused (NOT_SUPPORTED, ACCESS_DENIED, TRY_LATER past the retry
///   budget...), recalled meanwhile, or past the visible size for reads — moves two-sided
///   through the session's `TwoSidedDataPath`, per I/O.
/// - Written ranges are tracked per layout as dirty until a LAYOUTCOMMIT covering them is
///   acknowledged. `commit` (flush, close, write-through) sends them with NEW_SIZE.
/// - CB_LAYOUTRECALL: acknowledged OK at once (on the connection's reader), then a task stops
///   new operations on that layout, waits for those in flight, commits what is dirty and sends
///   LAYOUTRETURN with the recall id; I/O continues two-sided for a while, then asks again.
/// - Revocation: LAYOUT_REVOKED on LAYOUTCOMMIT, or a one-sided operation failing with a remote
///   access error (which also breaks the connection), loses the bytes written through that
///   layout since its last acknowledged commit. They are never reported as written: the next
///   `commit` (or the failing write itself) throws `.layoutLost` with their count, and `put`
///   re-sends them two-sided.
final class LayoutDataPath: DataPath {
    let name = DataPathUsage.oneSidedName
    let dispatcher: RequestDispatcher
    let twoSided: TwoSidedDataPath
    let access: any RemoteMemoryAccess
    let staging: BouncePool
    let settings: LayoutSettings

    struct Held: Sendable {
        var stateid: LayoutStateid
        var iomode: LayoutIOMode
        var extents: [LayoutExtent]
        /// Set by CB_LAYOUTRECALL: no new operations; being committed and returned.
        var recallId: UInt32?
        var revoked = false
        var inFlight = 0
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        var dirty = DirtyRanges()
        /// Every extent takes RDMA FLUSH (PERSISTENT_FLUSH) and FLUSH was agreed: commits FLUSH.
        var flushable = false
        /// One past the last byte a chained WRITE + FLUSH made durable (write-through) whose size
        /// no LAYOUTCOMMIT has covered yet; 0 when none.
        var durableEnd: UInt64 = 0
        /// Writes were committed by FLUSH since the last LAYOUTCOMMIT: one with TOUCH goes before
        /// the layout is returned, so the file's times move (PROTOCOL.md §5.8).
        var touchPending = false
        /// Chosen for eviction: no new operations, then returned.
        var evicting = false
        var active: Bool { recallId == nil && !revoked && !evicting }
    }

    struct FileState: Sendable {
        /// `body` on a held layout in place (no copy of it: see `State.file`), nil without it.
        mutating func layout<R>(_ id: UInt64, _ body: (inout Held) -> R) -> R? {
            guard let i = layouts.index(forKey: id) else { return nil }
            return body(&layouts.values[i])
        }

        var flags: OpenFlags
        /// The visible size as far as this client knows (open, commits, set-size, reads).
        var size: UInt64
        /// One past the last byte this client wrote one-sided (readable back through RW layouts).
        var writtenEnd: UInt64 = 0
        var expectedEnd: UInt64?
        var layouts: [UInt64: Held] = [:]
        /// Layouts refused for good: everything two-sided.
        var disabled: String?
        /// No LAYOUTGET before this (TRY_LATER past the budget, or just after a recall).
        var notBefore: ContinuousClock.Instant?
        /// Bytes lost with revoked layouts, not yet reported to the caller.
        var lost = DirtyRanges()
        /// A two-sided write without write-through since the last FLUSH (`takeUnflushedWrites`).
        var unflushed = false
        /// LAYOUTGETs sent and not yet answered, and the recalls that arrived meanwhile for
        /// layouts not known yet: a recall can overtake the task that applies the reply.
        var layoutGetsInFlight = 0
        var parkedRecalls: [LayoutRecall] = []
        var usage: DataPathUsage
        let getLock = AsyncSemaphore(permits: 1)
        let commitLock = AsyncSemaphore(permits: 1)
    }

    private struct State {
        var files: [UInt64: FileState] = [:]

        /// `body` on the file's state in place, nil without it. Reading `files[id]?.x` copies
        /// the whole `FileState` out of the dictionary (a getter): retains and releases of its
        /// tables, ~15% of the client's loop thread per 4 KiB one-sided read under TCG (perf).
        /// The hot paths go through here instead.
        mutating func file<R>(_ id: UInt64, _ body: (inout FileState) -> R) -> R? {
            guard let i = files.index(forKey: id) else { return nil }
            return body(&files.values[i])
        }
        /// Set when a one-sided operation failed: the connection is unusable.
        var broken: String?

        /// A one-sided operation failed: the queue pair is gone, and with it every layout's
        /// uncommitted bytes, which become lost (reported, never durable). Returns the bytes
        /// lost on `fileId` so far.
        mutating func connectionBroke(_ reason: String, reportingFor fileId: UInt64) -> UInt64 {
            if broken == nil { broken = reason }
            var lost: UInt64 = 0
            for (fid, var file) in files {
                for (lid, var held) in file.layouts where !held.dirty.isEmpty {
                    file.lost.formUnion(held.dirty.removeAll())
                    held.revoked = true
                    file.layouts[lid] = held
                }
                file.usage.fallbackReason = broken
                if fid == fileId { lost = file.lost.byteCount }
                files[fid] = file
            }
            return lost
        }
    }
    private let state = Mutex(State())

    /// Caller memory a piece uses as its local side directly (zero-copy), skipping `staging`.
    let callerBuffers: CallerBuffers?
    /// Commits go by RDMA FLUSH on layouts that take it (PROTOCOL.md §5.8): RDMA_FLUSH was agreed,
    /// `settings.flushCommits`, and this connection can post FLUSH.
    let flushing: Bool

    init(dispatcher: RequestDispatcher, twoSided: TwoSidedDataPath, access: any RemoteMemoryAccess, staging: BouncePool,
         settings: LayoutSettings, callerBuffers: CallerBuffers? = nil, flushAgreed: Bool = false) {
        self.callerBuffers = callerBuffers
        self.flushing = flushAgreed && settings.flushCommits && access.canFlush
        self.dispatcher = dispatcher
        self.twoSided = twoSided
        self.access = access
        self.staging = staging
        self.settings = settings
    }

    /// The largest piece a durable or very large I/O on registered caller memory is cut into
    /// (four 1 MiB WRITEs in flight were rxe's fastest in the testbed; see
    /// `LayoutPlan.directPieceLimit`).
    static let maxDirectPiece = 1 << 20

    /// Bytes one transfer batch should hold to keep the queue full.
    var batchSize: Int { settings.queueDepth * settings.maxWorkRequest }

    // MARK: File lifecycle

    func opened(fileId: UInt64, flags: OpenFlags, size: UInt64) {
        state.withLock { $0.files[fileId] = FileState(flags: flags, size: size, usage: DataPathUsage(defaultPath: name)) }
    }

    func expectWrites(fileId: UInt64, upTo end: UInt64) {
        state.withLock { $0.files[fileId]?.expectedEnd = end }
    }

    func disableOneSided(fileId: UInt64, reason: String) {
        state.withLock { s in
            s.files[fileId]?.disabled = reason
            s.files[fileId]?.usage.fallbackReason = reason
        }
    }

    func usage(fileId: UInt64) -> DataPathUsage {
        state.withLock { $0.files[fileId]?.usage } ?? DataPathUsage(defaultPath: name)
    }

    func takeUnflushedWrites(fileId: UInt64) -> Bool {
        state.withLock { s in
            guard s.files[fileId] != nil else { return true }
            defer { s.files[fileId]?.unflushed = false }
            return s.files[fileId]!.unflushed
        }
    }

    func touchTimes(fileId: UInt64) async throws(ClientError) {
        let touched = state.withLock { s in s.files[fileId]?.layouts.filter { $0.value.touchPending && $0.value.active }.keys.sorted() ?? [] }
        var failure: ClientError?
        for id in touched {
            do throws(ClientError) { try await touch(fileId: fileId, layoutId: id) } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    func modificationTimeSet(fileId: UInt64) {
        state.withLock { s in
            guard var f = s.files[fileId] else { return }
            for id in f.layouts.keys { f.layouts[id]!.touchPending = false }
            s.files[fileId] = f
        }
    }

    func markUnflushed(fileId: UInt64) {
        state.withLock { $0.files[fileId]?.unflushed = true }
    }

    func sizeChanged(fileId: UInt64, to size: UInt64) {
        state.withLock { s in
            guard var f = s.files[fileId] else { return }
            if size < f.size || size < f.writtenEnd {
                // The server returned this session's layouts reaching past the new size.
                f.layouts = f.layouts.filter { $0.value.extents.allSatisfy { $0.fileOffset + $0.length <= size } }
                f.writtenEnd = min(f.writtenEnd, size)
            }
            f.size = size
            s.files[fileId] = f
        }
    }

    func layoutsEnded(fileId: UInt64) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard var f = s.files[fileId] else { return [] }
            // Bytes written through them since the caller's commit were returned uncommitted:
            // the next commit reports them lost rather than durable.
            for held in f.layouts.values { f.lost.formUnion(held.dirty) }
            let waiters = f.layouts.values.flatMap(\.drainWaiters)
            f.layouts = [:]
            s.files[fileId] = f
            return waiters
        }
        waiters.forEach { $0.resume() }
    }

    func commit(fileId: UInt64) async throws(ClientError) {
        guard let lock = state.withLock({ $0.files[fileId]?.commitLock }) else { return }
        await lock.acquire()
        defer { lock.release() }
        var firstError: ClientError?
        let ids = state.withLock { s -> [UInt64] in
            s.files[fileId]?.layouts.filter { (!$0.value.dirty.isEmpty || $0.value.durableEnd > 0) && !$0.value.revoked }.keys.sorted() ?? []
        }
        for id in ids {
            do throws(ClientError) { try await commitLayout(fileId: fileId, layoutId: id) } catch { firstError = firstError ?? error }
        }
        let lost = state.withLock { s in s.files[fileId]?.lost.removeAll() } ?? DirtyRanges()
        if !lost.isEmpty {
            throw .layoutLost(reason: firstError.map { "\($0)" } ?? "the layout was revoked", unwrittenBytes: lost.byteCount)
        }
        if let firstError { throw firstError }
    }

    func closing(fileId: UInt64) async throws(ClientError) {
        var failure: ClientError?
        do throws(ClientError) { try await commit(fileId: fileId) } catch { failure = error }
        if failure == nil {
            do throws(ClientError) { try await touchTimes(fileId: fileId) } catch { failure = error }
        }
        let (held, broken) = state.withLock { s in
            ((s.files[fileId]?.layouts.values.filter { $0.recallId == nil }.map(\.stateid)) ?? [], s.broken != nil)
        }
        if !broken {
            for stateid in held {
                _ = try? await dispatcher.call(.layoutReturn(LayoutReturnRequest(stateid: stateid)))
            }
        }
        _ = state.withLock { $0.files.removeValue(forKey: fileId) }
        if let failure { throw failure }
    }

    // MARK: Reads and writes

    func read(fileId: UInt64, at offset: UInt64, into destination: SharedBuffer) async throws(ClientError) -> Int {
        let n = destination.count
        guard let limit = state.withLock({ s -> UInt64? in
            guard s.broken == nil else { return nil }
            return s.file(fileId) { f in f.disabled == nil && f.flags.contains(.read) ? max(f.size, f.writtenEnd) : nil } ?? nil
        }) else {
            return try await twoSidedRead(fileId, offset, destination, 0, n)
        }
        var done = 0
        let end = min(offset + UInt64(n), limit)
        if end > offset {
            let length = Int(end - offset)
            let gaps = try await transfer(fileId: fileId, iomode: .read, offset: offset, length: length, buffer: destination)
            for g in LayoutPlan.coalesce(gaps) {
                let got = try await twoSidedRead(fileId, g.fileOffset, destination, g.bufferOffset, g.length)
                if got < g.length { return g.bufferOffset + got }  // the file shrank meanwhile
            }
            done = length
        }
        // Past the size this client knows: two-sided, which sees the server's current end of
        // file (usually nothing there). One chunk first, the rest only if the file grew.
        while done < n {
            let want = min(n - done, twoSided.chunkSize)
            let got = try await twoSidedRead(fileId, offset + UInt64(done), destination, done, want)
            done += got
            if got < want { break }
        }
        state.withLock { s in
            _ = s.file(fileId) { f in f.size = max(f.size, offset + UInt64(done)) }
        }
        return done
    }

    func write(fileId: UInt64, at offset: UInt64, from source: SharedBuffer, writeThrough: Bool) async throws(ClientError) {
        let (usable, durableEach) = state.withLock { s in
            let intact = s.broken == nil
            return s.file(fileId) { f in
                (f.disabled == nil && f.flags.contains(.write) && intact, f.flags.contains(.writeThrough))
            } ?? (false, false)
        }
        guard usable else {
            try await twoSidedWrite(fileId, offset, source, 0, source.count, writeThrough: writeThrough)
            return
        }
        let gaps = try await transfer(fileId: fileId, iomode: .readWrite, offset: offset, length: source.count, buffer: source,
                                      durable: writeThrough || durableEach)
        // Heads cut off for alignment are written through: LAYOUTCOMMIT alone must make the
        // whole one-sided write durable.
        let align = UInt64(max(1, settings.remoteAlignment))
        let isHead = { (g: Chunk) in align > 1 && g.fileOffset % align != 0 && UInt64(g.length) < align }
        for g in gaps where isHead(g) {
            try await twoSidedWrite(fileId, g.fileOffset, source, g.bufferOffset, g.length, writeThrough: true)
        }
        for g in LayoutPlan.coalesce(gaps.filter { !isHead($0) }) {
            try await twoSidedWrite(fileId, g.fileOffset, source, g.bufferOffset, g.length, writeThrough: writeThrough)
        }
        // Write-through (per call or per open file): durable before returning.
        if writeThrough || durableEach { try await commit(fileId: fileId) }
    }

    private func twoSidedRead(_ fileId: UInt64, _ offset: UInt64, _ buffer: SharedBuffer, _ at: Int, _ length: Int) async throws(ClientError) -> Int {
        if length == 0 { return 0 }
        let got = try await twoSided.read(fileId: fileId, at: offset, into: SharedBuffer(buffer.slice(at, length)))
        state.withLock { $0.files[fileId]?.usage.twoSidedBytes += UInt64(got) }
        return got
    }

    private func twoSidedWrite(_ fileId: UInt64, _ offset: UInt64, _ buffer: SharedBuffer, _ at: Int, _ length: Int,
                               writeThrough: Bool) async throws(ClientError) {
        if length == 0 { return }
        try await twoSided.write(fileId: fileId, at: offset, from: SharedBuffer(buffer.slice(at, length)), writeThrough: writeThrough)
        state.withLock { s in
            s.files[fileId]?.usage.twoSidedBytes += UInt64(length)
            if !writeThrough { s.files[fileId]?.unflushed = true }
            if let size = s.files[fileId]?.size { s.files[fileId]?.size = max(size, offset + UInt64(length)) }
        }
    }

    /// Moves what layouts cover one-sided; returns the chunks left for the two-sided path.
    /// `durable`: a write-through write, chained with its FLUSH where the layout takes one.
    private func transfer(fileId: UInt64, iomode: LayoutIOMode, offset: UInt64, length: Int,
                          buffer: SharedBuffer, durable: Bool = false) async throws(ClientError) -> [Chunk] {
        let end = offset + UInt64(length)
        var pos = offset
        // Into or out of registered caller memory, one work request, or a few in flight for a
        // durable or very large I/O (`LayoutPlan.directPieceLimit`); staged, the slot's size.
        // A durable write is cut only when nothing else of the file is in flight: pieces are
        // there to fill an idle queue, and on a busy one their FLUSHes (each answered, like an
        // RDMA READ) would only add to what waits, and cost ~35 allocations an I/O (at 4 MiB
        // QD8 write + FLUSH measured 0.93-0.95x LAYOUTCOMMIT's cut, 0.94x whole).
        // The file's lock is taken only when a durable write would be cut.
        var maxPiece = settings.maxWorkRequest
        if callerBuffers?.find(UnsafeMutableRawBufferPointer(buffer.slice(0, length)), receiving: iomode == .read) != nil {
            func limit(durable: Bool) -> Int {
                LayoutPlan.directPieceLimit(length: length, queueDepth: settings.queueDepth,
                                            maxPiece: Self.maxDirectPiece, durable: durable)
            }
            maxPiece = limit(durable: durable)
            if durable && maxPiece < length && state.withLock({ s in
                s.files[fileId]?.layouts.values.contains { $0.inFlight > 0 } ?? false
            }) {
                maxPiece = limit(durable: false)
            }
        }
        // The common case, one work request inside one extent of a layout held: no plan, no
        // task group, nothing allocated.
        if let (layoutId, piece) = singlePiece(fileId: fileId, iomode: iomode, offset: offset, length: length, maxPiece: maxPiece) {
            switch await runPiece(fileId: fileId, iomode: iomode, layoutId: layoutId, piece: piece, buffer: buffer, durable: durable) {
            case .success(nil): return []
            case let .success(chunk?): return [chunk]
            case let .failure(error): throw error
            }
        }
        var planned: [(UInt64, OneSidedPiece)] = []
        var gaps: [Chunk] = []
        while pos < end {
            let window = LayoutPlan.window(containing: pos, window: settings.window)
            let stop = min(end, window.upperBound)
            if let granted = try await layout(fileId: fileId, iomode: iomode, window: window, ioStart: pos, ioEnd: stop) {
                let (id, extents) = granted
                let split = LayoutPlan.split(offset: pos, length: Int(stop - pos), bufferOffset: Int(pos - offset),
                                             extents: extents, maxPiece: maxPiece,
                                             alignment: settings.remoteAlignment)
                planned += split.pieces.map { (id, $0) }
                gaps += split.gaps
            } else {
                gaps.append(Chunk(fileOffset: pos, bufferOffset: Int(pos - offset), length: Int(stop - pos)))
            }
            pos = stop
        }
        let work = planned
        let skipped = try await runPipelined(count: work.count, depth: settings.queueDepth) { [self] i in
            await runPiece(fileId: fileId, iomode: iomode, layoutId: work[i].0, piece: work[i].1, buffer: buffer, durable: durable)
        }.get()
        return gaps + skipped.compactMap { $0 }
    }

    /// The piece `[offset, offset + length)` is when one extent of an active layout covers it,
    /// it fits one work request and its remote address is aligned; found by arithmetic.
    private func singlePiece(fileId: UInt64, iomode: LayoutIOMode, offset: UInt64, length: Int,
                             maxPiece: Int) -> (UInt64, OneSidedPiece)? {
        guard length > 0, length <= maxPiece else { return nil }
        let align = UInt64(max(1, settings.remoteAlignment))
        let end = offset + UInt64(length)
        return state.withLock { s -> (UInt64, OneSidedPiece)? in
            guard s.broken == nil else { return nil }
            return s.file(fileId) { f -> (UInt64, OneSidedPiece)? in
                guard f.disabled == nil else { return nil }
                for (id, h) in f.layouts where h.active && (iomode == .read || h.iomode == .readWrite) {
                    for e in h.extents where e.fileOffset <= offset && end <= e.fileOffset + e.length {
                        let address = e.remoteAddress + (offset - e.fileOffset)
                        guard address % align == 0 else { return nil }
                        return (id, OneSidedPiece(fileOffset: offset, bufferOffset: 0, length: length,
                                                  remoteAddress: address, rkey: e.rkey))
                    }
                }
                return nil
            } ?? nil
        }
    }

    /// One RDMA operation through a staging slot. Returns the piece as a chunk when its layout
    /// is no longer usable (recalled meanwhile): the caller moves it two-sided.
    private func runPiece(fileId: UInt64, iomode: LayoutIOMode, layoutId: UInt64, piece: OneSidedPiece,
                          buffer: SharedBuffer, durable: Bool = false) async -> Result<Chunk?, ClientError> {
        let chunk = Chunk(fileOffset: piece.fileOffset, bufferOffset: piece.bufferOffset, length: piece.length)
        // The local side: the caller's registered memory (zero-copy), else a staging slot.
        let direct = callerBuffers?.find(buffer.slice(piece.bufferOffset, piece.length), receiving: iomode == .read)
        var slot: BounceSlot?
        if direct == nil {
            do throws(ClientError) { slot = try await staging.acquire() } catch { return .failure(error) }
        }
        defer { if let slot { staging.release(slot) } }
        enum Admission { case go(flush: Bool), skip, broken(String) }
        let admission = state.withLock { s -> Admission in
            if let b = s.broken { return .broken(b) }
            // In place: no copy of the file's or the layout's state.
            return s.file(fileId) { f -> Admission in
                f.layout(layoutId) { h -> Admission in
                    guard h.active else { return .skip }
                    h.inFlight += 1
                    return .go(flush: durable && iomode == .readWrite && h.flushable)
                } ?? .skip
            } ?? .skip
        }
        let chainFlush: Bool
        switch admission {
        case .skip: return .success(chunk)
        case let .broken(reason): return .failure(.layoutLost(reason: reason, unwrittenBytes: 0))
        case let .go(flush): chainFlush = flush
        }
        let remote = RemoteSpan(address: piece.remoteAddress, rkey: piece.rkey, length: UInt64(piece.length))
        // A write-through write on a layout that takes FLUSH: WRITE + FLUSH in one chain, durable
        // at its completion; the FLUSH covers the written pages (the extent is whole pages).
        let page = UInt64(ChunkPlan.pageSize)
        let flushSpan = RemoteSpan(address: remote.address / page * page, rkey: remote.rkey,
                                   length: (remote.address + remote.length + page - 1) / page * page - remote.address / page * page)
        var failure: OneSidedFailure?
        if let (memory, at) = direct {
            do throws(OneSidedFailure) {
                if iomode == .read {
                    try await access.read(into: memory, offset: at, from: remote)
                } else if chainFlush {
                    try await access.writeAndFlush(from: memory, offset: at, to: remote, flushing: flushSpan)
                } else {
                    try await access.write(from: memory, offset: at, to: remote)
                }
            } catch { failure = error }
        } else if let slot, iomode == .read {
            do throws(OneSidedFailure) { try await access.read(into: slot.memory, offset: slot.offset, from: remote) } catch { failure = error }
            if failure == nil {
                buffer.slice(piece.bufferOffset, piece.length)
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: slot.bytes[0..<piece.length]))
            }
        } else if let slot {
            slot.bytes.copyMemory(from: UnsafeRawBufferPointer(buffer.slice(piece.bufferOffset, piece.length)))
            do throws(OneSidedFailure) {
                if chainFlush {
                    try await access.writeAndFlush(from: slot.memory, offset: slot.offset, to: remote, flushing: flushSpan)
                } else {
                    try await access.write(from: slot.memory, offset: slot.offset, to: remote)
                }
            } catch { failure = error }
        }
        let (waiters, lostBytes) = state.withLock { s -> ([CheckedContinuation<Void, Never>], UInt64) in
            // Everything in place (`State.file`, `FileState.layout`): a copy of the file's state
            // would copy its layout table on every completion.
            let written = failure == nil && iomode == .readWrite
            let found = s.file(fileId) { f -> [CheckedContinuation<Void, Never>] in
                let end = piece.fileOffset + UInt64(piece.length)
                if failure == nil { f.usage.oneSidedBytes += UInt64(piece.length) }
                let held = f.layout(layoutId) { h -> [CheckedContinuation<Void, Never>] in
                    h.inFlight -= 1
                    if written && chainFlush {
                        // Durable already; only a size the server has not heard of is left to commit.
                        h.durableEnd = max(h.durableEnd, end)
                    } else if written {
                        h.dirty.insert(offset: piece.fileOffset, length: UInt64(piece.length))
                    }
                    var waiters: [CheckedContinuation<Void, Never>] = []
                    if h.inFlight == 0 && !h.drainWaiters.isEmpty { swap(&waiters, &h.drainWaiters) }
                    return waiters
                }
                if written && held != nil { f.writtenEnd = max(f.writtenEnd, end) }
                return held ?? []
            }
            guard let waiters = found else { return ([], 0) }
            guard let failure else { return (waiters, 0) }
            let lost = s.connectionBroke("\(iomode == .read ? "RDMA READ" : "RDMA WRITE") through layout \(layoutId): \(failure)",
                                         reportingFor: fileId)
            return (waiters, lost)
        }
        waiters.forEach { $0.resume() }
        if let failure {
            let reason = state.withLock { $0.broken } ?? "\(failure)"
            dispatcher.shutdown(.transport("the connection broke: \(reason)"), reason: "a one-sided operation failed: \(reason)")
            return .failure(.layoutLost(reason: reason, unwrittenBytes: lostBytes))
        }
        return .success(nil)
    }

    // MARK: Getting layouts

    /// A usable layout covering `[ioStart, ioEnd)` for `iomode` (an RW layout serves reads
    /// too): from the cache, or from LAYOUTGET. nil: move this part two-sided.
    private func layout(fileId: UInt64, iomode: LayoutIOMode, window: Range<UInt64>, ioStart: UInt64,
                        ioEnd: UInt64) async throws(ClientError) -> (UInt64, [LayoutExtent])? {
        if let hit = cached(fileId, iomode, ioStart, ioEnd) { return hit }
        guard let lock = state.withLock({ $0.files[fileId]?.getLock }) else { return nil }
        await lock.acquire()
        defer { lock.release() }
        if let hit = cached(fileId, iomode, ioStart, ioEnd) { return hit }
        var attempt = 0
        var evicted = false
        while true {
            let expected: UInt64?? = state.withLock { s in
                guard let f = s.files[fileId], f.disabled == nil, s.broken == nil else { return .none }
                if let t = f.notBefore, ContinuousClock.now < t { return .none }
                return .some(f.expectedEnd)
            }
            guard case let .some(expectedEnd) = expected else { return nil }
            let r = LayoutPlan.request(window: window, ioStart: ioStart, ioEnd: ioEnd, iomode: iomode, expectedEnd: expectedEnd)
            do throws(ClientError) {
                let request = LayoutGetRequest(fileId: fileId, offset: r.offset, length: r.length, minLength: r.minLength, iomode: iomode)
                state.withLock { $0.files[fileId]?.layoutGetsInFlight += 1 }
                let answer: Response
                do throws(ClientError) {
                    answer = try await dispatcher.call(.layoutGet(request))
                } catch {
                    layoutGetAnswered(fileId: fileId, granted: nil)
                    throw error
                }
                guard case let .layoutGet(reply) = answer else {
                    layoutGetAnswered(fileId: fileId, granted: nil)
                    throw .protocol("LAYOUTGET answered with another body")
                }
                let recalled = layoutGetAnswered(fileId: fileId, granted: reply)
                let id = reply.stateid.id
                if recalled { return nil }  // recalled before it could be used: two-sided for now
                return (id, reply.extents)
            } catch {
                switch LayoutRefusal.decide(error, attempt: attempt, maxAttempts: settings.tryLaterAttempts) {
                case let .retry(ms):
                    attempt += 1
                    try? await Task.sleep(for: .milliseconds(Int(ms)))
                case let .twoSidedFor(ms):
                    state.withLock { s in
                        s.files[fileId]?.notBefore = ContinuousClock.now + .milliseconds(Int(ms))
                        s.files[fileId]?.usage.fallbackReason = "LAYOUTGET: \(error)"
                    }
                    return nil
                case .twoSidedThisIO:
                    if error.status == .tooMany && !evicted {
                        evicted = true
                        if await evictIdleLayouts(fileId: fileId) > 0 { continue }
                    }
                    state.withLock { $0.files[fileId]?.usage.fallbackReason = "LAYOUTGET: \(error)" }
                    return nil
                case let .twoSidedForFile(reason):
                    disableOneSided(fileId: fileId, reason: reason)
                    return nil
                case .fail:
                    throw error
                }
            }
        }
    }

    /// Applies a LAYOUTGET's answer (`granted`, or nil when it failed) and the recalls that
    /// arrived while it was outstanding: one naming the granted layout starts its return at
    /// once (true: the layout is already recalled); once no LAYOUTGET is outstanding, the rest
    /// name nothing this client holds and are answered with a LAYOUTRETURN of what they name.
    @discardableResult
    private func layoutGetAnswered(fileId: UInt64, granted reply: LayoutGetResponse?) -> Bool {
        let (mine, strays) = state.withLock { s -> ([LayoutRecall], [LayoutRecall]) in
            guard var f = s.files[fileId] else { return ([], []) }
            f.layoutGetsInFlight -= 1
            var mine: [LayoutRecall] = []
            if let reply {
                var held = Held(stateid: reply.stateid, iomode: reply.iomode, extents: reply.extents)
                held.flushable = flushing && reply.iomode == .readWrite && reply.extents.allSatisfy { $0.flags.contains(.persistentFlush) }
                if let i = f.parkedRecalls.firstIndex(where: { $0.stateid.id == reply.stateid.id }) {
                    let recall = f.parkedRecalls.remove(at: i)
                    held.recallId = recall.recallId
                    held.stateid.seqid = max(held.stateid.seqid, recall.stateid.seqid)
                    f.notBefore = ContinuousClock.now + .milliseconds(settings.recallBackoffMs)
                    mine.append(recall)
                } else {
                    f.notBefore = nil
                }
                f.layouts[reply.stateid.id] = held
            }
            var strays: [LayoutRecall] = []
            if f.layoutGetsInFlight == 0 { swap(&strays, &f.parkedRecalls) }
            s.files[fileId] = f
            return (mine, strays)
        }
        for recall in mine { Task { await self.returnRecalled(recall) } }
        for recall in strays {
            Task { _ = try? await self.dispatcher.call(.layoutReturn(LayoutReturnRequest(stateid: recall.stateid, recallId: recall.recallId))) }
        }
        return !mine.isEmpty
    }

    private func cached(_ fileId: UInt64, _ iomode: LayoutIOMode, _ start: UInt64, _ end: UInt64) -> (UInt64, [LayoutExtent])? {
        state.withLock { s in
            guard s.broken == nil, let f = s.files[fileId], f.disabled == nil else { return nil }
            let hit = f.layouts.values.first { h in
                h.active && (iomode == .read || h.iomode == .readWrite) && LayoutPlan.covers(h.extents, start, end)
            }
            return hit.map { ($0.stateid.id, $0.extents) }
        }
    }

    /// Commits and returns this file's layouts nothing is using (over the server's layout
    /// limit). Returns how many were returned.
    private func evictIdleLayouts(fileId: UInt64) async -> Int {
        try? await commit(fileId: fileId)
        // Marked in the same lock that chooses them: no operation starts on them afterwards, so
        // none can add dirty bytes to a layout about to be dropped.
        let idle = state.withLock { s -> [LayoutStateid] in
            guard var f = s.files[fileId] else { return [] }
            let chosen = f.layouts.values.filter { $0.active && $0.inFlight == 0 && $0.dirty.isEmpty }.map(\.stateid)
            for stateid in chosen { f.layouts[stateid.id]?.evicting = true }
            s.files[fileId] = f
            return chosen
        }
        for stateid in idle {
            state.withLock { _ = $0.files[fileId]?.layouts.removeValue(forKey: stateid.id) }
            _ = try? await dispatcher.call(.layoutReturn(LayoutReturnRequest(stateid: stateid)))
        }
        return idle.count
    }

    // MARK: Committing

    /// Makes one layout's dirty ranges durable: RDMA FLUSH where the layout takes it (then a
    /// LAYOUTCOMMIT only for a grown size), else LAYOUTCOMMIT. The caller holds the file's
    /// commit lock.
    private func commitLayout(fileId: UInt64, layoutId: UInt64) async throws(ClientError) {
        guard let taken = state.withLock({ s -> (LayoutStateid, DirtyRanges, UInt64, [RemoteSpan]?, UInt64)? in
            guard var f = s.files[fileId], var h = f.layouts[layoutId] else { return nil }
            let d = h.dirty.removeAll()
            let spans = h.flushable ? FlushPlan.spans(dirty: d, extents: h.extents) : nil
            let durableEnd = h.durableEnd
            if spans != nil { h.durableEnd = 0 }
            f.layouts[layoutId] = h
            s.files[fileId] = f
            return (h.stateid, d, f.size, spans, durableEnd)
        }) else { return }
        let (stateid, dirty, size, flushSpans, durableEnd) = taken
        let requests: [LayoutCommitRequest]
        if let flushSpans {
            try await flush(flushSpans, fileId: fileId, layoutId: layoutId, dirty: dirty)
            var covered = dirty
            if durableEnd > 0 { covered.insert(offset: durableEnd - 1, length: 1) }
            requests = FlushPlan.sizeCommit(stateid: stateid, dirty: covered, knownSize: size).map { [$0] } ?? []
            if requests.isEmpty {
                state.withLock { $0.files[fileId]?.layouts[layoutId]?.touchPending = true }
                return
            }
        } else {
            requests = CommitPlan.requests(stateid: stateid, dirty: dirty, knownSize: size)
        }
        var remaining = dirty
        for var request in requests {
            request.stateid = state.withLock { $0.files[fileId]?.layouts[layoutId]?.stateid } ?? request.stateid
            do throws(ClientError) {
                guard case let .layoutCommit(reply) = try await dispatcher.call(.layoutCommit(request)) else {
                    throw .protocol("LAYOUTCOMMIT answered with another body")
                }
                remaining = DirtyRanges(remaining.ranges.filter { r in !request.ranges.contains(r) })
                state.withLock { s in
                    guard var f = s.files[fileId] else { return }
                    if var h = f.layouts[layoutId], reply.stateid.id == h.stateid.id {
                        h.stateid.seqid = max(h.stateid.seqid, reply.stateid.seqid)
                        h.touchPending = false
                        f.layouts[layoutId] = h
                    }
                    f.size = max(f.size, reply.size)
                    s.files[fileId] = f
                }
            } catch {
                let revoked = error.status == .layoutRevoked
                state.withLock { s in
                    guard var f = s.files[fileId] else { return }
                    if revoked {
                        f.lost.formUnion(remaining)
                        f.layouts[layoutId]?.revoked = true
                        f.usage.fallbackReason = "layout \(layoutId) was revoked"
                    } else {
                        f.layouts[layoutId]?.dirty.formUnion(remaining)
                    }
                    s.files[fileId] = f
                }
                if revoked {
                    // The server forgets a revoked stateid when it is returned.
                    _ = try? await dispatcher.call(.layoutReturn(LayoutReturnRequest(stateid: request.stateid)))
                    state.withLock { _ = $0.files[fileId]?.layouts.removeValue(forKey: layoutId) }
                }
                throw error
            }
        }
    }

    /// LAYOUTCOMMIT with TOUCH and no ranges: the file's mtime and ctime move for writes that
    /// FLUSH made durable (PROTOCOL.md §5.8).
    private func touch(fileId: UInt64, layoutId: UInt64) async throws(ClientError) {
        guard let stateid = state.withLock({ $0.files[fileId]?.layouts[layoutId]?.stateid }) else { return }
        guard case let .layoutCommit(reply) = try await dispatcher.call(.layoutCommit(LayoutCommitRequest(stateid: stateid, ranges: [], touch: true)))
        else { throw .protocol("LAYOUTCOMMIT answered with another body") }
        state.withLock { s in
            guard var h = s.files[fileId]?.layouts[layoutId], reply.stateid.id == h.stateid.id else { return }
            h.stateid.seqid = max(h.stateid.seqid, reply.stateid.seqid)
            h.touchPending = false
            s.files[fileId]!.layouts[layoutId] = h
        }
    }

    /// FLUSHes `spans` (the layout's dirty pages) to persistence, all posted at once. A failure
    /// breaks the connection as a failed WRITE does: the layout's bytes since its last commit,
    /// `dirty` among them, are lost and reported so.
    private func flush(_ spans: [RemoteSpan], fileId: UInt64, layoutId: UInt64, dirty: DirtyRanges) async throws(ClientError) {
        if spans.isEmpty { return }  // only a size to commit (write-through FLUSHed its bytes)
        var failure: OneSidedFailure?
        if spans.count == 1 {
            do throws(OneSidedFailure) { try await access.flush(spans[0]) } catch { failure = error }
        } else {
            failure = await withTaskGroup(of: OneSidedFailure?.self) { group in
                for span in spans {
                    group.addTask { [access] in
                        do throws(OneSidedFailure) { try await access.flush(span); return nil } catch { return error }
                    }
                }
                var first: OneSidedFailure?
                for await f in group where first == nil { first = f }
                return first
            }
        }
        guard let failure else {
            state.withLock { s in s.files[fileId]?.usage.flushCommits += 1 }
            return
        }
        let (reason, lost) = state.withLock { s -> (String, UInt64) in
            s.files[fileId]?.lost.formUnion(dirty)  // taken from the layout for this FLUSH
            s.files[fileId]?.layouts[layoutId]?.revoked = true
            let lost = s.connectionBroke("RDMA FLUSH through layout \(layoutId): \(failure)", reportingFor: fileId)
            return (s.broken!, lost)
        }
        dispatcher.shutdown(.transport("the connection broke: \(reason)"), reason: "an RDMA FLUSH failed: \(reason)")
        throw .layoutLost(reason: reason, unwrittenBytes: lost)
    }

    // MARK: Recalls

    /// The acknowledgement of CB_LAYOUTRECALL (runs on the connection's reader: only marks
    /// the layout and starts the return).
    func acknowledge(_ recall: LayoutRecall) -> Status {
        let start = state.withLock { s -> Bool? in
            guard var h = s.files[recall.fileId]?.layouts[recall.stateid.id] else {
                // Maybe the reply of a LAYOUTGET still being applied: wait for it.
                guard let f = s.files[recall.fileId], f.layoutGetsInFlight > 0, !settings.ignoreRecallsForTesting else { return nil }
                s.files[recall.fileId]!.parkedRecalls.append(recall)
                return false
            }
            if settings.ignoreRecallsForTesting { return false }
            guard h.recallId == nil else { return false }
            h.recallId = recall.recallId
            h.stateid.seqid = max(h.stateid.seqid, recall.stateid.seqid)
            s.files[recall.fileId]!.layouts[recall.stateid.id] = h
            // No new layout while the recall runs (the server would answer TRY_LATER).
            s.files[recall.fileId]!.notBefore = ContinuousClock.now + .milliseconds(settings.recallBackoffMs)
            return true
        }
        guard let start else { return .badStateid }
        if start { Task { await self.returnRecalled(recall) } }
        return .ok
    }

    /// Steps 2–5 of PROTOCOL.md §5.5: drain, commit, return, carry on two-sided.
    func returnRecalled(_ recall: LayoutRecall) async {
        let fileId = recall.fileId, layoutId = recall.stateid.id
        await drain(fileId: fileId, layoutId: layoutId)
        if let lock = state.withLock({ $0.files[fileId]?.commitLock }) {
            await lock.acquire()
            do throws(ClientError) {
                try await commitLayout(fileId: fileId, layoutId: layoutId)
                if state.withLock({ $0.files[fileId]?.layouts[layoutId]?.touchPending }) == true {
                    try await touch(fileId: fileId, layoutId: layoutId)
                }
            } catch {
                // Not committed: returned anyway (the deadline); those bytes are lost.
                state.withLock { s in
                    guard var f = s.files[fileId] else { return }
                    if let d = f.layouts[layoutId]?.dirty, !d.isEmpty {
                        f.lost.formUnion(d)
                        f.layouts[layoutId]?.dirty = DirtyRanges()
                    }
                    s.files[fileId] = f
                }
            }
            lock.release()
        }
        guard let stateid = state.withLock({ $0.files[fileId]?.layouts[layoutId]?.stateid }) else { return }
        _ = try? await dispatcher.call(.layoutReturn(LayoutReturnRequest(stateid: stateid, recallId: recall.recallId)))
        state.withLock { s in
            guard var f = s.files[fileId] else { return }
            f.layouts.removeValue(forKey: layoutId)
            f.usage.recalls += 1
            f.notBefore = ContinuousClock.now + .milliseconds(settings.recallBackoffMs)
            s.files[fileId] = f
        }
    }

    private func drain(fileId: UInt64, layoutId: UInt64) async {
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                guard var h = s.files[fileId]?.layouts[layoutId], h.inFlight > 0 else { return true }
                h.drainWaiters.append(k)
                s.files[fileId]!.layouts[layoutId] = h
                return false
            }
            if now { k.resume() }
        }
    }

    // MARK: For tests

    /// Layouts held for a file: stateid, iomode, dirty ranges.
    func held(fileId: UInt64) -> [(LayoutStateid, LayoutIOMode, DirtyRanges)] {
        state.withLock { s in
            (s.files[fileId]?.layouts.values.map { ($0.stateid, $0.iomode, $0.dirty) } ?? []).sorted { $0.0.id < $1.0.id }
        }
    }
}
