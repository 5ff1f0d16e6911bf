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
/// Operations on a name (stat, unlink, rename, mkdir, setattr) open its
/// *parent* that way and then act on the last component with an `*at` call
/// that never follows a final symlink (`fstatat(AT_SYMLINK_NOFOLLOW)`,
/// `unlinkat`, `renameat2`, `mkdirat`, `fchmodat`/`utimensat` with
/// `AT_SYMLINK_NOFOLLOW`), or open the object itself with `O_NOFOLLOW`.
/// Changes are durable on return: the parent directory is fsync'd (and what
/// changed, for mkdir and setattr).
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
        try status(of: try validate(rawPath))
    }

    func status(of path: ClientPath) throws(FileSystemError) -> FileStatus {
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

    /// Creates a directory with `mkdirat` (`permissions` masked to 0o1777: never set-ID, then the process
    /// umask, as OPEN's create), and returns its status. The new directory and its entry are
    /// durable on return: both are fsync'd, as OPEN's create does for a file.
    @discardableResult
    public func makeDirectory(
        _ rawPath: String,
        permissions: FilePermissions = [.ownerReadWriteExecute, .groupReadExecute, .otherReadExecute]
    ) throws(FileSystemError) -> FileStatus {
        let path = try validateMutation(rawPath, operation: "mkdir")
        let status = try withParent(of: path, operation: "mkdir", flags: O_RDONLY | O_DIRECTORY) {
            parent, name throws(FileSystemError) -> FileStatus in
            do throws(Errno) {
                _ = try retryingInterrupts { mkdirat(parent.rawValue, name, permissions.rawValue & 0o1777) }
            } catch {
                throw FileSystemError(errno: error, operation: "mkdirat(\(path))")
            }
            let created: FileDescriptor
            do throws(Errno) {
                created = try openat2(parent, name, flags: O_RDONLY | O_DIRECTORY | O_NOFOLLOW, resolve: .confined)
            } catch {
                throw FileSystemError(errno: error, operation: "openat2(\(path), O_DIRECTORY) after mkdirat")
            }
            defer { try? created.close() }
            try synchronize(created, "\(path)")
            try synchronize(parent, "\(path.parent)")
            return try Self.status(of: created, "\(path)")
        }
        logger.debug("made directory", metadata: ["path": "\(path)"])
        return status
    }

    /// Changes the permission bits and times of the named object itself (a final symlink is
    /// not followed; "" is the export root) and returns its status; durable on return.
    ///
    /// A regular file or directory is opened beneath the export (`O_RDONLY | O_NOFOLLOW`, never
    /// a device or FIFO: its type is looked at first) and changed through that descriptor
    /// (`fchmod`, `futimens`, `fsync`). Anything else (a symlink, a device, a FIFO, a socket, or
    /// a file the server may not open) is changed by name from its parent (`fchmodat` and
    /// `utimensat` with `AT_SYMLINK_NOFOLLOW`) and made durable with `syncfs`. A mode on a
    /// symlink is `notSupported` (Linux symlinks have none). Regular files the server has open
    /// go through their shared descriptor instead (`FileTable.setAttributes`): opening them
    /// again would break the server's own lease.
    public func setAttributes(_ rawPath: String, _ change: FileAttributeChange) throws(FileSystemError) -> FileStatus {
        let path = try validateMutation(rawPath, operation: "setattr", allowRoot: true)
        let kind = path.isRoot ? .directory : try status(of: path).kind
        if kind == .regular || kind == .directory, let fd = try openForAttributes(path, directory: kind == .directory) {
            defer { try? fd.close() }
            try Self.apply(change, to: fd, "\(path)")
            try synchronize(fd, "\(path)")
            return try Self.status(of: fd, "\(path)")
        }
        return try withParent(of: path, operation: "setattr", flags: O_RDONLY | O_DIRECTORY) { parent, name throws(FileSystemError) in
            if let mode = change.mode {
                do throws(Errno) {
                    _ = try retryingInterrupts { fchmodat(parent.rawValue, name, mode, AT_SYMLINK_NOFOLLOW) }
                } catch {
                    throw FileSystemError(errno: error, operation: "fchmodat(\(path), AT_SYMLINK_NOFOLLOW)")
                }
            }
            if change.changesTimes {
                let times = [change.timespecs.access, change.timespecs.modification]
                do throws(Errno) {
                    _ = try retryingInterrupts {
                        times.withUnsafeBufferPointer { utimensat(parent.rawValue, name, $0.baseAddress, AT_SYMLINK_NOFOLLOW) }
                    }
                } catch {
                    throw FileSystemError(errno: error, operation: "utimensat(\(path), AT_SYMLINK_NOFOLLOW)")
                }
            }
            do throws(Errno) {
                _ = try retryingInterrupts { dxs_syncfs(parent.rawValue) }
            } catch {
                throw FileSystemError(errno: error, operation: "syncfs(\(path.parent))")
            }
            return try statAt(parent, name, operation: "fstatat(\(path))")
        }
    }

    /// The space and inodes of the export's file system: `fstatvfs` of its directory.
    public func space() throws(FileSystemError) -> FileSystemSpace {
        var s = statvfs()
        do throws(Errno) {
            _ = try retryingInterrupts { fstatvfs(directory.rawValue, &s) }
        } catch {
            throw FileSystemError(errno: error, operation: "fstatvfs(export root)")
        }
        return FileSystemSpace(s)
    }

    /// A descriptor of a regular file or directory for `setAttributes`; nil when the object
    /// is not (or no longer) one, or may not be opened, and must be changed by name.
    private func openForAttributes(_ path: ClientPath, directory: Bool) throws(FileSystemError) -> FileDescriptor? {
        let fd: FileDescriptor
        do throws(Errno) {
            fd = try openat2(
                self.directory, path.relative, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | (directory ? O_DIRECTORY : 0),
                resolve: .confined)
        } catch {
            switch error {
            // A final symlink (it was replaced meanwhile), or no permission to open it: by name.
            case .tooManySymbolicLinkLevels, .permissionDenied, .notPermitted, .notDirectory: return nil
            default:
                let failure = FileSystemError(errno: error, operation: "openat2(\(path)) for setattr")
                if error == .improperLink { denied(failure) }
                throw failure
            }
        }
        let status: FileStatus
        do {
            status = try Self.status(of: fd, "\(path)")
        } catch {
            try? fd.close()
            throw error
        }
        guard status.kind == (directory ? .directory : .regular) else {
            try? fd.close()
            return nil
        }
        return fd
    }

    /// `fchmod` and `futimens` on an open descriptor.
    static func apply(_ change: FileAttributeChange, to fd: FileDescriptor, _ what: String) throws(FileSystemError) {
        if let mode = change.mode {
            do throws(Errno) {
                _ = try retryingInterrupts { fchmod(fd.rawValue, mode) }
            } catch {
                throw FileSystemError(errno: error, operation: "fchmod(\(what))")
            }
        }
        if change.changesTimes {
            let times = [change.timespecs.access, change.timespecs.modification]
            do throws(Errno) {
                _ = try retryingInterrupts { times.withUnsafeBufferPointer { futimens(fd.rawValue, $0.baseAddress) } }
            } catch {
                throw FileSystemError(errno: error, operation: "futimens(\(what))")
            }
        }
    }

    static func status(of fd: FileDescriptor, _ what: String) throws(FileSystemError) -> FileStatus {
        do {
            return FileStatus(try fd.stat())
        } catch {
            throw FileSystemError(errno: error, operation: "fstat(\(what))")
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

    /// `validate`, plus the read-only check and (unless `allowRoot`) refusing the root itself.
    func validateMutation(_ raw: String, operation: String, allowRoot: Bool = false) throws(FileSystemError) -> ClientPath {
        if isReadOnly { throw FileSystemError(.readOnly, operation: "\(operation) on read-only export \(name)") }
        let path = try validate(raw)
        if path.isRoot && !allowRoot { throw FileSystemError(.accessDenied, operation: "\(operation) of the export root") }
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
