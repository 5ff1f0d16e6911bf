import Glibc

// Linux interfaces that neither Glibc's module nor CLinux declares (they sit
// behind _GNU_SOURCE, which the C modules deliberately leave off), defined here
// by their kernel ABI values.

/// `mmap` flag: like MAP_SHARED, but the kernel rejects unknown flags
/// (EOPNOTSUPP) instead of ignoring them. Required with MAP_SYNC.
let MAP_SHARED_VALIDATE: Int32 = 0x03
/// `mmap` flag: page faults commit the filesystem metadata for the page
/// before it becomes writable, so CPU stores plus a cache flush are durable.
/// Only DAX filesystems accept it.
let MAP_SYNC: Int32 = 0x80000

/// `timespec.tv_nsec` values for `utimensat`/`futimens` (<sys/stat.h>, GNU-only in glibc).
let UTIME_NOW_NSEC: Int = (1 << 30) - 1
let UTIME_OMIT_NSEC: Int = (1 << 30) - 2

let F_SETSIG: Int32 = 10
let F_SETOWN_EX: Int32 = 15
let F_OWNER_TID: Int32 = 0
let F_SETLEASE: Int32 = 1024
let F_GETLEASE: Int32 = 1025

/// `struct f_owner_ex` from <fcntl.h>.
struct FileOwnerEx {
    var type: Int32
    var pid: pid_t
}

/// Looks up a libc function by name. Used for the few GNU-only entry points
/// the C modules cannot declare; the type must match the C prototype.
func libcFunction<F>(_ name: String, as type: F.Type) -> F {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else {
        fatalError("libc has no \(name)")  // glibc has had all of these for a decade
    }
    return unsafeBitCast(symbol, to: type)
}

/// `int fallocate(int fd, int mode, off_t offset, off_t len)`.
nonisolated(unsafe) let sys_fallocate = libcFunction(
    "fallocate", as: (@convention(c) (Int32, Int32, Int, Int) -> Int32).self)

/// `pid_t gettid(void)`.
nonisolated(unsafe) let sys_gettid = libcFunction(
    "gettid", as: (@convention(c) () -> pid_t).self)
