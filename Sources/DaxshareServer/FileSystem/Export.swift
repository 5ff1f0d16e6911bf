import CLinux
import Glibc
import Logging
import Synchronization
import SystemPackage

/// A directory the server exports under a name.
///
/// The directory is opened once, `O_PATH | O_DIRECTORY`, and every client
/// path is resolved from that descriptor with `openat2(RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS)`: the kernel refuses any walk that would leave it
/// (absolute symlinks, ".." past the root, /proc magic links), and renaming
/// or replacing the exported path after startup changes nothing.
///
/// Operations on a name (stat, unlink, rename, mkdir) open its *parent* that
/// way and then act on the last component with an `*at` call that never
/// follows a final symlink (`fstatat(AT_SYMLINK_NOFOLLOW)`, `unlinkat`,
/// `renameat2`, `mkdirat`). Changes are durable on return: the parent
/// directory is fsync'd.
///
/// Escapes are reported as `accessDenied` and logged at warning level.
/// A read-only export refuses every mutation with `readOnly`.
///
/// What a reload may change without reopening the directory (read-only, who may use it,
/// withdrawn) is the export's `Policy`, read on every request that names the tree.
public final class Export: Sendable {
    public let name: String
    /// The exported directory as given at startup (for logs; never re-resolved).
    public let root: FilePath

    /// What a configuration reload changes in place (`Server.reload`).
    public struct Policy: Sendable, Equatable {
        public var readOnly: Bool
        /// Identities allowed to connect; nil: every authenticated identity.
        public var identities: Set<String>?
        /// Removed from the configuration: sessions' trees on it get EXPORT_REMOVED.
        public var withdrawn = false
    }
    private let policyState: Mutex<Policy>
    public var policy: Policy {
        get { policyState.withLock { $0 } }
        set { policyState.withLock { $0 = newValue } }
    }
    public var isReadOnly: Bool { policy.readOnly }
    public var isWithdrawn: Bool { policy.withdrawn }
    /// Whether a session authenticated as `identity` may use the export.
    public func allows(_ identity: String) -> Bool { policy.identities?.contains(identity) ?? true }
    /// The O_PATH descriptor every client path starts from.
    let directory: FileDescriptor
    let logger: Logger
    private let closed = Mutex(false)

    /// Opens `root` with `open(O_PATH | O_DIRECTORY | O_CLOEXEC)`.
    public init(name: String, root: FilePath, readOnly: Bool = false, identities: Set<String>? = nil,
                logger: Logger = Logger(label: "daxshare.export"))
        throws(FileSystemError)
    {
        do {
            let fd = try retryingInterrupts {
                root.withPlatformString { Glibc.open($0, dxs_O_PATH | O_DIRECTORY | O_CLOEXEC) }
            }
            directory = FileDescriptor(rawValue: fd)
        } catch {
            throw FileSystemError(errno: error, operation: "open(\(root))")
        }
        self.name = name
        self.root = root
        self.policyState = Mutex(Policy(readOnly: readOnly, identities: identities))
        var logger = logger
        logger[metadataKey: "export"] = "\(name)"
        self.logger = logger
    }

    deinit {
        close()
    }

    /// Closes the export's directory descriptor. Idempotent.
    public func close() {
        let wasClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        if !wasClosed { try? directory.close() }
    }

    // MARK: - Operations on names

    /// Status of the named file itself (a final symlink is described, not
    /// followed), via `fstatat(parent, name, AT_SYMLINK_NOFOLLOW)`. "" is the root.
    public func status(of rawPath: String) throws(FileSystemError) -> FileStatus {
        let path = try validate(rawPath)
        if path.isRoot {
            do {
                return FileStatus(try directory.stat())
            } catch {
                throw FileSystemError(errno: error, operation: "fstat(export root)")
            }
        }
        return try withParent(of: path, operation: "stat", flags: dxs_O_PATH) { parent, name throws(FileSystemError) in
            try statAt(parent, name, operation: "fstatat(\(path))")
        }
    }

    /// Removes a name with `unlinkat`: a file or symlink, or with `directory`
    /// an empty directory (`AT_REMOVEDIR`). Without `directory` a directory
    /// fails with `isDir`; with it, a non-directory fails with `notDir` and a
    /// non-empty directory with `notEmpty`. Open handles on a removed file
    /// keep working until closed.
    public func unlink(_ rawPath: String, directory: Bool = false) throws(FileSystemError) {
        let path = try validateMutation(rawPath, operation: "unlink")
        try withParent(of: path, operation: "unlink", flags: O_RDONLY | O_DIRECTORY) { parent, name throws(FileSystemError) in
            do throws(Errno) {
                _ = try retryingInterrupts { unlinkat(parent.rawValue, name, directory ? AT_REMOVEDIR : 0) }
            } catch {
                var failure = FileSystemError(errno: error, operation: "unlinkat(\(path)\(directory ? ", AT_REMOVEDIR" : ""))")
                if error == .fileExists { failure.code = .notEmpty }  // POSIX allows EEXIST for ENOTEMPTY
                throw failure
            }
            try synchronize(parent, "\(path.parent)")
        }
        logger.debug("unlinked", metadata: ["path": "\(path)"])
    }

