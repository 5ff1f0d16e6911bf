import ArgumentParser
import DaxshareClient
import DaxshareMount
import DaxshareVerbs
import Dispatch
import Logging
#if canImport(Glibc)
import Glibc
#endif

struct Mount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount an export, or a directory in it, as a file system (FUSE).",
        discussion: """
            Every program can then use the files: reads and writes move one-sided (RDMA READ \
            and WRITE through layouts) between the server's pmem and the kernel's request \
            buffers, two-sided where the server grants no layout.

              daxshare mount daxshare://10.0.0.1/pmem /mnt/pmem -o secret-file=/etc/daxshare/secret
              daxshare umount /mnt/pmem          (or: fusermount3 -u /mnt/pmem)

            In /etc/fstab (mount.fuse3 runs `daxshare URL DIR -o OPTIONS`):

              daxshare://10.0.0.1/pmem  /mnt/pmem  fuse.daxshare  secret-file=/etc/daxshare/secret,_netdev  0 0

            Options (-o, comma-separated): secret-file=PATH, identity=NAME, two-sided, \
            attr-timeout=SECONDS (default 1), cache=direct|cached (default direct: no page \
            cache, another client's change is seen at once), queue-depth=N, poll (busy-poll \
            completions: lower latency, one core spinning), readers=N (threads reading \
            /dev/fuse, default 2), max_write=BYTES (default 1 MiB); the rest go to \
            the kernel and libfuse (ro, allow_other, default_permissions, noatime, ...).

            Durability: fsync(2) and fdatasync(2) make a file's written bytes, size and times \
            durable (LAYOUTCOMMIT, then FLUSH if anything went two-sided). close(2) commits \
            what was written one-sided, so the next open sees it, but promises durability \
            only for that; open with O_SYNC or O_DSYNC for write-through.

            Without --foreground the mount runs in the background once it is mounted; errors \
            (bad URL, wrong secret, unreachable server, no /dev/fuse) are reported before that.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT[/PATH]") var url: String
    @Argument(help: ArgumentHelp("An existing directory to mount on.", valueName: "DIR")) var mountpoint: String
    @Option(name: .customShort("o"), help: ArgumentHelp("Mount options, comma-separated (repeatable).", valueName: "OPTIONS"))
    var options: [String] = []
    @Flag(name: [.customShort("f"), .long], help: "Stay in the foreground (logs on stderr) until unmounted.")
    var foreground = false
    @Flag(name: [.customShort("d"), .long], help: "Log every FUSE operation's failure and the session's events (with -f).")
    var debug = false
    /// The background child reports "mounted" or its error here (set by the parent).
    @Option(name: .customLong("ready-fd"), help: .hidden) var readyFd: Int32?

    func validate() throws {
        do throws(MountOptionError) { _ = try MountOptions(parsing: options) } catch {
            throw ValidationError("\(error)")
        }
    }

    mutating func run() async throws {
        if !foreground && readyFd == nil {
            // What can be told before the background process starts is told by this one.
            do throws(MountError) { try FuseMount.check(mountpoint: mountpoint) } catch {
                Console.error("daxshare: mount \(url): \(error)")
                throw ExitCode(CommandExitCode.usage.rawValue)
            }
            var again = [url, mountpoint] + options.flatMap { ["-o", $0] }
            if let path = connection.secretFile { again += ["--secret-file", path] }
            if let identity = connection.identity { again += ["--identity", identity] }
            if debug { again.append("--debug") }
            throw ExitCode(Background.start(arguments: again, url: url))
        }
        // The background child leaves the caller's session: a hang-up of the terminal that
        // ran `daxshare mount` must not reach it.
        if readyFd != nil { setsid() }
        let reporter = ReadyReporter(fd: readyFd)
        do throws(MountFailure) {
            try await serve(reporter)
        } catch {
            reporter.failed("daxshare: mount \(url): \(error.message)", code: error.code)
            throw ExitCode(error.code)
        }
    }

    private func serve(_ reporter: ReadyReporter) async throws(MountFailure) {
        var mountOptions: MountOptions
        do throws(MountOptionError) { mountOptions = try MountOptions(parsing: options) } catch {
            throw MountFailure(message: "\(error)", code: CommandExitCode.usage.rawValue)
        }
        do throws(MountError) { try FuseMount.check(mountpoint: mountpoint) } catch {
            throw MountFailure(message: "\(error)", code: CommandExitCode.usage.rawValue)
        }
        var logger = Logger(label: "daxshare.mount")
        logger.logLevel = debug ? .debug : .notice
        let session: ClientSession
        let target: DaxshareURL
        do throws(ClientError) {
            target = try DaxshareURL(url)
            var connection = connection
            if connection.secretFile == nil { connection.secretFile = mountOptions.secretFile }
            if connection.identity == nil { connection.identity = mountOptions.identity }
            let secret = try connection.secret()
            var config = ClientConfiguration()
            if let identity = connection.identity { config.identity = identity }
            if mountOptions.twoSided { config.useLayouts = false }
            if let depth = mountOptions.queueDepth { config.queueDepth = depth }
            if mountOptions.poll { config.eventLoop = EventLoop(name: "daxshare-mount-poll", waiting: .busyPolling) }
            session = try await ClientSession.connect(to: target, secret: secret, config: config)
            // The mounted directory must be one: a clear error now rather than ENOTDIR later.
            if !target.path.isEmpty {
                let a = try await session.stat(target.path)
                if a.type != .directory {
                    await session.close()
                    throw ClientError.status(.notDirectory, .stat)
                }
            }
        } catch {
            throw MountFailure(message: "\(error)", code: CommandExitCode(for: error).rawValue)
        }
        let buffers = RequestBuffers(count: 32)
        let registration: BufferRegistration
        do throws(ClientError) { registration = try session.register(buffers.all) } catch {
            await session.close()
            throw MountFailure(message: "\(error)", code: CommandExitCode(for: error).rawValue)
        }
        let fileSystem = DaxshareFileSystem(session: session, root: target.path, options: mountOptions, buffers: buffers,
                                            logger: logger)
        let mount: FuseMount
        do throws(MountError) {
            mount = try FuseMount(mountpoint: mountpoint, fsname: target.description, fileSystem: fileSystem)
        } catch {
            await session.close()
            throw MountFailure(message: "\(error)", code: CommandExitCode.usage.rawValue)
        }
        reporter.mounted()
        let signals = [SIGINT, SIGTERM, SIGHUP].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig)
            source.setEventHandler { mount.unmount() }
            source.resume()
            return source
        }
        logger.notice("mounted \(target) on \(mountpoint)")
        await mount.run()
        signals.forEach { $0.cancel() }
        session.deregister(registration)
        await session.close()
        logger.notice("unmounted \(mountpoint)")
    }
}

struct MountFailure: Error {
    let message: String
    let code: Int32
}

/// Tells the parent of a background mount how it went: "ok", or the exit code and the error.
struct ReadyReporter {
    let fd: Int32?

    func mounted() {
        guard let fd else { return }
        send(fd, "ok\n")
        close(fd)
        // Nothing reaches a terminal any more: stdio goes to /dev/null, as a daemon's does.
        let null = open("/dev/null", O_RDWR)
        if null >= 0 { for target: Int32 in 0...2 { dup2(null, target) } }
    }

    func failed(_ line: String, code: Int32) {
        guard let fd else { return Console.error(line) }
        send(fd, "\(code) \(line)\n")
        close(fd)
    }

    private func send(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress, $0.count) }
    }
}

/// Starts the mount as a background process (which calls setsid; not fork(2): this process
/// already runs threads) and waits until it reports that it is mounted or why not.
enum Background {
    static func start(arguments: [String], url: String) -> Int32 {
        var pipeFds: [Int32] = [0, 0]
        guard pipe(&pipeFds) == 0 else {
            Console.error("daxshare: mount \(url): pipe: \(String(cString: strerror(errno)))")
            return 1
        }
        let (readEnd, writeEnd) = (pipeFds[0], pipeFds[1])
        // The child must hold nothing of ours but the report pipe: a caller reading our stdout
        // or stderr to its end (a test, a script's $(...)) would otherwise wait for the daemon.
        closeOnExec(allBut: [0, 1, 2])
        let childReady: Int32 = 3
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, childReady)
        posix_spawn_file_actions_addclose(&actions, readEnd)
        if writeEnd != childReady { posix_spawn_file_actions_addclose(&actions, writeEnd) }

        let argv = ["daxshare", "mount"] + arguments + ["--ready-fd", "\(childReady)"]
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, nil, cArgs, environ)
        close(writeEnd)
        guard rc == 0 else {
            close(readEnd)
            Console.error("daxshare: mount \(url): cannot start the background process: \(String(cString: strerror(rc)))")
            return 1
        }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            reply += chunk[0..<n]
            // One line says it all; the child keeps running (and may hold other copies of the pipe).
            if reply.last == 0x0A { break }
        }
        close(readEnd)
        let text = String(decoding: reply, as: UTF8.self)
        if text == "ok\n" { return 0 }
        var status: Int32 = 0
        if text.isEmpty {
            waitpid(pid, &status, 0)
            Console.error("daxshare: mount \(url): the mount process ended before mounting (wait status \(status))")
            return 1
        }
        waitpid(pid, &status, 0)
        let parts = text.split(separator: " ", maxSplits: 1)
        Console.error(parts.count == 2 ? String(parts[1]) : text)
        return parts.first.flatMap { Int32($0) } ?? 1
    }
}

/// Marks every descriptor of this process close-on-exec, except `keep`.
private func closeOnExec(allBut keep: Set<Int32>) {
    guard let dir = opendir("/proc/self/fd") else { return }
    defer { closedir(dir) }
    var fds: [Int32] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let fd = Int32(name), !keep.contains(fd) { fds.append(fd) }
    }
    for fd in fds where fd != dirfd(dir) {
        let flags = fcntl(fd, F_GETFD)
        if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
    }
}

struct Umount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "umount",
        abstract: "Unmount a daxshare mount (fusermount3 -u).",
        discussion: "Open files are closed: what was written one-sided is committed first.")

    @Argument(help: ArgumentHelp("The mount point.", valueName: "DIR")) var mountpoint: String
    @Flag(name: [.customShort("z"), .long], help: "Detach now, even if busy (lazy unmount).")
    var lazy = false

    mutating func run() async throws {
        let argv = ["fusermount3", "-u"] + (lazy ? ["-z"] : []) + [mountpoint]
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, "fusermount3", nil, nil, cArgs, environ)
        guard rc == 0 else {
            Console.error("daxshare: umount \(mountpoint): cannot run fusermount3 (package fuse3): \(String(cString: strerror(rc)))")
            throw ExitCode(1)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // fusermount3 printed its own reason.
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 1
        if exited != 0 { throw ExitCode(1) }
    }
}
