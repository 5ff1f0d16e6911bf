@testable import DaxshareClient
import DaxshareWire
import Synchronization

/// One fake "memory region" of a layout extent: heap memory standing in for the server's pmem
/// mapping, found by rkey, with its bounds and mode checked as a NIC would.
final class FakeRegion: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    let fileOffset: UInt64
    let writable: Bool
    init(length: Int, fileOffset: UInt64, writable: Bool, contents: ArraySlice<UInt8>) {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 4096)
        b.initializeMemory(as: UInt8.self, repeating: 0)
        contents.withUnsafeBytes { src in b.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<min(src.count, length)])) }
        bytes = b
        self.fileOffset = fileOffset
        self.writable = writable
    }
    deinit { bytes.deallocate() }
    var address: UInt64 { UInt64(UInt(bitPattern: bytes.baseAddress!)) }
}

struct FakeStatus: Error { let status: Status }

struct FakeLayout: Sendable {
    var fileId: UInt64
    var path: String
    var iomode: LayoutIOMode
    var seqid: UInt32 = 1
    var rkeys: [UInt32]
    var extents: [LayoutExtent]
    var revoked = false
}

/// How the fake server grants layouts, and what it saw.
struct FakeLayoutState: Sendable {
    /// Refuse the next `refusals.count` LAYOUTGETs with these statuses (in order).
    var refusals: [Status] = []
    var retryAfterMs: UInt32 = 1
    /// Grant layouts as extents of at most this many bytes (several MRs per layout).
    var extentSize: UInt64 = 1 << 40
    /// Answer the next LAYOUTCOMMIT LAYOUT_REVOKED (as after a fence).
    var revokeOnNextCommit = false
    /// Send a CB_LAYOUTRECALL with this recall id right behind the next grant's reply (a local
    /// open on the server just after the LAYOUTGET).
    var recallBehindNextGrant: UInt32?
    var regions: [UInt32: FakeRegion] = [:]
    var layouts: [UInt64: FakeLayout] = [:]
    var nextId: UInt64 = 100
    var nextRkey: UInt32 = 0x1000
    var gets: [LayoutGetRequest] = []
    var commits: [LayoutCommitRequest] = []
    var returns: [LayoutReturnRequest] = []
    var bytesRead = 0, bytesWritten = 0
    /// RDMA FLUSHes the fake NIC carried out, by span.
    var flushes: [RemoteSpan] = []
    var inFlight = 0, maxInFlight = 0
}

extension FakeServer {
    func layoutGet(_ g: LayoutGetRequest, header h: MessageHeader) -> [Message] {
        let path = state.withLock { $0.open[g.fileId] }
        guard let path, let data = file(path) else { return [Message.error(.staleFile, to: h)] }
        return layoutState.withLock { s -> [Message] in
            s.gets.append(g)
            if !s.refusals.isEmpty {
                return [Message.error(s.refusals.removeFirst(), to: h, retryAfterMs: s.retryAfterMs)]
            }
            var end = g.offset + g.length
            if g.iomode == .read {
                end = min(end, LayoutPlan.roundUp(UInt64(data.count), 4096))
                if end < g.offset + g.minLength || end <= g.offset { return [Message.error(.invalidArgument, to: h)] }
            }
            if (end - g.offset + s.extentSize - 1) / s.extentSize > UInt64(Limits.maxExtentsPerLayout) {
                return [Message.error(.tooMany, to: h)]
            }
            let id = s.nextId
            s.nextId += 1
            var extents: [LayoutExtent] = []
            var rkeys: [UInt32] = []
            var pos = g.offset
            while pos < end {
                let n = min(s.extentSize, end - pos)
                let lo = min(Int(pos), data.count), hi = min(Int(pos + n), data.count)
                let region = FakeRegion(length: Int(n), fileOffset: pos, writable: g.iomode == .readWrite, contents: data[lo..<hi])
                let rkey = s.nextRkey
                s.nextRkey += 1
                s.regions[rkey] = region
                rkeys.append(rkey)
                var flags: ExtentFlags = g.iomode == .read ? [.readOnly] : []
                if pos + n > UInt64(data.count) && g.iomode == .readWrite { flags.insert(.pastEndOfFile) }
                if options.rdmaFlush && g.iomode == .readWrite { flags.insert(.persistentFlush) }
                extents.append(LayoutExtent(fileOffset: pos, length: n, remoteAddress: region.address, rkey: rkey, flags: flags))
                pos += n
            }
            s.layouts[id] = FakeLayout(fileId: g.fileId, path: path, iomode: g.iomode, rkeys: rkeys, extents: extents)
            var replies = [Message.response(.layoutGet(LayoutGetResponse(stateid: LayoutStateid(id: id, seqid: 1), iomode: g.iomode,
                                                                         recallDeadlineMs: 5000, extents: extents)), to: h)]
            if let recallId = s.recallBehindNextGrant {
                s.recallBehindNextGrant = nil
                s.layouts[id]!.seqid += 1
                let r = LayoutRecall(stateid: LayoutStateid(id: id, seqid: 2), fileId: g.fileId,
                                     range: ByteRange(offset: 0, length: UInt64(Int64.max)), recallId: recallId, deadlineMs: 5000,
                                     reason: .leaseBreak)
                replies.append(Message(messageId: 1, sessionId: options.sessionId, body: .callback(.layoutRecall(r))))
            }
            return replies
        }
    }

