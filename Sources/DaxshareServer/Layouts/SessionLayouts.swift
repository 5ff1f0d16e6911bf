import DaxsharePmem
import DaxshareVerbs
import DaxshareWire
import Logging
import Synchronization

/// One session's layouts (PROTOCOL.md §5), by id: LAYOUTGET registers the range of the file's
/// mapping in the connection's protection domain and prefetches it; LAYOUTCOMMIT persists what
/// the client wrote; LAYOUTRETURN, CLOSE and the end of the connection deregister. Whether a
/// layout may be granted, and its recall, are the file's business (`FileLayouts`); this is the
/// holder those recalls call back (`LayoutHolder`).
final class SessionLayouts: LayoutHolder {
    /// Where layouts' regions are registered; nil on a connection without RDMA (a fake channel
    /// in host tests), which is granted none.
    private let domain: ProtectionDomain?
    private let registry: LayoutRegistry
    private let counters: ServerCounters
    private let logger: Logger
    private let maxLayouts: Int
    private let prefetch: Bool
    private let sendCallback: @Sendable (UInt64, Callback) async -> Void
    let peer: String
    private struct State {
        var layouts: [UInt64: Layout] = [:]
        /// LAYOUTGETs between their reservation and their grant (they count against the limit).
        var granting = 0
        /// Fenced layouts: later COMMIT/RETURN get LAYOUT_REVOKED (RETURN forgets it).
        var revoked: Set<UInt64> = []
        /// This session's share of the server's bytes_layout_granted and bytes_committed_one_sided.
        var bytesGranted: UInt64 = 0
        var bytesCommitted: UInt64 = 0
    }
    private let state = Mutex(State())
    private static let ids = IDSource()
    /// Set, for the process, the first time the device refuses `ibv_advise_mr` as unsupported.
    private static let prefetchUnsupported = Atomic<Bool>(false)

    init(
        domain: ProtectionDomain?, registry: LayoutRegistry, counters: ServerCounters, logger: Logger, maxLayouts: Int,
        prefetch: Bool = true, peer: String, sendCallback: @escaping @Sendable (_ messageId: UInt64, Callback) async -> Void
    ) {
        self.domain = domain
        self.registry = registry
        self.counters = counters
        self.logger = logger
        self.maxLayouts = maxLayouts
        self.prefetch = prefetch
        self.peer = peer
        self.sendCallback = sendCallback
    }

    var count: Int { state.withLock { $0.layouts.count } }

    /// What SERVER_CLIENTS says of the session's layouts (PROTOCOL.md §4.9.1): how many, the
    /// first `limit` by id, and the session's bytes granted and committed.
    func summary(limit: Int) -> (held: Int, listed: [ClientLayoutEntry], granted: UInt64, committed: UInt64) {
        let (layouts, granted, committed) = state.withLock { s in
            (s.layouts.values.sorted { $0.id < $1.id }, s.bytesGranted, s.bytesCommitted)
        }
        let listed = layouts.prefix(limit).map { l in
            ClientLayoutEntry(
                offset: l.extent.fileOffset, length: l.extent.length, readWrite: l.iomode == .readWrite,
                file: ClientLayoutEntry.shortenedFile("\(l.file.export.name):\(l.file.path)"))
        }
        return (layouts.count, listed, granted, committed)
    }

