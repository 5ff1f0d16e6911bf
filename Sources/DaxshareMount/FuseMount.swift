import CFuse
import DaxshareClient
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Why a mount could not be made: one line for the user.
public struct MountError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A mounted libfuse low-level session serving a `DaxshareFileSystem`.
///
/// Reader threads (`readers` of them) each take a free slot of `RequestBuffers`, read one
/// request into it (`fuse_session_receive_buf`) and dispatch it (`fuse_session_process_buf`);
/// the callbacks start the work and return, and the reader posts a read's or write's RDMA work
/// request itself before reading the next (`InlineStartExecutor`), so a few threads keep many
/// requests in flight.
/// `run` returns when the file system is unmounted (`fusermount3 -u`, `umount`, `unmount()`).
// @unchecked: `session` is used only through libfuse calls that are safe from any thread
// (receive, process, reply, notify, unmount); `arguments` is written once, in init.
public final class FuseMount: @unchecked Sendable {
    public let mountpoint: String
    public let fileSystem: DaxshareFileSystem
    private let session: OpaquePointer
    private var arguments: [UnsafeMutablePointer<CChar>?]
    private let unmounted = Atomic<Bool>(false)

    /// Creates the session and mounts it (`fuse_session_new`, `fuse_session_mount`).
    public init(mountpoint: String, fsname: String, fileSystem: DaxshareFileSystem) throws(MountError) {
        self.mountpoint = mountpoint
        self.fileSystem = fileSystem
        try Self.check(mountpoint: mountpoint)
        // fsname shows in /proc/mounts and df; commas would split the option list.
        let fsnameOption = "fsname=" + fsname.split(separator: ",", omittingEmptySubsequences: false).joined(separator: "%2C")
        let options = [fsnameOption, "subtype=daxshare"] + fileSystem.options.fuseOptions
        let argv = ["daxshare", "-o", options.joined(separator: ",")]
        arguments = argv.map { strdup($0) } + [nil]
        let made = arguments.withUnsafeMutableBufferPointer { argvBuffer -> OpaquePointer? in
            var args = fuse_args(argc: Int32(argv.count), argv: argvBuffer.baseAddress, allocated: 0)
            var ops = FuseMount.operations
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size,
                                    Unmanaged.passUnretained(fileSystem).toOpaque())
        }
        guard let made else { throw MountError("libfuse refused the mount options: \(options.joined(separator: ","))") }
        session = made
        // A failed init still runs deinit, which destroys the session.
        guard fuse_session_mount(session, mountpoint) == 0 else {
            throw MountError("cannot mount on \(mountpoint) (libfuse's message is above; is it already mounted, or not yours?)")
        }
        let session = SessionPointer(raw: made)
        fileSystem.setInvalidator { node in
            // ENOENT: the kernel no longer knows the node; nothing to drop.
            _ = fuse_lowlevel_notify_inval_inode(session.raw, node, 0, 0)
        }
    }

    /// What can be checked before connecting to the server: /dev/fuse, and the mount point.
    public static func check(mountpoint: String) throws(MountError) {
        guard access("/dev/fuse", R_OK | W_OK) == 0 else {
            throw MountError(errno == ENOENT
                ? "/dev/fuse does not exist: load the fuse kernel module (modprobe fuse)"
                : "cannot use /dev/fuse: \(String(cString: strerror(errno)))")
        }
        var st = Glibc.stat()
        guard fstatat(AT_FDCWD, mountpoint, &st, 0) == 0 else {
            throw MountError("\(mountpoint): \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw MountError("\(mountpoint): not a directory") }
    }

    deinit {
        fuse_session_destroy(session)
        for a in arguments { free(a) }
    }

    /// Serves requests until the file system is unmounted, then closes what is still open.
    public func run() async {
        let readers = fileSystem.options.readers
        let recalls = Task { await fileSystem.watchRecalls() }
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<readers {
                group.addTask { await self.readerThread(i) }
            }
        }
        recalls.cancel()
        await fileSystem.closeAll()
    }

    /// Unmounts (`fuse_session_unmount`: umount2 as root, else fusermount3 -u); `run` returns.
    public func unmount() {
        guard !unmounted.exchange(true, ordering: .acquiringAndReleasing) else { return }
        fuse_session_unmount(session)
    }

    /// One blocking reader on a thread of its own (not the cooperative pool's).
    private func readerThread(_ index: Int) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let box = Unmanaged.passRetained(ReaderContext(mount: self, done: done))
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<ReaderContext>.fromOpaque(raw!).takeRetainedValue()
                context.mount.readLoop()
                context.done.resume()
                return nil
            }, box.toOpaque())
            if rc != 0 {
                box.release()
                fileSystem.logger.error("cannot start FUSE reader thread \(index): \(String(cString: strerror(rc)))")
                done.resume()
            } else {
                pthread_detach(thread)
            }
        }
    }

    private func readLoop() {
        let buffers = fileSystem.buffers
        while !fuse_session_exited(session).asBool {
            let slot = buffers.acquireForReading()
            let memory = buffers.slot(slot)
            var buf = fuse_buf()
            buf.mem = memory.baseAddress
            buf.size = memory.count
            let n = fuse_session_receive_buf(session, &buf)
            if n == -EINTR || n == -EAGAIN {
                buffers.finishedDispatching(slot)
                continue
            }
            if n <= 0 {
                // ENODEV: unmounted. Anything else ends the session too.
                buffers.finishedDispatching(slot)
                if n != -ENODEV && n != 0 { fileSystem.logger.error("reading /dev/fuse: \(String(cString: strerror(-n)))") }
                fuse_session_exit(session)
                return
            }
            fileSystem.inline.startingInline { fuse_session_process_buf(session, &buf) }
            buffers.finishedDispatching(slot)
        }
    }
}

private final class ReaderContext {
    let mount: FuseMount
    let done: CheckedContinuation<Void, Never>
    init(mount: FuseMount, done: CheckedContinuation<Void, Never>) {
        self.mount = mount
        self.done = done
    }
}

/// The session pointer handed to a closure that notifies the kernel.
// @unchecked: libfuse's notify calls may be made from any thread.
struct SessionPointer: @unchecked Sendable {
    let raw: OpaquePointer
}

extension Int32 {
    var asBool: Bool { self != 0 }
}
