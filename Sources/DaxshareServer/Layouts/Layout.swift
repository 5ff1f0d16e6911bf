import DaxsharePmem
import DaxshareVerbs
import DaxshareWire

/// A granted layout: one extent of one file, registered as an on-demand
/// memory region in the holder's protection domain, covering only that
/// extent. A READ layout's region has no remote-write access, so the NIC, not
/// the server, refuses a write through it.
final class Layout: @unchecked Sendable {
    let id: UInt64
    var seqid: UInt32 = 1
    /// The recall this layout is answering, if any.
    var recallId: UInt32?
    let fileId: UInt64
    let file: OpenFile
    let iomode: LayoutIOMode
    let extent: LayoutExtent
    let region: MemoryRegion
    /// The extent reaches past the visible size (PROTOCOL.md §5.7).
    let pastEnd: Bool

    init(id: UInt64, fileId: UInt64, file: OpenFile, iomode: LayoutIOMode, extent: LayoutExtent, region: MemoryRegion, pastEnd: Bool) {
        self.id = id
        self.fileId = fileId
        self.file = file
        self.iomode = iomode
        self.extent = extent
        self.region = region
        self.pastEnd = pastEnd
    }

    var stateid: LayoutStateid { LayoutStateid(id: id, seqid: seqid) }

    /// Whether the extent shares a byte with `range`.
    func overlaps(_ range: ByteRange) -> Bool {
        range.offset < extent.fileOffset + extent.length && extent.fileOffset < range.end
    }

    /// Whether `[offset, offset + length)` lies inside the extent.
    func contains(offset: UInt64, length: UInt64) -> Bool {
        offset >= extent.fileOffset && length <= extent.length && offset - extent.fileOffset <= extent.length - length
    }
}