    /// `flush`: RDMA_FLUSH was agreed (PROTOCOL.md §5.8): an RW layout's region is registered
    /// with FLUSH_PERSISTENT access, and its extent says so (PERSISTENT_FLUSH).
    func get(_ request: LayoutGetRequest, file: OpenFile, flush: Bool = false) async throws -> LayoutGetResponse {
        guard let domain else { throw RequestFailure(status: .notSupported, reason: "layouts need an RDMA connection") }
        let writable = request.iomode == .readWrite
        if writable {
            guard !file.export.isReadOnly else { throw RequestFailure(status: .readOnly, reason: "RW layout on a read-only export") }
            guard file.canWrite else { throw RequestFailure(status: .accessDenied, reason: "RW layout on a file opened read-only") }
        } else {
            guard file.canRead else { throw RequestFailure(status: .accessDenied, reason: "READ layout on a file opened write-only") }
        }
        let admitted = state.withLock { s -> Bool in
            guard s.layouts.count + s.granting < maxLayouts else { return false }
            s.granting += 1
            return true
        }
        guard admitted else { throw RequestFailure(status: .tooMany, reason: "\(maxLayouts) layouts held") }
        defer { state.withLock { $0.granting -= 1 } }

        // Whole pages: memory regions and page faults work in pages.
        let page = UInt64(PmemMapping.pageSize)
        let start = request.offset / page * page
        let (requestedEnd, overflow) = request.offset.addingReportingOverflow(request.length)
        guard !overflow, requestedEnd <= UInt64(Int.max) - page else {
            throw RequestFailure(status: .invalidArgument, reason: "layout range overflows")
        }
        var end = (requestedEnd + page - 1) / page * page
        if !writable {
            let size = UInt64(try file.status().size)
            end = min(end, (size + page - 1) / page * page)
            guard end > start, end - request.offset >= request.minLength || end >= requestedEnd else {
                throw RequestFailure(status: .invalidArgument, reason: "READ layout past the end of the file")
            }
        }
        let range = ByteRange(offset: start, length: end - start)
        let fileLayouts = registry.layouts(of: file.shared)
        let id = Self.ids.next()
        try await reserve(id, range: range, writable: writable, in: fileLayouts)

        // Reserved, and leased: now the region. Anything failing from here gives the reservation back.
        var pastEnd = false
        var flushable = flush && writable && !MemoryAccess.flushPersistent.isEmpty
        let region: MemoryRegion
        do {
            let prepared = try file.shared.prepareLayout(start: Int(start), end: Int(end), writable: writable)
            pastEnd = prepared.pastEnd
            let mapping = prepared.mapping
            // mmap maps whole pages, so the last partial page of the file is mapped too.
            let mapped = (UInt64(mapping.length) + page - 1) / page * page
            guard let base = mapping.baseAddress, end <= mapped else {
                throw RequestFailure(status: .ioError, reason: "mapping does not cover the layout")
            }
            let access: MemoryAccess = writable ? [.onDemand, .localWrite, .remoteRead, .remoteWrite] : [.onDemand, .remoteRead]
            // A NIC's FLUSH writes back CPU caches: durable on a MAP_SYNC pmem mapping only. A
            // page-cache file (an export off DAX) needs msync, which only LAYOUTCOMMIT runs.
            if !mapping.isPmem { flushable = false }
            func register(_ access: MemoryAccess) throws(VerbsError) -> MemoryRegion {
                try MemoryRegion(domain: domain, address: base + Int(start), length: Int(end - start), access: access, owner: mapping)
            }
            do {
                // A region the device will not flush is still a layout: registered without FLUSH,
                // its extent not marked, committed by LAYOUTCOMMIT.
                var withFlush: MemoryRegion?
                if flushable {
                    do { withFlush = try register(access.union(.flushPersistent)) } catch {
                        logger.notice("layout of \(file.path): registering with FLUSH_PERSISTENT failed (\(error)); LAYOUTCOMMIT only")
                    }
                }
                flushable = withFlush != nil
                region = try withFlush ?? register(access)
            } catch {
                throw RequestFailure(status: .ioError, reason: "registering the layout failed: \(error)")
            }
        } catch {
            if pastEnd { file.shared.layoutEnded(pastEnd: true) }
            fileLayouts.release(id)
            throw error
        }
        // Fault the range in now, so the client's first access is not an RNR NAK.
        if prefetch && !Self.prefetchUnsupported.load(ordering: .relaxed) {
            do { try region.prefetch(forWrite: writable) } catch {
                if case .call(_, .notSupported) = error {
                    // The device's provider has no advise_mr (rdma-core 56.1's rxe has none; it
                    // came with linux-rdma/rdma-core#1605): say so once, and stop asking.
                    if !Self.prefetchUnsupported.exchange(true, ordering: .relaxed) {
                        logger.notice("layout prefetch is not supported by this device (ibv_advise_mr: EOPNOTSUPP); layouts fault in on first access")
                    }
                } else {
                    logger.debug("prefetch of layout failed (best effort): \(error)")
                }
            }
        }
        var flags: ExtentFlags = writable ? [] : [.readOnly]
        if pastEnd { flags.insert(.pastEndOfFile) }
        if flushable { flags.insert(.persistentFlush) }
        let remote = region.remote()
        let extent = LayoutExtent(
            fileOffset: start, length: end - start, remoteAddress: remote.address, rkey: remote.rkey, flags: flags)
        let layout = Layout(
            id: id, fileId: request.fileId, file: file, fileLayouts: fileLayouts, iomode: request.iomode, extent: extent,
            region: region, pastEnd: pastEnd)
        // Known to the session before it is granted: a recall may name it from then on.
        state.withLock { $0.layouts[id] = layout }
        counters.add(ServerCounter.layoutsLive)
        counters.add(ServerCounter.mrsLive)
        counters.add(ServerCounter.bytesRegistered, extent.length)
        guard fileLayouts.confirm(id) else {
            // A recall (or lease break) started while the region was registered.
            release(id, counter: nil)
            throw RequestFailure(status: .tryLater, reason: "a recall started on the file", retryAfterMs: 200)
        }
        counters.add(ServerCounter.layoutsGranted)
        counters.add(ServerCounter.bytesLayoutGranted, end - start)
        state.withLock { $0.bytesGranted &+= end - start }
        logger.debug("layout \(id) granted: \(request.iomode) \(file.path) [\(start), \(end))")
        return LayoutGetResponse(
            stateid: layout.stateid, iomode: request.iomode, recallDeadlineMs: fileLayouts.deadlineMs, extents: [extent])
    }

