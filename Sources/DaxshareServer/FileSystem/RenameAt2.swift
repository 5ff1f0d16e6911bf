import Glibc
import SystemPackage

/// `renameat2(2)`'s RENAME_NOREPLACE: fail with EEXIST instead of replacing.
let RENAME_NOREPLACE: UInt32 = 1

/// `int renameat2(int, const char *, int, const char *, unsigned int)`, looked
/// up once: glibc declares it only under _GNU_SOURCE.
nonisolated(unsafe) private let libcRenameat2: @convention(c) (
    Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32
) -> Int32 = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else {
        fatalError("libc has no renameat2()")  // glibc 2.28 and later have it
    }
    return unsafeBitCast(
        symbol, to: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32).self)
}()

/// Renames `sourceName` in `sourceDirectory` to `targetName` in
/// `targetDirectory` with `renameat2`; `noReplace` adds RENAME_NOREPLACE.
func renameat2(
    _ sourceDirectory: FileDescriptor, _ sourceName: String,
    _ targetDirectory: FileDescriptor, _ targetName: String, noReplace: Bool
) throws(Errno) {
    _ = try retryingInterrupts {
        sourceName.withCString { source in
            targetName.withCString { target in
                libcRenameat2(
                    sourceDirectory.rawValue, source, targetDirectory.rawValue, target,
                    noReplace ? RENAME_NOREPLACE : 0)
            }
        }
    }
}
