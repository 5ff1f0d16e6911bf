import CLinux
import Glibc
import SystemPackage

/// What SET_ATTRIBUTES changes (PROTOCOL.md §4.22); nil leaves an attribute as it is.
public struct FileAttributeChange: Sendable, Equatable {
    /// A time to set: the server's clock when the change is made, or a given time.
    public enum Time: Sendable, Equatable {
        case now
        case at(nanosecondsSinceEpoch: Int64)
    }

    /// Permission bits (`chmod`: the umask does not apply); only 0o1777 is used: a client never
    /// makes a set-user-ID or set-group-ID file on a server that may run as root.
    public var permissions: FilePermissions?
    public var accessTime: Time?
    public var modificationTime: Time?

    public init(permissions: FilePermissions? = nil, accessTime: Time? = nil, modificationTime: Time? = nil) {
        self.permissions = permissions
        self.accessTime = accessTime
        self.modificationTime = modificationTime
    }

    /// The mode `fchmod` gets, if the permissions change.
    var mode: mode_t? { permissions.map { $0.rawValue & 0o1777 } }

    var changesTimes: Bool { accessTime != nil || modificationTime != nil }

    /// `futimens`/`utimensat`'s access and modification times (UTIME_OMIT for those left alone).
    var timespecs: (access: timespec, modification: timespec) {
        (Self.timespec(accessTime), Self.timespec(modificationTime))
    }

    static func timespec(_ time: Time?) -> Glibc.timespec {
        switch time {
        case nil: return Glibc.timespec(tv_sec: 0, tv_nsec: dxs_UTIME_OMIT)
        case .now: return Glibc.timespec(tv_sec: 0, tv_nsec: dxs_UTIME_NOW)
        case let .at(ns):
            // Floor division: tv_nsec is 0..<1e9 also before the epoch.
            var seconds = ns / 1_000_000_000, nanoseconds = ns % 1_000_000_000
            if nanoseconds < 0 {
                seconds -= 1
                nanoseconds += 1_000_000_000
            }
            return Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds))
        }
    }
}

/// The space and inodes of the file system an export is on (STATFS, PROTOCOL.md §4.23):
/// `fstatvfs` of the export's directory.
public struct FileSystemSpace: Sendable, Equatable {
    /// Bytes per block of the block counts (`f_frsize`).
    public var blockSize: UInt64
    /// Longest name, in bytes (`f_namemax`).
    public var maxNameLength: UInt64
    public var totalBlocks: UInt64
    public var freeBlocks: UInt64
    /// Free blocks for unprivileged users (`f_bavail`).
    public var availableBlocks: UInt64
    public var totalFiles: UInt64
    public var freeFiles: UInt64

    init(_ s: statvfs) {
        blockSize = UInt64(s.f_frsize != 0 ? s.f_frsize : s.f_bsize)
        maxNameLength = UInt64(s.f_namemax)
        totalBlocks = UInt64(s.f_blocks)
        freeBlocks = UInt64(s.f_bfree)
        availableBlocks = UInt64(s.f_bavail)
        totalFiles = UInt64(s.f_files)
        freeFiles = UInt64(s.f_ffree)
    }
}
