import DaxsharePmem
import DaxshareVerbs
import DaxshareWire
import Logging
import Synchronization

/// One session's layouts (PROTOCOL.md §5): LAYOUTGET registers the range of
/// the file's mapping in the connection's protection domain and prefetches
/// it; LAYOUTCOMMIT persists what the client wrote; LAYOUTRETURN, CLOSE and
/// the end of the connection deregister. A recall from another task may
/// fence a layout at any time, hence the lock.
final class SessionLayouts: @unchecked Sendable {
    private let domain: ProtectionDomain
    private let registry: LayoutRegistry
    private let counters: ServerCounters
    private let logger: Logger
    private let maxLayouts: Int
    private let prefetch: Bool
    private let sendCallback: @Sendable (UInt64, Callback) async -> Void
    let peer: String
    private struct State {
        var layouts: [UInt64: Layout] = [:]
        /// Fenced layouts: later COMMIT/RETURN get LAYOUT_REVOKED (RETURN forgets it).
        var revoked: Set<UInt64> = []
    }
    private let state = Mutex(State())
    private static let ids = IDSource()

    init(
        domain: ProtectionDomain, registry: LayoutRegistry, counters: ServerCounters, logger: Logger, maxLayouts: Int,
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

    func get(_ request: LayoutGetRequest, file: OpenFile) async throws -> LayoutGetResponse {
        let writable = request.iomode == .readWrite
        if writable {
            guard !file.export.isReadOnly else { throw RequestFailure(status: .readOnly, reason: "RW layout on a read-only export") }
            guard file.canWrite else { throw RequestFailure(status: .accessDenied, reason: "RW layout on a file opened read-only") }
        } else {
            guard file.canRead else { throw RequestFailure(status: .accessDenied, reason: "READ layout on a file opened write-only") }
        }
        guard count < maxLayouts else { throw RequestFailure(status: .tooMany, reason: "\(count) layouts held") }
        try registry.checkNotRecalling(file.shared.key)

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
        // Other sessions' layouts that conflict (one side RW) are recalled first.
        let range = ByteRange(offset: start, length: end - start)
        if registry.hasConflict(file.shared.key, range: range, requester: self, writesOnly: !writable) {
            await registry.recall(file.shared.key, range: range, requester: self, reason: .conflictingLayout, writesOnly: !writable)
        }

        let (mapping, pastEnd) = try file.shared.prepareLayout(end: Int(end), writable: writable)
        // mmap maps whole pages, so the last partial page of the file is mapped too.
        let mapped = (UInt64(mapping.length) + page - 1) / page * page
        guard let base = mapping.baseAddress, end <= mapped else {
            if pastEnd { file.shared.layoutEnded(pastEnd: true) }
            throw RequestFailure(status: .ioError, reason: "mapping does not cover the layout")
        }
        let access: MemoryAccess = writable ? [.onDemand, .localWrite, .remoteRead, .remoteWrite] : [.onDemand, .remoteRead]
        let region: MemoryRegion
        do {
            region = try MemoryRegion(
                domain: domain, address: base + Int(start), length: Int(end - start), access: access, owner: mapping)
        } catch {
            if pastEnd { file.shared.layoutEnded(pastEnd: true) }
            throw RequestFailure(status: .ioError, reason: "registering the layout failed: \(error)")
        }
        // Fault the range in now, so the client's first access is not an RNR NAK.
        if prefetch {
            do { try region.prefetch(forWrite: writable) } catch {
                logger.debug("prefetch of layout failed (best effort): \(error)")
            }
        }
        var flags: ExtentFlags = writable ? [] : [.readOnly]
        if pastEnd { flags.insert(.pastEndOfFile) }
        let remote = region.remote()
        let extent = LayoutExtent(
            fileOffset: start, length: end - start, remoteAddress: remote.address, rkey: remote.rkey, flags: flags)
        let layout = Layout(
            id: Self.ids.next(), fileId: request.fileId, file: file, iomode: request.iomode, extent: extent,
            region: region, pastEnd: pastEnd)
        state.withLock { $0.layouts[layout.id] = layout }
        registry.add(layout, owner: self)
        counters.add(ServerCounter.layoutsGranted)
        counters.add(ServerCounter.layoutsLive)
        counters.add(ServerCounter.mrsLive)
        counters.add(ServerCounter.bytesLayoutGranted, end - start)
        logger.debug("layout \(layout.id) granted: \(request.iomode) \(file.path) [\(start), \(end))")
        return LayoutGetResponse(stateid: layout.stateid, iomode: request.iomode, recallDeadlineMs: registry.deadlineMs, extents: [extent])
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
            ranges: request.ranges.map { (Int($0.offset), Int($0.length)) }, newSize: request.newSize.map { Int($0) })
        let stateid = state.withLock { _ in
            layout.seqid &+= 1
            return layout.stateid
        }
        counters.add(ServerCounter.bytesCommittedOneSided, request.ranges.reduce(0) { $0 + $1.length })
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
        release(layout, counter: ServerCounter.layoutsReturned)
    }

    /// The client answered a recall with BAD_STATEID: it holds no such layout.
    func recallAcknowledged(_ ack: LayoutRecallAck, status: Status) {
        guard status == .badStateid else { return }
        let held = state.withLock { s in s.layouts.values.first { $0.recallId == ack.recallId } }
        if let held { release(held, counter: ServerCounter.layoutsReturned) }
    }

    /// Ends every layout of `fileId` (CLOSE) or of the session (nil).
    func releaseAll(fileId: UInt64? = nil) {
        let ending = state.withLock { s in s.layouts.values.filter { fileId == nil || $0.fileId == fileId } }
        for layout in ending { release(layout, counter: ServerCounter.layoutsReturned) }
    }

    // MARK: Recall and fencing

    /// Sends CB_LAYOUTRECALL for `layout`; the stateid's seqid goes up with it.
    func sendRecall(_ layout: Layout, recallId: UInt32, deadlineMs: UInt32, reason: RecallReason) async {
        let stateid = state.withLock { _ in
            layout.seqid &+= 1
            layout.recallId = recallId
            return layout.stateid
        }
        let recall = LayoutRecall(
            stateid: stateid, fileId: layout.fileId, range: layout.extent.range, recallId: recallId,
            deadlineMs: deadlineMs, reason: reason)
        logger.info("recalling layout \(layout.id) on \(layout.file.path) from \(peer) (\(reason), recall \(recallId))")
        await sendCallback(UInt64(recallId), .layoutRecall(recall))
    }

    /// The deadline passed: the region goes, so the client's RDMA to it fails
    /// in the NIC, and the layout is remembered as revoked.
    func fence(_ layout: Layout) {
        state.withLock { _ = $0.revoked.insert(layout.id) }
        release(layout, counter: ServerCounter.layoutsRevoked)
    }

    private func release(_ layout: Layout, counter: String) {
        let present = state.withLock { $0.layouts.removeValue(forKey: layout.id) != nil }
        guard present else { return }
        layout.region.deregister()
        layout.file.shared.layoutEnded(pastEnd: layout.pastEnd)
        registry.remove(layout)
        counters.add(counter)
        counters.subtract(ServerCounter.layoutsLive)
        counters.subtract(ServerCounter.mrsLive)
    }
}

/// Layout ids: unique for the server's lifetime, never 0.
final class IDSource: Sendable {
    private let last = Atomic<UInt64>(0)
    func next() -> UInt64 { last.add(1, ordering: .relaxed).newValue }
}
