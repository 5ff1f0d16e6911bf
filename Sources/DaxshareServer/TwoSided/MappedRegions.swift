import DaxsharePmem
import DaxshareVerbs
import Synchronization

/// A connection's on-demand regions over the mappings of files it READs (`ClientConnection.
/// readMapped`): the NIC sends a large READ's bytes from the file's pages itself. One region
/// per open file, a window of its mapping, kept while the file is open, so a READ in the
/// window neither registers nor faults its pages in again (a new region's pages are faulted
/// on the NIC's first touch). On-demand paging follows the mapping as it grows and shrinks;
/// a READ outside the window, or on a file mapped anew at another address, gets a new window.
/// A window replaced by another is deregistered when the last RDMA WRITE from it is done (its
/// completion handler holds it). When the file closes, its window, and any replaced one a WRITE
/// still holds, is deregistered at once, before the file can be unmapped: a WRITE still going
/// from it then fails (and the connection with it), but can never read whatever the address
/// space maps there next.
final class MappedRegions: Sendable {
    /// Largest window: an on-demand region costs the kernel 16 bytes per page of it.
    static let window = 64 << 20

    private struct Entry {
        var mapping: ObjectIdentifier
        var region: MemoryRegion
        /// Windows this one replaced that a WRITE may still hold: deregistered with it.
        var replaced: [Weak] = []
    }
    private struct Weak { weak var region: MemoryRegion? }
    private let regions = Mutex<[UInt64: Entry]>([:])
    private let domain: ProtectionDomain

    init(domain: ProtectionDomain) { self.domain = domain }

    /// The region holding `range`'s bytes of file `fileId`: the file's window, registered now
    /// if it does not hold them. `ibv_reg_mr(IBV_ACCESS_ON_DEMAND)`, local access only.
    func region(for fileId: UInt64, _ range: MappedRange) throws(VerbsError) -> MemoryRegion {
        guard let address = range.address, range.count > 0 else { throw .invalidArgument("empty mapped range") }
        let mapping = ObjectIdentifier(range.mapping)
        let held = regions.withLock { r -> MemoryRegion? in
            guard let e = r[fileId], e.mapping == mapping, e.region.address <= address,
                address + range.count <= e.region.address + e.region.length
            else { return nil }
            return e.region
        }
        if let held { return held }
        guard let base = range.mapping.baseAddress else { throw .invalidArgument("file unmapped") }
        let window = Self.window(offset: address - base, count: range.count, mappedLength: range.mapping.length)
        let region = try MemoryRegion(
            domain: domain, address: base + window.lowerBound, length: window.count, access: [.onDemand],
            owner: range.mapping)
        regions.withLock { r in
            var replaced = r[fileId].map { [Weak(region: $0.region)] + $0.replaced } ?? []
            replaced.removeAll { $0.region == nil }
            r[fileId] = Entry(mapping: mapping, region: region, replaced: replaced)
        }
        return region
    }

    /// The window for `count` bytes at `offset` of a mapping of `mappedLength` bytes: from
    /// `offset` rounded down to a multiple of `window`, one window long but not past the
    /// mapping's end, and always holding the bytes asked for (even a read crossing windows).
    static func window(offset: Int, count: Int, mappedLength: Int, window: Int = window) -> Range<Int> {
        let start = offset / window * window
        let end = max(min(start + window, mappedLength), offset + count)
        return start..<end
    }

    /// Deregisters file `fileId`'s window (CLOSE).
    func drop(_ fileId: UInt64) {
        if let e = regions.withLock({ $0.removeValue(forKey: fileId) }) { Self.deregister(e) }
    }

    /// Deregisters every window (the connection ends).
    func dropAll() {
        let all = regions.withLock { r in
            defer { r.removeAll() }
            return Array(r.values)
        }
        for e in all { Self.deregister(e) }
    }

    private static func deregister(_ e: Entry) {
        e.region.deregister()
        for r in e.replaced { r.region?.deregister() }
    }
}
