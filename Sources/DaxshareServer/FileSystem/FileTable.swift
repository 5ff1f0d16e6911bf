import CLinux
import DaxsharePmem
import Glibc
import Logging
import Synchronization
import SystemPackage

/// The server's open file table: at most one `SharedFile` (one descriptor,
/// one mapping) per file, keyed by `(st_dev, st_ino)`, with a count of the
/// client handles on it. The first open creates the entry; closing the last
/// handle unmaps and closes it.
public final class FileTable: Sendable {
    private struct Entry {
        let file: SharedFile
        var handles: Int
    }

    private let entries = Mutex<[FileKey: Entry]>([:])
    /// The least address space reserved for a file's mapping to grow into.
    public let minimumReservation: Int
    private let logger: Logger
    /// Told when a file closes (after its last handle), so state kept per file can go.
    private let onClose: @Sendable (SharedFile) -> Void

    /// - Parameter minimumReservation: address space reserved per open file
    ///   (no memory behind it); a file that outgrows it is mapped anew. The
    ///   default, 1 GiB, allows ~100,000 open files in a 47-bit address space.
    public init(
        minimumReservation: Int = 1 << 30, logger: Logger = Logger(label: "daxshare.files"),
        onClose: @escaping @Sendable (SharedFile) -> Void = { _ in }
    ) {
        self.minimumReservation = minimumReservation
        self.logger = logger
        self.onClose = onClose
    }

    /// Opens (or creates) a file for a client and returns its handle.
    ///
    /// The file is first found with an `O_PATH` open, which neither breaks a
    /// lease nor blocks on a FIFO; if it is already in the table the handle
    /// shares that entry without opening the file again (a second descriptor
    /// would break the server's own lease). Otherwise it is opened O_RDWR
    /// (O_RDONLY if the file or filesystem allows no more), checked to still
    /// be the same inode, and mapped. Truncation goes through the shared
    /// entry, never O_TRUNC on a second descriptor.
    public func open(_ rawPath: String, in export: Export, options: FileOpenOptions = FileOpenOptions())
        throws(FileSystemError) -> OpenFile
    {
        let path = try export.validate(rawPath)
        try options.check(path)
        if export.isReadOnly && options.mutates {
            throw FileSystemError(.readOnly, operation: "open(\(path)) for writing on read-only export \(export.name)")
        }
        if path.isRoot { throw FileSystemError(.isDir, operation: "open of the export root") }
        // Each retry follows a race with another creator, renamer or unlinker.
        for _ in 0..<4 {
            let probe: FileDescriptor
            do {
                probe = try export.open(path, flags: dxs_O_PATH)
            } catch where error.code == .notFound && options.create {
                if let handle = try create(path, in: export, options: options) { return handle }
                continue
            }
            let key: FileKey
            do {
                defer { try? probe.close() }
                if options.create && options.exclusive {
                    throw FileSystemError(.exists, errno: .fileExists, operation: "open(\(path), exclusive)")
                }
                key = try regularFileKey(of: probe, path: path)
            }
            if let existing = attach(to: key) {
                return try handle(on: existing, export: export, path: path, options: options)
            }
            guard let opened = try openShared(path, in: export, expecting: key) else { continue }
            return try handle(on: insert(opened), export: export, path: path, options: options)
        }
        throw FileSystemError(.exists, operation: "open(\(path)): the name kept changing (or is a dangling symlink)")
    }

    /// SET_ATTRIBUTES by path (PROTOCOL.md §4.22): a regular file open here is changed
    /// through its shared descriptor (`SharedFile.setAttributes`: another open would break the
    /// server's own lease and recall its layouts), anything else by `Export.setAttributes`.
    /// The named object itself is changed: a final symlink is not followed.
    public func setAttributes(of rawPath: String, in export: Export, _ change: FileAttributeChange)
        throws(FileSystemError) -> FileStatus
    {
        let path = try export.validateMutation(rawPath, operation: "setattr", allowRoot: true)
        let status = try path.isRoot ? nil : export.status(of: path)  // a failure here would be Export's too
        if let status, status.kind == .regular, let shared = attach(to: FileKey(device: status.device, inode: status.inode)) {
            defer { release(shared) }  // held, so it cannot close under the change
            return try shared.setAttributes(change)
        }
        return try export.setAttributes(rawPath, change)
    }

    /// Number of files open on the server.
    public var count: Int { entries.withLock { $0.count } }

    /// The entry for a file, if it is open.
    public func sharedFile(for key: FileKey) -> SharedFile? {
        entries.withLock { $0[key]?.file }
    }

    /// The entry whose descriptor is `descriptor` (what a lease break names).
    public func sharedFile(descriptor: FileDescriptor) -> SharedFile? {
        entries.withLock { entries in entries.values.first { $0.file.descriptor == descriptor }?.file }
    }

    /// Handles open on a file.
    public func handleCount(for key: FileKey) -> Int {
        entries.withLock { $0[key]?.handles ?? 0 }
    }

    // MARK: - Internals

