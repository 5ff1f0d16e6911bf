import CFuse
import DaxshareClient
import DaxshareWire
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One FUSE request: answered exactly once, from whichever thread finishes it.
// @unchecked: libfuse lets any thread send a request's one reply; nothing else touches it.
struct Request: @unchecked Sendable {
    let raw: fuse_req_t
}

/// The file system a `daxshare mount` serves: each FUSE operation becomes the client
/// library's call on one session, answered when the call completes (no FUSE thread waits on
/// the network). Names go through `NodeTable`; open files and directories are handles (the
/// `fh` the kernel gives back).
///
/// Data moves through the session's data path, one-sided through layouts where the server
/// grants them, between the server's pmem and the request's own slot (`RequestBuffers`).
public final class DaxshareFileSystem: Sendable {
    public let session: ClientSession
    public let options: MountOptions
    public let nodes: NodeTable
    let buffers: RequestBuffers
    let logger: Logger
    private let owner: (uid: uid_t, gid: gid_t)

    final class OpenFile: Sendable {
        let file: RemoteFile
        let node: UInt64
        init(file: RemoteFile, node: UInt64) {
            self.file = file
            self.node = node
        }
    }

    final class Directory: Sendable {
        let path: String
        /// The listing taken when the kernel read from offset 0: offsets index into it.
        let entries = Mutex<[ListEntry]?>(nil)
        init(path: String) { self.path = path }
    }

    private struct Handles {
        var files: [UInt64: OpenFile] = [:]
        var directories: [UInt64: Directory] = [:]
        var next: UInt64 = 1
    }
    private let handles = Mutex(Handles())
    /// Tells the kernel to drop what it caches of a node (set by `FuseMount`).
    private let invalidator = Mutex<(@Sendable (UInt64) -> Void)?>(nil)

    /// `root`: the directory mounted, relative to the export root ("" for the export).
    public init(session: ClientSession, root: String, options: MountOptions, buffers: RequestBuffers, logger: Logger) {
        self.session = session
        nodes = NodeTable(rootPath: root)
        self.options = options
        self.buffers = buffers
        self.logger = logger
        owner = (getuid(), getgid())
        inline = InlineStartExecutor(loop: session.configuration.eventLoop)
    }

    /// Reads and writes start on the reader thread that dispatched them and post their work
    /// request there; then they run on the connection's event loop, which polls their
    /// completions, so the task resumes where its completion arrived and replies from there
    /// (`InlineStartExecutor`). Against starting on the loop, 4 KiB random reads at QD1
    /// through fio: 1,350-1,500 IOPS against 1,080-1,100 (one boot, two rounds each).
    let inline: InlineStartExecutor

    func setInvalidator(_ f: @escaping @Sendable (UInt64) -> Void) {
        invalidator.withLock { $0 = f }
    }

    /// Answers the server's layout recalls in the mount's terms: whatever the kernel caches of
    /// a recalled file (attributes, and data in cached mode) is dropped, so that the change
    /// the recall announces (a local open for writing, a truncate, another client) is seen.
    /// Runs until the session ends.
    func watchRecalls() async {
        for await callback in session.callbacks {
            guard case let .layoutRecall(recall, _) = callback else { continue }
            let affected = handles.withLock { h in Set(h.files.values.filter { $0.file.fileId == recall.fileId }.map(\.node)) }
            let notify = invalidator.withLock { $0 }
            for node in affected { notify?(node) }
        }
    }

    /// Closes what the kernel left open (an unmount does not release every file first).
    func closeAll() async {
        let files = handles.withLock { h -> [OpenFile] in
            defer { h.files.removeAll() }
            return Array(h.files.values)
        }
        for f in files { try? await f.file.close() }
    }

    // MARK: Replies

    private var timeout: Double { options.attributeTimeout }

    func fail(_ req: Request, _ error: ClientError) {
        let code = Errno.code(for: error)
        if code == EIO { logger.warning("\(error)") }
        fuse_reply_err(req.raw, code)
    }

    func fail(_ req: Request, _ code: Int32) {
        fuse_reply_err(req.raw, code)
    }

