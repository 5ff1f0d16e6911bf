import DaxsharePmem
import DaxshareVerbs
import DaxshareWire
import Logging
import Synchronization

/// One session's layouts (PROTOCOL.md §5): LAYOUTGET registers the range of
/// the file's mapping in the connection's protection domain and prefetches
/// it; LAYOUTCOMMIT persists what the client wrote; LAYOUTRETURN, CLOSE and
/// the end of the connection deregister.
final class SessionLayouts {
    private let domain: ProtectionDomain
    private let counters: ServerCounters
    private let logger: Logger
    private let recallDeadlineMs: UInt32
    private let maxLayouts: Int
    private var layouts: [UInt64: Layout] = [:]
    private static let ids = IDSource()

    init(domain: ProtectionDomain, counters: ServerCounters, logger: Logger, recallDeadlineMs: UInt32, maxLayouts: Int) {
        self.domain = domain
        self.counters = counters
        self.logger = logger
        self.recallDeadlineMs = recallDeadlineMs
        self.maxLayouts = maxLayouts
    }

    var count: Int { layouts.count }

    func get(_ request: LayoutGetRequest, file: OpenFile) throws -> LayoutGetResponse {
        let writable = request.iomode == .readWrite
        if writable {
            guard !file.export.isReadOnly else { throw RequestFailure(status: .readOnly, reason: "RW layout on a read-only export") }
            guard file.canWrite else { throw RequestFailure(status: .accessDenied, reason: "RW layout on a file opened read-only") }
        } else {
            guard file.canRead else { throw RequestFailure(status: .accessDenied, reason: "READ layout on a file opened write-only") }
        }
        guard layouts.count < maxLayouts else { throw RequestFailure(status: .tooMany, reason: "\(layouts.count) layouts held") }

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
        let (mapping, pastEnd) = try file.shared.prepareLayout(end: Int(end), writable: writable)
        guard let base = mapping.baseAddress, Int(end) <= mapping.length else {
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
        do { try region.prefetch(forWrite: writable) } catch {
            logger.debug("prefetch of layout failed (best effort): \(error)")
        }
        var flags: ExtentFlags = writable ? [] : [.readOnly]
        if pastEnd { flags.insert(.pastEndOfFile) }
        let remote = region.remote()
        let extent = LayoutExtent(
            fileOffset: start, length: end - start, remoteAddress: remote.address, rkey: remote.rkey, flags: flags)
        let layout = Layout(
            id: Self.ids.next(), fileId: request.fileId, file: file, iomode: request.iomode, extent: extent,
            region: region, pastEnd: pastEnd)
        layouts[layout.id] = layout
        counters.add(ServerCounter.layoutsGranted)
        counters.add(ServerCounter.layoutsLive)
        counters.add(ServerCounter.mrsLive)
        counters.add(ServerCounter.bytesLayoutGranted, end - start)
        logger.debug("layout \(layout.id) granted: \(request.iomode) \(file.path) [\(start), \(end))")
        return LayoutGetResponse(stateid: layout.stateid, iomode: request.iomode, recallDeadlineMs: recallDeadlineMs, extents: [extent])
    }

    private func layout(_ stateid: LayoutStateid) throws -> Layout {
        guard let layout = layouts[stateid.id], stateid.seqid <= layout.seqid else {
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
        layout.seqid &+= 1
        counters.add(ServerCounter.bytesCommittedOneSided, request.ranges.reduce(0) { $0 + $1.length })
        return LayoutCommitResponse(stateid: layout.stateid, size: UInt64(size))
    }

    func returnLayout(_ request: LayoutReturnRequest) throws {
        let layout = try layout(request.stateid)
        if let range = request.range {
            // One extent per layout: a partial range must cover it whole.
            guard range.offset <= layout.extent.fileOffset, range.end >= layout.extent.fileOffset + layout.extent.length else {
                throw RequestFailure(status: .invalidArgument, reason: "return range cuts the layout's extent")
            }
        }
        release(layout, counter: ServerCounter.layoutsReturned)
    }

    /// Ends every layout of `fileId` (CLOSE) or of the session (nil).
    func releaseAll(fileId: UInt64? = nil) {
        for layout in layouts.values where fileId == nil || layout.fileId == fileId {
            release(layout, counter: ServerCounter.layoutsReturned)
        }
    }

    private func release(_ layout: Layout, counter: String) {
        layouts.removeValue(forKey: layout.id)
        layout.region.deregister()
        layout.file.shared.layoutEnded(pastEnd: layout.pastEnd)
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
