import DaxshareClient
import DaxshareWire
#if canImport(Glibc)
import Glibc
#endif

/// The errno a FUSE reply carries for a client error: what a program on the mount sees.
///
/// Statuses map to their POSIX meaning (PROTOCOL.md §3.5). A lost connection is EIO, as on
/// an NFS hard mount that gave up; a layout lost with bytes that were reported written is
/// EIO too (the write(2) or fsync(2) that sees it tells the program those bytes are gone).
public enum Errno {
    public static func code(for error: ClientError) -> Int32 {
        switch error {
        case let .status(status, _, _): return code(for: status)
        case .transport, .protocol: return EIO
        case .authentication: return EACCES
        case .badURL, .invalidArgument: return EINVAL
        case .localIO: return EIO
        case .layoutLost: return EIO
        }
    }

    public static func code(for status: Status) -> Int32 {
        switch status {
        case .tryLater: return EAGAIN
        case .layoutRevoked: return EIO
        case .accessDenied: return EACCES
        case .notFound: return ENOENT
        case .exists: return EEXIST
        case .notDirectory: return ENOTDIR
        case .isDirectory: return EISDIR
        case .invalidArgument: return EINVAL
        case .noSpace: return ENOSPC
        case .ioError: return EIO
        case .tooMany: return EMFILE
        case .readOnly: return EROFS
        case .notSupported: return EOPNOTSUPP
        case .staleFile: return ESTALE
        case .notEmpty: return ENOTEMPTY
        case .nameTooLong: return ENAMETOOLONG
        case .fileTooLarge: return EFBIG
        case .shuttingDown: return ESHUTDOWN
        case .exportRemoved: return ENODEV
        case .notAuthenticated, .authFailed: return EACCES
        default: return EIO
        }
    }
}

/// open(2)'s flags as OPEN's (PROTOCOL.md §4.10). O_APPEND needs nothing from the server: the
/// kernel puts each write at the size it knows. O_SYNC and O_DSYNC ask for write-through.
public enum OpenFlagsMapping {
    public static func flags(posix: Int32, creating: Bool) -> OpenFlags {
        var flags: OpenFlags
        switch posix & O_ACCMODE {
        case O_WRONLY: flags = [.write]
        case O_RDWR: flags = [.read, .write]
        default: flags = [.read]
        }
        if posix & O_TRUNC != 0 && flags.contains(.write) { flags.insert(.truncate) }
        if creating {
            flags.insert(.create)
            if posix & O_EXCL != 0 { flags.insert(.exclusive) }
        }
        if posix & O_DSYNC != 0 && flags.contains(.write) { flags.insert(.writeThrough) }
        return flags
    }
}