    /// Reserves the range in the file's state, recalling other sessions' conflicting layouts
    /// first (twice at most: a holder may come back between a recall and the retry).
    private func reserve(_ id: UInt64, range: ByteRange, writable: Bool, in fileLayouts: FileLayouts) async throws {
        for attempt in 0..<3 {
            do {
                try fileLayouts.reserve(id, holder: self, range: range, writable: writable)
                return
            } catch .conflict where attempt < 2 {
                await fileLayouts.recall(range: range, except: self, writesOnly: !writable, reason: .conflictingLayout)
            } catch .conflict {
                break
            } catch .recalling {
                throw RequestFailure(status: .tryLater, reason: "a recall is in progress on the file", retryAfterMs: 200)
            } catch let .leaseUnavailable(why) {
                throw RequestFailure(status: .tryLater, reason: "no lease on the file (open elsewhere?): \(why)", retryAfterMs: 500)
            }
        }
        throw RequestFailure(status: .tryLater, reason: "conflicting layouts keep coming back", retryAfterMs: 200)
    }

    private func layout(_ stateid: LayoutStateid, forgettingRevoked: Bool = false) throws -> Layout {
        let (layout, revoked) = state.withLock { s in
            (s.layouts[stateid.id], forgettingRevoked ? s.revoked.remove(stateid.id) != nil : s.revoked.contains(stateid.id))
        }
        if revoked { throw RequestFailure(status: .layoutRevoked, reason: "layout \(stateid.id) was revoked") }
        guard let layout, stateid.seqid <= layout.seqid else {
            throw RequestFailure(status: .badStateid, reason: "unknown layout \(stateid)")
        }
        return layout
    }

    func commit(_ request: LayoutCommitRequest) throws -> LayoutCommitResponse {
        let layout = try layout(request.stateid)
        guard layout.iomode == .readWrite else { throw RequestFailure(status: .invalidArgument, reason: "commit of a READ layout") }
        for r in request.ranges where !layout.contains(offset: r.offset, length: r.length) {
            throw RequestFailure(status: .invalidArgument, reason: "commit range \(r.offset)+\(r.length) outside the layout")
        }
        if let newSize = request.newSize, newSize > layout.extent.fileOffset + layout.extent.length {
            throw RequestFailure(status: .invalidArgument, reason: "new size \(newSize) past the layout")
        }
        let size = try layout.file.shared.commitLayout(
            ranges: request.ranges.map { (Int($0.offset), Int($0.length)) }, newSize: request.newSize.map { Int($0) },
            touch: request.touch)
        let stateid = try state.withLock { s throws(RequestFailure) in
            guard s.layouts[layout.id] != nil else {
                throw RequestFailure(status: .layoutRevoked, reason: "layout \(layout.id) ended during its commit")
            }
            s.layouts[layout.id]!.seqid &+= 1
            return s.layouts[layout.id]!.stateid
        }
        let committed = request.ranges.reduce(0) { $0 + $1.length }
        counters.add(ServerCounter.bytesCommittedOneSided, committed)
        state.withLock { $0.bytesCommitted &+= committed }
        return LayoutCommitResponse(stateid: stateid, size: UInt64(size))
    }