    func stat(_ a: FileAttributes) -> stat {
        var s = Glibc.stat()
        let type: mode_t = switch a.type {
        case .regular: S_IFREG
        case .directory: S_IFDIR
        case .symlink: S_IFLNK
        case .other: S_IFREG
        }
        s.st_ino = UInt(a.fileIndex)
        s.st_mode = type | mode_t(a.mode & 0o7777)
        s.st_nlink = UInt(a.nlink)
        s.st_uid = owner.uid
        s.st_gid = owner.gid
        s.st_size = Int(clamping: a.size)
        s.st_blocks = Int(clamping: a.allocatedSize / 512)
        // cp, stdio and friends size their buffers by it: one FUSE request's worth.
        s.st_blksize = 1 << 20
        s.st_mtim = Self.timespec(a.mtimeNs)
        s.st_atim = s.st_mtim  // the protocol keeps no access time
        s.st_ctim = Self.timespec(a.ctimeNs)
        return s
    }

    static func timespec(_ ns: Int64) -> timespec {
        var sec = ns / 1_000_000_000, rem = ns % 1_000_000_000
        if rem < 0 { sec -= 1; rem += 1_000_000_000 }
        return Glibc.timespec(tv_sec: Int(sec), tv_nsec: Int(rem))
    }

    func entry(_ path: String, _ a: FileAttributes) -> fuse_entry_param {
        var e = fuse_entry_param()
        e.ino = nodes.lookedUp(path)
        e.generation = 0
        e.attr = stat(a)
        e.attr_timeout = timeout
        e.entry_timeout = timeout
        return e
    }

    func replyEntry(_ req: Request, _ path: String, _ a: FileAttributes) {
        var e = entry(path, a)
        if fuse_reply_entry(req.raw, &e) != 0 { nodes.forget(e.ino, 1) }
    }

    private func openFile(_ fi: UnsafeMutablePointer<fuse_file_info>?) -> OpenFile? {
        guard let fh = fi?.pointee.fh else { return nil }
        return handles.withLock { $0.files[fh] }
    }

    /// A handle some process holds on `node`; with `writable`, one opened for writing.
    private func anyOpenFile(node: UInt64, writable: Bool = false) -> OpenFile? {
        handles.withLock { h in h.files.values.first { $0.node == node && (!writable || $0.file.flags.contains(.write)) } }
    }

    private func add(_ file: OpenFile) -> UInt64 {
        handles.withLock { h in
            let fh = h.next
            h.next += 1
            h.files[fh] = file
            return fh
        }
    }

    private func fileInfoForOpen(_ fi: UnsafeMutablePointer<fuse_file_info>, fh: UInt64) {
        fi.pointee.fh = fh
        fi.pointee.direct_io = options.cache == .direct ? 1 : 0
        fi.pointee.keep_cache = 0
    }

    // MARK: Names and attributes

    func lookup(_ req: Request, parent: UInt64, name: String) {
        guard let path = nodes.childPath(parent, name) else { return fail(req, ENOENT) }
        Task {
            do throws(ClientError) { replyEntry(req, path, try await session.stat(path)) } catch { fail(req, error) }
        }
    }

    func forget(_ node: UInt64, _ count: UInt64) {
        nodes.forget(node, count)
    }

    func getattr(_ req: Request, node: UInt64, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let open = openFile(fi)
        let path = nodes.path(of: node)
        let byFile = open ?? (path == nil ? anyOpenFile(node: node) : nil)
        guard byFile != nil || path != nil else { return fail(req, ENOENT) }
        Task {
            do throws(ClientError) {
                let a = if let byFile { try await byFile.file.stat() } else { try await session.stat(path!) }
                var s = stat(a)
                fuse_reply_attr(req.raw, &s, timeout)
            } catch { fail(req, error) }
        }
    }

