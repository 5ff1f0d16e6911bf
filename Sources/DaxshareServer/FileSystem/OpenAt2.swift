import CLinux
import Glibc
import SystemPackage

/// How `openat2` may resolve a path (`RESOLVE_*` from <linux/openat2.h>).
struct ResolveFlags: OptionSet {
    let rawValue: UInt64
    /// Don't cross a mount point.
    static let noCrossingMounts = ResolveFlags(rawValue: UInt64(RESOLVE_NO_XDEV))
    /// Refuse /proc "magic links" such as /proc/self/fd/N (ELOOP).
    static let noMagicLinks = ResolveFlags(rawValue: UInt64(RESOLVE_NO_MAGICLINKS))
    /// Refuse every symlink (ELOOP).
    static let noSymlinks = ResolveFlags(rawValue: UInt64(RESOLVE_NO_SYMLINKS))
    /// Never leave the starting directory: absolute paths, ".." above it,
    /// and symlinks that lead out all fail with EXDEV.
    static let beneath = ResolveFlags(rawValue: UInt64(RESOLVE_BENEATH))

    /// What the server uses for every client path.
    static let confined: ResolveFlags = [.beneath, .noMagicLinks]
}

/// Opens `path` relative to `directory` with `openat2(2)`; O_CLOEXEC is
/// always added. The kernel does the confinement in one walk, so there is no
/// window between checking a path and opening it.
func openat2(
    _ directory: FileDescriptor, _ path: String, flags: Int32, mode: mode_t = 0,
    resolve: ResolveFlags
) throws(Errno) -> FileDescriptor {
    let flags = UInt64(UInt32(bitPattern: flags | O_CLOEXEC))
    let fd = try retryingInterrupts {
        dxs_openat2(directory.rawValue, path, flags, UInt64(mode), resolve.rawValue)
    }
    return FileDescriptor(rawValue: fd)
}