    /// Drops one handle's share; closes the entry after the last.
    func release(_ shared: SharedFile) {
        let last = entries.withLock { entries -> Bool in
            guard var entry = entries[shared.key], entry.file === shared else { return false }
            entry.handles -= 1
            if entry.handles > 0 {
                entries[shared.key] = entry
                return false
            }
            entries[shared.key] = nil
            return true
        }
        if last {
            onClose(shared)
            shared.close()
            logger.debug("closed", metadata: ["file": "\(shared.origin)", "key": "\(shared.key)"])
        }
    }

    /// Creates a new file with `openat2(parent, name, O_CREAT | O_EXCL)` and
    /// makes it and its directory entry durable (fsync both); nil when
    /// another creator won and a plain open should be retried.
    private func create(_ path: ClientPath, in export: Export, options: FileOpenOptions) throws(FileSystemError) -> OpenFile? {
        let created = try export.withParent(of: path, operation: "create", flags: O_RDONLY | O_DIRECTORY) {
            parent, name throws(FileSystemError) -> FileDescriptor? in
            let fd: FileDescriptor
            do throws(Errno) {
                fd = try openat2(
                    parent, name, flags: O_RDWR | O_CREAT | O_EXCL, mode: options.permissions.rawValue, resolve: .confined)
            } catch {
                if error == .fileExists && !options.exclusive { return nil }
                throw FileSystemError(errno: error, operation: "openat2(\(path), O_CREAT | O_EXCL)")
            }
            do throws(FileSystemError) {
                try export.synchronize(fd, "\(path)")
                try export.synchronize(parent, "\(path.parent)")
            } catch {
                try? fd.close()
                throw error
            }
            return fd
        }
        guard let created else { return nil }
        let shared = try makeShared(created, path: path, export: export)
        logger.debug("created", metadata: ["file": "\(shared.origin)"])
        return try handle(on: insert(shared), export: export, path: path, options: options)
    }

    /// Opens a file found by `key` for I/O; nil if the path now names another inode.
    private func openShared(_ path: ClientPath, in export: Export, expecting key: FileKey) throws(FileSystemError) -> SharedFile? {
        let fd: FileDescriptor
        do {
            fd = try export.open(path, flags: O_RDWR)
        } catch where [.permissionDenied, .readOnlyFileSystem, .textFileBusy, .notPermitted].contains(error.errno) {
            fd = try export.open(path, flags: O_RDONLY)
        }
        do {
            guard try regularFileKey(of: fd, path: path) == key else {
                try? fd.close()
                return nil
            }
        } catch {
            try? fd.close()
            throw error
        }
        return try makeShared(fd, path: path, export: export)
    }

    private func makeShared(_ fd: FileDescriptor, path: ClientPath, export: Export) throws(FileSystemError) -> SharedFile {
        let file: PmemFile
        do {
            file = try PmemFile(adopting: fd, path: export.root.appending(path.description))
        } catch {
            try? fd.close()
            throw FileSystemError(error, operation: "open(\(path))")
        }
        let key = try regularFileKey(of: fd, path: path)
        return try SharedFile(
            key: key, file: file, origin: "\(export.name):\(path)", minimumReservation: minimumReservation, logger: logger)
    }

    /// Counts one more handle on an open file's entry, if it has one.
    private func attach(to key: FileKey) -> SharedFile? {
        entries.withLock { entries -> SharedFile? in
            guard var entry = entries[key] else { return nil }
            entry.handles += 1
            entries[key] = entry
            return entry.file
        }
    }

    /// Inserts a newly opened file with one handle. If another opener
    /// inserted the same file meanwhile, its entry wins and `shared` closes.
    private func insert(_ shared: SharedFile) -> SharedFile {
        let (winner, redundant) = entries.withLock { entries -> (SharedFile, Bool) in
            if var entry = entries[shared.key] {
                entry.handles += 1
                entries[shared.key] = entry
                return (entry.file, true)
            }
            entries[shared.key] = Entry(file: shared, handles: 1)
            return (shared, false)
        }
        if redundant { shared.close() }
        return winner
    }

    /// Wraps a counted share of an entry in a client handle, then checks
    /// access and applies truncation; on failure the share is released.
    private func handle(on winner: SharedFile, export: Export, path: ClientPath, options: FileOpenOptions)
        throws(FileSystemError) -> OpenFile
    {
        let handle = OpenFile(shared: winner, export: export, path: path, options: options, table: self)
        if options.write && !winner.file.isWritable {
            handle.close()
            throw FileSystemError(.accessDenied, operation: "open(\(path)) for writing: the file can only be opened read-only")
        }
        if options.truncate {
            do {
                try handle.setSize(0)
            } catch {
                handle.close()
                throw error
            }
        }
        return handle
    }

    /// The file's key, after checking it is a regular file (`fstat`).
    private func regularFileKey(of fd: FileDescriptor, path: ClientPath) throws(FileSystemError) -> FileKey {
        let status: Stat
        do {
            status = try fd.stat()
        } catch {
            throw FileSystemError(errno: error, operation: "fstat(\(path))")
        }
        switch status.type {
        case .regular: break
        case .directory: throw FileSystemError(.isDir, errno: .isDirectory, operation: "open(\(path))")
        default: throw FileSystemError(.accessDenied, operation: "open(\(path)): not a regular file")
        }
        return FileKey(device: UInt64(status.deviceID.rawValue), inode: UInt64(status.inode.rawValue))
    }
}