    func setattr(_ req: Request, node: UInt64, _ attr: stat, _ toSet: Int32, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let open = openFile(fi) ?? anyOpenFile(node: node)
        guard let path = nodes.path(of: node) ?? open?.file.path else { return fail(req, ENOENT) }
        if toSet & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID) != 0 {
            // Files belong to the server; the mount shows them as its user's. Only a no-op
            // chown (tar and cp -p restoring the same owner) succeeds.
            if toSet & FUSE_SET_ATTR_UID != 0 && attr.st_uid != owner.uid { return fail(req, EPERM) }
            if toSet & FUSE_SET_ATTR_GID != 0 && attr.st_gid != owner.gid { return fail(req, EPERM) }
        }
        var change = AttributeChange()
        if toSet & FUSE_SET_ATTR_MODE != 0 { change.mode = UInt32(attr.st_mode & 0o7777) }
        if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 {
            change.accessTime = .now
        } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
            change.accessTime = .at(nanosecondsSinceEpoch: Self.nanoseconds(attr.st_atim))
        }
        if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 {
            change.modificationTime = .now
        } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
            change.modificationTime = .at(nanosecondsSinceEpoch: Self.nanoseconds(attr.st_mtim))
        }
        let newSize: UInt64? = toSet & FUSE_SET_ATTR_SIZE != 0 ? UInt64(max(0, attr.st_size)) : nil
        // A size goes through the handle the kernel named (ftruncate), else one open for writing
        // (its layouts and the size it knows stay right), else the path: truncate(2) by path
        // must work while another process has the file open only for reading.
        let sizeVia = openFile(fi) ?? anyOpenFile(node: node, writable: true)
        Task {
            do throws(ClientError) {
                var a: FileAttributes?
                if let newSize {
                    a = if let sizeVia { try await sizeVia.file.setSize(newSize) } else { try await session.truncate(path, to: newSize) }
                }
                if change.mode != nil || change.accessTime != nil || change.modificationTime != nil {
                    a = if let open { try await open.file.setAttributes(change) } else { try await session.setAttributes(path, change) }
                }
                let final = if let a { a } else if let open { try await open.file.stat() } else { try await session.stat(path) }
                var s = stat(final)
                fuse_reply_attr(req.raw, &s, timeout)
            } catch { fail(req, error) }
        }
    }

    static func nanoseconds(_ t: timespec) -> Int64 {
        Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }

    func mkdir(_ req: Request, parent: UInt64, name: String, mode: mode_t) {
        guard let path = nodes.childPath(parent, name) else { return fail(req, ENOENT) }
        Task {
            do throws(ClientError) {
                replyEntry(req, path, try await session.makeDirectory(path, mode: UInt32(mode & 0o7777)))
            } catch { fail(req, error) }
        }
    }

    func remove(_ req: Request, parent: UInt64, name: String, directory: Bool) {
        guard let path = nodes.childPath(parent, name) else { return fail(req, ENOENT) }
        Task {
            do throws(ClientError) {
                try await session.remove(path, directory: directory)
                nodes.removed(path)
                fail(req, 0)
            } catch { fail(req, error) }
        }
    }

    func rename(_ req: Request, parent: UInt64, name: String, newParent: UInt64, newName: String, flags: UInt32) {
        guard let from = nodes.childPath(parent, name), let to = nodes.childPath(newParent, newName) else {
            return fail(req, ENOENT)
        }
        // RENAME_EXCHANGE and RENAME_WHITEOUT have no protocol counterpart.
        guard flags & ~dxf_rename_noreplace == 0 else { return fail(req, EINVAL) }
        Task {
            do throws(ClientError) {
                try await session.rename(from: from, to: to, replace: flags & dxf_rename_noreplace == 0)
                nodes.renamed(from: from, to: to)
                fail(req, 0)
            } catch { fail(req, error) }
        }
    }

    func statfs(_ req: Request) {
        Task {
            do throws(ClientError) {
                let f = try await session.fileSystemStatistics()
                var s = statvfs()
                s.f_bsize = UInt(f.blockSize)
                s.f_frsize = UInt(f.blockSize)
                s.f_blocks = UInt(f.totalBlocks)
                s.f_bfree = UInt(f.freeBlocks)
                s.f_bavail = UInt(f.availableBlocks)
                s.f_files = UInt(f.totalFiles)
                s.f_ffree = UInt(f.freeFiles)
                s.f_favail = UInt(f.freeFiles)
                s.f_namemax = UInt(f.maxNameLength)
                fuse_reply_statfs(req.raw, &s)
            } catch { fail(req, error) }
        }
    }

    // MARK: Files

    func open(_ req: Request, node: UInt64, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        guard let path = nodes.path(of: node) else { return fail(req, ENOENT) }
        let flags = OpenFlagsMapping.flags(posix: fi.pointee.flags, creating: false)
        let info = FileInfo(fi)
        Task {
            do throws(ClientError) {
                let file = try await session.open(path, flags: flags)
                fileInfoForOpen(info.pointer, fh: add(OpenFile(file: file, node: node)))
                if fuse_reply_open(req.raw, info.pointer) != 0 { release(fh: info.pointer.pointee.fh) }
            } catch { fail(req, error) }
        }
    }

    func create(_ req: Request, parent: UInt64, name: String, mode: mode_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        guard let path = nodes.childPath(parent, name) else { return fail(req, ENOENT) }
        let flags = OpenFlagsMapping.flags(posix: fi.pointee.flags, creating: true)
        let info = FileInfo(fi)
        Task {
            do throws(ClientError) {
                let file = try await session.open(path, flags: flags, mode: UInt32(mode & 0o7777))
                var e = entry(path, file.attributesAtOpen)
                fileInfoForOpen(info.pointer, fh: add(OpenFile(file: file, node: e.ino)))
                if fuse_reply_create(req.raw, &e, info.pointer) != 0 {
                    nodes.forget(e.ino, 1)
                    release(fh: info.pointer.pointee.fh)
                }
            } catch { fail(req, error) }
        }
    }

    func read(_ req: Request, size: Int, offset: Int, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        guard let open = openFile(fi) else { return fail(req, EBADF) }
        guard offset >= 0 else { return fail(req, EINVAL) }
        // The request's own slot takes the data: READ's arguments are already parsed.
        guard let slot = buffers.retainCurrent() else { return fail(req, EIO) }
        let into = SharedBuffer(UnsafeMutableRawBufferPointer(rebasing: buffers.slot(slot)[0..<min(size, RequestBuffers.slotSize)]))
        Task(executorPreference: inline) { [self] in
            defer { buffers.release(slot) }
            do throws(ClientError) {
                let n = try await open.file.read(at: UInt64(offset), into: into.pointer)
                fuse_reply_buf(req.raw, into.pointer.baseAddress!.assumingMemoryBound(to: CChar.self), n)
            } catch { fail(req, error) }
        }
    }

    func write(_ req: Request, data: UnsafePointer<CChar>, size: Int, offset: Int, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        guard let open = openFile(fi) else { return fail(req, EBADF) }
        guard offset >= 0 else { return fail(req, EINVAL) }
        // The data lies in the request's slot: kept until the reply.
        guard let slot = buffers.retainCurrent() else { return fail(req, EIO) }
        let from = SharedBuffer(readOnly: UnsafeRawBufferPointer(start: data, count: size))
        Task(executorPreference: inline) { [self] in
            defer { buffers.release(slot) }
            do throws(ClientError) {
                try await open.file.write(from: UnsafeRawBufferPointer(from.pointer), at: UInt64(offset))
                fuse_reply_write(req.raw, size)
            } catch { fail(req, error) }
        }
    }

    /// close(2) of one descriptor: what was written one-sided is committed (LAYOUTCOMMIT), so
    /// that the next open anywhere sees it (close-to-open, as NFS) and a failure reaches
    /// close(2). Durability of two-sided writes waits for fsync.
    func flush(_ req: Request, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        guard let open = openFile(fi) else { return fail(req, 0) }
        Task {
            do throws(ClientError) {
                // close(2): the bytes and, for writes FLUSH made durable, the times (as NFS's
                // close-to-open would show them), before a later utimensat can be overtaken.
                try await open.file.commit(touchingTimes: true)
                fail(req, 0)
            } catch { fail(req, error) }
        }
    }

    /// fsync(2)/fdatasync(2): the durability point (PROTOCOL.md §6: LAYOUTCOMMIT, then FLUSH
    /// if anything went two-sided).
    func fsync(_ req: Request, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        guard let open = openFile(fi) else { return fail(req, EBADF) }
        Task {
            do throws(ClientError) {
                try await open.file.flush()
                fail(req, 0)
            } catch { fail(req, error) }
        }
    }

    func release(_ req: Request, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        if let fh = fi?.pointee.fh { release(fh: fh) }
        fail(req, 0)
    }

    private func release(fh: UInt64) {
        guard let open = handles.withLock({ $0.files.removeValue(forKey: fh) }) else { return }
        Task {
            do throws(ClientError) { try await open.file.close() } catch {
                logger.warning("closing \(open.file.path): \(error)")
            }
        }
    }

    func fallocate(_ req: Request, mode: Int32, offset: Int, length: Int, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        guard let open = openFile(fi) else { return fail(req, EBADF) }
        guard offset >= 0, length > 0 else { return fail(req, EINVAL) }
        let punch = dxf_falloc_punch_hole | dxf_falloc_keep_size
        guard mode == 0 || mode == dxf_falloc_keep_size || mode == punch else { return fail(req, EOPNOTSUPP) }
        Task {
            do throws(ClientError) {
                if mode == punch {
                    try await open.file.punchHole(offset: UInt64(offset), length: UInt64(length))
                } else {
                    _ = try await open.file.allocate(offset: UInt64(offset), length: UInt64(length), keepSize: mode != 0)
                }
                fail(req, 0)
            } catch { fail(req, error) }
        }
    }

    // MARK: Directories

    func opendir(_ req: Request, node: UInt64, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        guard let path = nodes.path(of: node) else { return fail(req, ENOENT) }
        let fh = handles.withLock { h in
            let fh = h.next
            h.next += 1
            h.directories[fh] = Directory(path: path)
            return fh
        }
        fi.pointee.fh = fh
        fuse_reply_open(req.raw, fi)
    }

    func releasedir(_ req: Request, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        if let fh = fi?.pointee.fh { _ = handles.withLock { $0.directories.removeValue(forKey: fh) } }
        fail(req, 0)
    }

    /// Offsets are positions in the listing taken at offset 0 (after "." and ".."), so a
    /// directory read in several calls sees one consistent listing.
    func readdir(_ req: Request, size: Int, offset: Int, plus: Bool, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        guard let fh = fi?.pointee.fh, let dir = handles.withLock({ $0.directories[fh] }) else { return fail(req, EBADF) }
        Task {
            do throws(ClientError) {
                var entries = dir.entries.withLock { $0 }
                if entries == nil || offset == 0 {
                    let listed = try await session.list(dir.path)
                    dir.entries.withLock { $0 = listed }
                    entries = listed
                }
                replyDirectory(req, dir.path, entries ?? [], size: size, offset: offset, plus: plus)
            } catch { fail(req, error) }
        }
    }

    private func replyDirectory(_ req: Request, _ path: String, _ entries: [ListEntry], size: Int, offset: Int, plus: Bool) {
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(size, 1))
        defer { buffer.deallocate() }
        var used = 0
        var index = max(0, offset)
        let total = entries.count + 2
        while index < total {
            let name: String
            var s = Glibc.stat()
            var childPath: String?
            switch index {
            case 0: name = "."; s.st_mode = S_IFDIR
            case 1: name = ".."; s.st_mode = S_IFDIR
            default:
                let e = entries[index - 2]
                name = e.name
                s = stat(e.attributes)
                childPath = NodeTable.join(path, e.name)
            }
            let next = index + 1
            let need: Int
            if plus {
                var e = fuse_entry_param()
                e.attr = s
                if let childPath {
                    // The kernel takes a lookup for each entry it gets: given back if it does not fit.
                    e.ino = nodes.lookedUp(childPath)
                    e.attr_timeout = timeout
                    e.entry_timeout = timeout
                }
                need = fuse_add_direntry_plus(req.raw, buffer + used, size - used, name, &e, off_t(next))
                if need > size - used, childPath != nil { nodes.forget(e.ino, 1) }
            } else {
                need = fuse_add_direntry(req.raw, buffer + used, size - used, name, &s, off_t(next))
            }
            if need > size - used { break }
            used += need
            index = next
        }
        fuse_reply_buf(req.raw, buffer, used)
    }
}

/// A copy of the `fuse_file_info` an open or create was called with, filled in and sent back
/// by the task that completes it: libfuse's own lives on its stack only until the callback
/// returns.
// @unchecked: the copy belongs to that one task, which frees it after replying.
final class FileInfo: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<fuse_file_info>
    init(_ original: UnsafeMutablePointer<fuse_file_info>) {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: original.pointee)
    }
    deinit { pointer.deallocate() }
}