    func layoutCommit(_ c: LayoutCommitRequest, header h: MessageHeader) -> [Message] {
        let result = layoutState.withLock { s -> Result<(FakeLayout, [(ByteRange, [UInt8])]), FakeStatus> in
            s.commits.append(c)
            guard var l = s.layouts[c.stateid.id] else { return .failure(FakeStatus(status: .badStateid)) }
            if s.revokeOnNextCommit {
                s.revokeOnNextCommit = false
                l.revoked = true
                for k in l.rkeys { s.regions[k] = nil }
                s.layouts[c.stateid.id] = l
            }
            if l.revoked { return .failure(FakeStatus(status: .layoutRevoked)) }
            guard l.iomode == .readWrite else { return .failure(FakeStatus(status: .invalidArgument)) }
            var copies: [(ByteRange, [UInt8])] = []
            // A range may span adjacent extents ("inside the layout's extents"): copy piecewise.
            for r in c.ranges {
                guard LayoutPlan.covers(l.extents, r.offset, r.end) else { return .failure(FakeStatus(status: .invalidArgument)) }
                for (e, k) in zip(l.extents, l.rkeys) {
                    let lo = max(r.offset, e.fileOffset), hi = min(r.end, e.fileOffset + e.length)
                    guard lo < hi, let region = s.regions[k] else { continue }
                    let at = Int(lo - e.fileOffset)
                    copies.append((ByteRange(offset: lo, length: hi - lo), Array(region.bytes[at..<(at + Int(hi - lo))])))
                }
            }
            l.seqid += 1
            s.layouts[c.stateid.id] = l
            return .success((l, copies))
        }
        switch result {
        case let .failure(f): return [Message.error(f.status, to: h)]
        case let .success((l, copies)):
            let size = state.withLock { s -> UInt64 in
                var d = s.nodes[l.path]!.data
                for (r, bytes) in copies {
                    if d.count < Int(r.end) { d += [UInt8](repeating: 0, count: Int(r.end) - d.count) }
                    d.replaceSubrange(Int(r.offset)..<Int(r.end), with: bytes)
                }
                if let n = c.newSize, d.count < Int(n) {
                    // Bytes a FLUSH made durable past the old size become visible; the rest reads as zero.
                    let flushed = s.nodes[l.path]!.flushed
                    d += (d.count..<Int(n)).map { $0 < flushed.count ? flushed[$0] : 0 }
                }
                s.nodes[l.path]!.data = d
                return UInt64(d.count)
            }
            return [Message.response(.layoutCommit(LayoutCommitResponse(stateid: LayoutStateid(id: c.stateid.id, seqid: l.seqid), size: size)), to: h)]
        }
    }

    func layoutReturn(_ r: LayoutReturnRequest, header h: MessageHeader) -> [Message] {
        let status = layoutState.withLock { s -> Status in
            s.returns.append(r)
            guard let l = s.layouts.removeValue(forKey: r.stateid.id) else { return .badStateid }
            for k in l.rkeys { s.regions[k] = nil }
            return l.revoked ? .layoutRevoked : .ok
        }
        return status == .ok ? [Message.response(.layoutReturn, to: h)] : [Message.error(status, to: h)]
    }

    /// Fences a layout as the server does at a recall deadline: its regions go away (RDMA to
    /// them fails) and LAYOUTCOMMIT answers LAYOUT_REVOKED.
    func fence(layoutId: UInt64) {
        layoutState.withLock { s in
            guard var l = s.layouts[layoutId] else { return }
            l.revoked = true
            for k in l.rkeys { s.regions[k] = nil }
            s.layouts[layoutId] = l
        }
    }

