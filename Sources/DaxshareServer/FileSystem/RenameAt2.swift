import CLinux
import SystemPackage

/// Renames `sourceName` in `sourceDirectory` to `targetName` in
/// `targetDirectory` with `renameat2(2)`; `noReplace` adds RENAME_NOREPLACE
/// (fail with EEXIST instead of replacing).
func renameat2(
    _ sourceDirectory: FileDescriptor, _ sourceName: String,
    _ targetDirectory: FileDescriptor, _ targetName: String, noReplace: Bool
) throws(Errno) {
    _ = try retryingInterrupts {
        dxs_renameat2(
            sourceDirectory.rawValue, sourceName, targetDirectory.rawValue, targetName,
            noReplace ? dxs_RENAME_NOREPLACE : 0)
    }
}