    /// Renames within the export with `renameat2`, replacing the target as
    /// rename(2) does unless `noReplace` (then an existing target fails with
    /// `exists`). A file over a directory fails with `isDir`, a directory over
    /// a file with `notDir`, over a non-empty directory with `notEmpty`.
    public func rename(_ rawSource: String, to rawTarget: String, noReplace: Bool = false) throws(FileSystemError) {
        let source = try validateMutation(rawSource, operation: "rename")
        let target = try validateMutation(rawTarget, operation: "rename")
        let flags = O_RDONLY | O_DIRECTORY
        try withParent(of: source, operation: "rename", flags: flags) { sourceParent, sourceName throws(FileSystemError) in
            try withParent(of: target, operation: "rename", flags: flags) { targetParent, targetName throws(FileSystemError) in
                do throws(Errno) {
                    try renameat2(sourceParent, sourceName, targetParent, targetName, noReplace: noReplace)
                } catch {
                    var failure = FileSystemError(errno: error, operation: "renameat2(\(source), \(target))")
                    switch error {
                    case .improperLink: failure.code = .invalidArgument  // two mounts inside the export
                    case .fileExists where !noReplace: failure.code = .notEmpty  // POSIX allows EEXIST for ENOTEMPTY
                    default: break
                    }
                    throw failure
                }
                try synchronize(targetParent, "\(target.parent)")
                if source.parent != target.parent { try synchronize(sourceParent, "\(source.parent)") }
            }
        }
        logger.debug("renamed", metadata: ["from": "\(source)", "to": "\(target)"])
    }

    /// Creates a directory with `mkdirat`.
    public func makeDirectory(
        _ rawPath: String,
        permissions: FilePermissions = [.ownerReadWriteExecute, .groupReadExecute, .otherReadExecute]
    ) throws(FileSystemError) {
        let path = try validateMutation(rawPath, operation: "mkdir")
        try withParent(of: path, operation: "mkdir", flags: O_RDONLY | O_DIRECTORY) { parent, name throws(FileSystemError) in
            do throws(Errno) {
                _ = try retryingInterrupts { mkdirat(parent.rawValue, name, permissions.rawValue) }
            } catch {
                throw FileSystemError(errno: error, operation: "mkdirat(\(path))")
            }
            try synchronize(parent, "\(path.parent)")
        }
    }

    // MARK: - Confinement (shared with the file table and listing)

    /// Checks a client path; logs and rethrows escapes.
    func validate(_ raw: String) throws(FileSystemError) -> ClientPath {
        do {
            return try ClientPath(validating: raw)
        } catch {
            if error.code == .accessDenied { denied(error) }
            throw error
        }
    }

    /// `validate`, plus the read-only check and refusing the root itself.
    private func validateMutation(_ raw: String, operation: String) throws(FileSystemError) -> ClientPath {
        if isReadOnly { throw FileSystemError(.readOnly, operation: "\(operation) on read-only export \(name)") }
        let path = try validate(raw)
        if path.isRoot { throw FileSystemError(.accessDenied, operation: "\(operation) of the export root") }
        return path
    }

    /// Opens a path beneath the export with `openat2`. EXDEV (a walk that
    /// would leave the export) and ELOOP (a magic link, or a symlink loop)
    /// become `accessDenied`, logged.
    func open(_ path: ClientPath, flags: Int32, mode: mode_t = 0) throws(FileSystemError) -> FileDescriptor {
        do {
            return try openat2(directory, path.relative, flags: flags, mode: mode, resolve: .confined)
        } catch {
            let failure = FileSystemError(errno: error, operation: "openat2(\(path))")
            if error == .improperLink || error == .tooManySymbolicLinkLevels { denied(failure) }
            throw failure
        }
    }

    /// Runs `body` with the parent directory of `path`, opened with `flags`
    /// beneath the export, and the last component.
    func withParent<R>(
        of path: ClientPath, operation: String, flags: Int32,
        _ body: (FileDescriptor, String) throws(FileSystemError) -> R
    ) throws(FileSystemError) -> R {
        guard let name = path.name else {
            throw FileSystemError(.accessDenied, operation: "\(operation) of the export root")
        }
        let parent = try open(path.parent, flags: flags)
        defer { try? parent.close() }
        return try body(parent, name)
    }

    /// `fstatat(directory, name, AT_SYMLINK_NOFOLLOW)`.
    func statAt(_ directory: FileDescriptor, _ name: String, operation: String) throws(FileSystemError) -> FileStatus {
        do {
            return FileStatus(try FilePath(name).stat(relativeTo: directory, flags: .symlinkNoFollow))
        } catch {
            throw FileSystemError(errno: error, operation: operation)
        }
    }

    /// Makes a directory's entries durable: `fsync` on it.
    func synchronize(_ directory: FileDescriptor, _ path: String) throws(FileSystemError) {
        do throws(Errno) {
            _ = try retryingInterrupts { fsync(directory.rawValue) }
        } catch {
            throw FileSystemError(errno: error, operation: "fsync(\(path.isEmpty ? "export root" : path))")
        }
    }

    private func denied(_ error: FileSystemError) {
        logger.warning("path rejected: access denied", metadata: ["reason": "\(error.operation)"])
    }
}
