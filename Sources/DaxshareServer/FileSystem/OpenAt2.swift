import Glibc
import SystemPackage

/// `struct open_how` from <linux/openat2.h>: three 64-bit fields.
struct OpenHow {
    var flags: UInt64
    var mode: UInt64
    var resolve: UInt64
}

/// How `openat2` may resolve a path (`RESOLVE_*`).
struct ResolveFlags: OptionSet {
    let rawValue: UInt64
    /// Don't cross a mount point.
    static let noCrossingMounts = ResolveFlags(rawValue: 0x01)
    /// Refuse /proc "magic links" such as /proc/self/fd/N (ELOOP).
    static let noMagicLinks = ResolveFlags(rawValue: 0x02)
    /// Refuse every symlink (ELOOP).
    static let noSymlinks = ResolveFlags(rawValue: 0x04)
    /// Never leave the starting directory: absolute paths, ".." above it,
    /// and symlinks that lead out all fail with EXDEV.
    static let beneath = ResolveFlags(rawValue: 0x08)

    /// What the server uses for every client path.
    static let confined: ResolveFlags = [.beneath, .noMagicLinks]
}

let SYS_openat2 = 437

/// Opens `path` relative to `directory` with `openat2(2)`; O_CLOEXEC is
/// always added. The kernel does the confinement in one walk, so there is no
/// window between checking a path and opening it.
func openat2(
    _ directory: FileDescriptor, _ path: String, flags: Int32, mode: mode_t = 0,
    resolve: ResolveFlags
) throws(Errno) -> FileDescriptor {
    var how = OpenHow(
        flags: UInt64(UInt32(bitPattern: flags | O_CLOEXEC)), mode: UInt64(mode), resolve: resolve.rawValue)
    let fd = try retryingInterrupts {
        path.withCString { cPath in
            withUnsafeMutablePointer(to: &how) { howPointer in
                systemCall(
                    SYS_openat2, Int(directory.rawValue), Int(bitPattern: cPath),
                    Int(bitPattern: howPointer), MemoryLayout<OpenHow>.size)
            }
        }
    }
    return FileDescriptor(rawValue: Int32(fd))
}