    func returnLayout(_ request: LayoutReturnRequest) throws {
        let layout = try layout(request.stateid, forgettingRevoked: true)
        if let range = request.range {
            // One extent per layout: a partial range must cover it whole.
            guard range.offset <= layout.extent.fileOffset, range.end >= layout.extent.fileOffset + layout.extent.length else {
                throw RequestFailure(status: .invalidArgument, reason: "return range cuts the layout's extent")
            }
        }
        release(layout.id, counter: ServerCounter.layoutsReturned)
    }

    /// The client answered a recall with BAD_STATEID: it holds no such layout.
    func recallAcknowledged(_ ack: LayoutRecallAck, status: Status) {
        guard status == .badStateid else { return }
        let held = state.withLock { s in s.layouts.values.first { $0.recallId == ack.recallId }?.id }
        if let held { release(held, counter: ServerCounter.layoutsReturned) }
    }

    /// Ends every layout of `fileId` (CLOSE) or of the session (nil).
    func releaseAll(fileId: UInt64? = nil) {
        let ending = state.withLock { s in s.layouts.values.filter { fileId == nil || $0.fileId == fileId }.map(\.id) }
        for id in ending { release(id, counter: ServerCounter.layoutsReturned) }
    }

    // MARK: LayoutHolder

    /// Sends CB_LAYOUTRECALL; the stateid's seqid goes up with it.
    func sendRecall(layout id: UInt64, recallId: UInt32, deadlineMs: UInt32, reason: RecallReason) async {
        let recall = state.withLock { s -> (LayoutRecall, String)? in
            guard s.layouts[id] != nil else { return nil }
            s.layouts[id]!.seqid &+= 1
            s.layouts[id]!.recallId = recallId
            let l = s.layouts[id]!
            return (LayoutRecall(
                stateid: l.stateid, fileId: l.fileId, range: l.extent.range, recallId: recallId,
                deadlineMs: deadlineMs, reason: reason), "\(l.file.path)")
        }
        guard let (recall, path) = recall else { return }
        logger.info("recalling layout \(id) on \(path) from \(peer) (\(reason), recall \(recallId))")
        await sendCallback(UInt64(recallId), .layoutRecall(recall))
    }

    /// The deadline passed: the region goes, so the client's RDMA to it fails in the NIC, and
    /// the layout is remembered as revoked.
    func fence(layout id: UInt64) {
        let known = state.withLock { s -> Bool in
            guard s.layouts[id] != nil else { return false }
            s.revoked.insert(id)
            return true
        }
        if known { release(id, counter: ServerCounter.layoutsRevoked) }
    }

    /// Ends a layout: region first (no client RDMA reaches the file after), then the file's
    /// state, which may complete a recall and let the change it waited for go on.
    private func release(_ id: UInt64, counter: String?) {
        guard let layout = state.withLock({ $0.layouts.removeValue(forKey: id) }) else { return }
        layout.region.deregister()
        layout.file.shared.layoutEnded(pastEnd: layout.pastEnd)
        // Counted before the file hears of it: its release may end a recall and let a local
        // opener go on, which must then see the layout gone (RecallTests read the counters then).
        if let counter { counters.add(counter) }
        counters.subtract(ServerCounter.layoutsLive)
        counters.subtract(ServerCounter.mrsLive)
        counters.subtract(ServerCounter.bytesRegistered, layout.extent.length)
        layout.fileLayouts.release(id)
    }
}

/// Layout ids: unique for the server's lifetime, never 0.
final class IDSource: Sendable {
    private let last = Atomic<UInt64>(0)
    func next() -> UInt64 { last.add(1, ordering: .relaxed).newValue }
}