    /// A CB_LAYOUTRECALL of the whole layout, as the server would send it.
    func recall(layoutId: UInt64, recallId: UInt32 = 7) -> Message? {
        layoutState.withLock { s -> Message? in
            guard var l = s.layouts[layoutId] else { return nil }
            l.seqid += 1
            s.layouts[layoutId] = l
            let r = LayoutRecall(stateid: LayoutStateid(id: layoutId, seqid: l.seqid), fileId: l.fileId,
                                 range: ByteRange(offset: 0, length: UInt64(Int64.max)), recallId: recallId, deadlineMs: 5000,
                                 reason: .leaseBreak)
            return Message(messageId: 1, sessionId: options.sessionId, body: .callback(.layoutRecall(r)))
        }
    }

    var liveLayouts: [UInt64] { layoutState.withLock { Array($0.layouts.keys).sorted() } }
}

/// "RDMA" against the fake server's regions: memcpy, with the NIC's checks (rkey known,
/// range inside the region, write access) failing as remote access errors.
final class FakeRemoteAccess: RemoteMemoryAccess {
    let server: FakeServer
    let delayMicroseconds: Int
    init(server: FakeServer, delayMicroseconds: Int = 200) {
        self.server = server
        self.delayMicroseconds = delayMicroseconds
    }

    private func region(_ remote: RemoteSpan, write: Bool) throws(OneSidedFailure) -> (FakeRegion, Int) {
        guard let region = server.layoutState.withLock({ $0.regions[remote.rkey] }) else {
            throw .remoteAccess("unknown rkey \(remote.rkey)")
        }
        guard remote.address >= region.address, remote.address + remote.length <= region.address + UInt64(region.bytes.count) else {
            throw .remoteAccess("outside the region")
        }
        if write && !region.writable { throw .remoteAccess("region is read-only") }
        return (region, Int(remote.address - region.address))
    }

    private func enter() async {
        server.layoutState.withLock { s in
            s.inFlight += 1
            s.maxInFlight = max(s.maxInFlight, s.inFlight)
        }
        try? await Task.sleep(for: .microseconds(delayMicroseconds))
    }
    private func leave() { server.layoutState.withLock { $0.inFlight -= 1 } }

    /// Operations whose local side was the caller's registered memory (zero-copy).
    let direct = Mutex(0)
    private func note(_ local: any RegisteredMemory) { if local is CallerMemory { direct.withLock { $0 += 1 } } }

    func read(into local: any RegisteredMemory, offset: Int, from remote: RemoteSpan) async throws(OneSidedFailure) {
        await enter()
        defer { leave() }
        let (region, at) = try region(remote, write: false)
        note(local)
        let n = Int(remote.length)
        local.bytes.baseAddress!.advanced(by: offset).copyMemory(from: region.bytes.baseAddress! + at, byteCount: n)
        server.layoutState.withLock { $0.bytesRead += n }
    }

    func write(from local: any RegisteredMemory, offset: Int, to remote: RemoteSpan) async throws(OneSidedFailure) {
        await enter()
        defer { leave() }
        let (region, at) = try region(remote, write: true)
        note(local)
        let n = Int(remote.length)
        (region.bytes.baseAddress! + at).copyMemory(from: local.bytes.baseAddress!.advanced(by: offset), byteCount: n)
        server.layoutState.withLock { $0.bytesWritten += n }
    }

    var canFlush: Bool { server.options.rdmaFlush }

    /// The NIC's FLUSH: the region must take it (an RW extent marked PERSISTENT_FLUSH); the
    /// flushed bytes become the file's durable bytes, the size untouched (past the end of file
    /// they are kept for the LAYOUTCOMMIT that grows it).
    func flush(_ remote: RemoteSpan) async throws(OneSidedFailure) {
        await enter()
        defer { leave() }
        let (region, at) = try region(remote, write: true)
        let path = server.layoutState.withLock { s -> String? in
            s.flushes.append(remote)
            return s.layouts.values.first { $0.rkeys.contains(remote.rkey) }?.path
        }
        guard let path else { throw .remoteAccess("no layout holds rkey \(remote.rkey)") }
        let bytes = Array(UnsafeRawBufferPointer(rebasing: region.bytes[at..<(at + Int(remote.length))]))
        let start = Int(region.fileOffset) + at
        server.state.withLock { s in
            var n = s.nodes[path]!
            if n.flushed.count < start + bytes.count { n.flushed += [UInt8](repeating: 0, count: start + bytes.count - n.flushed.count) }
            n.flushed.replaceSubrange(start..<(start + bytes.count), with: bytes)
            let inside = max(0, min(bytes.count, n.data.count - start))
            if inside > 0 { n.data.replaceSubrange(start..<(start + inside), with: bytes[0..<inside]) }
            s.nodes[path] = n
        }
    }
}
