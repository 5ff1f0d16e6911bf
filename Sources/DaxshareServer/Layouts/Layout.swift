import DaxshareVerbs
import DaxshareWire

/// A granted layout: one extent of one file, registered as an on-demand memory region in the
/// holder's protection domain, covering only that extent. A READ layout's region has no
/// remote-write access, so the NIC, not the server, refuses a write through it. A value:
/// `SessionLayouts` keeps it under its lock, and `FileLayouts` knows it by `id`.
struct Layout: Sendable {
    let id: UInt64
    var seqid: UInt32 = 1
    /// The recall this layout is answering, if any.
    var recallId: UInt32?
    let fileId: UInt64
    let file: OpenFile
    let fileLayouts: FileLayouts
    let iomode: LayoutIOMode
    let extent: LayoutExtent
    let region: MemoryRegion
    /// The extent reaches past the visible size (PROTOCOL.md §5.7).
    let pastEnd: Bool

    var stateid: LayoutStateid { LayoutStateid(id: id, seqid: seqid) }

    /// Whether `[offset, offset + length)` lies inside the extent.
    func contains(offset: UInt64, length: UInt64) -> Bool {
        offset >= extent.fileOffset && length <= extent.length && offset - extent.fileOffset <= extent.length - length
    }
}
