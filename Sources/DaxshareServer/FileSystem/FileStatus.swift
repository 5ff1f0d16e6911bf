import SystemPackage

/// What STAT, OPEN and LIST report about a file (PROTOCOL.md §4.2), from
/// `struct stat`.
public struct FileStatus: Sendable, Equatable {
    /// The kinds of file the protocol tells apart.
    public enum Kind: Sendable, Equatable {
        case regular, directory, symbolicLink, other
    }

    public var kind: Kind
    public var size: Int64
    /// Permission bits (mode & 0o7777).
    public var permissions: FilePermissions
    public var linkCount: Int
    /// Last data modification, nanoseconds since the Unix epoch.
    public var modificationTime: Int64
    /// Last status change, nanoseconds since the Unix epoch.
    public var changeTime: Int64
    /// Bytes of storage allocated (st_blocks × 512): less than `size` for sparse files.
    public var allocatedSize: Int64
    public var device: UInt64
    public var inode: UInt64

    public init(_ stat: Stat) {
        switch stat.type {
        case .regular: kind = .regular
        case .directory: kind = .directory
        case .symbolicLink: kind = .symbolicLink
        default: kind = .other
        }
        size = stat.size
        permissions = stat.permissions
        linkCount = stat.linkCount
        modificationTime = Int64(stat.st_mtim.tv_sec) * 1_000_000_000 + Int64(stat.st_mtim.tv_nsec)
        changeTime = Int64(stat.st_ctim.tv_sec) * 1_000_000_000 + Int64(stat.st_ctim.tv_nsec)
        allocatedSize = stat.sizeAllocated
        device = UInt64(stat.deviceID.rawValue)
        inode = UInt64(stat.inode.rawValue)
    }
}
