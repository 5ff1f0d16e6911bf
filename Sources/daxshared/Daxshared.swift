import ArgumentParser
import DaxsharePmem
import DaxshareServer
import DaxshareService
import DaxshareVerbs
import DaxshareWire
import Dispatch
import Foundation
import Logging
import SystemPackage

@main
struct Daxshared: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daxshared",
        abstract: "Serve directories of DAX-backed files over RDMA.",
        discussion: """
            daxshared listens with RDMA-CM and exports directories to daxshare clients. Put the
            exported directories on an fsdax filesystem (ext4 or xfs mounted -o dax) so that data
            lives in persistent memory; elsewhere it still works, through the page cache.

            Clients authenticate with a pre-shared secret: the same file on both sides. Create one
            with `head -c 32 /dev/urandom > secret && chmod 600 secret`. daxshared refuses a secret
            file that its group or others can read.

            Example:
              daxshared --listen 169.254.77.1 --export data=/mnt/pmem/data --export docs=/srv/docs:ro \\
                        --secret-file /etc/daxshare/secret

            SIGINT or SIGTERM stops it cleanly: no new connections, open ones are closed, exit 0.
            Under systemd (Type=notify, the daxshared.service unit) it reports READY=1 and a status
            line once it listens, and STOPPING=1 when stopping (sd_notify(3)).

            Configuration file: the format of /etc/daxshare/daxshared.conf is in daxshared.conf(5).

            Exit status:
              0   stopped by SIGINT or SIGTERM (also --help)
              1   could not start: a malformed --listen or --export, no RDMA device, or an export
                  directory that cannot be opened
              64  usage error: a bad or missing option, or an unusable secret file
            """)

    @Option(name: .long, help: "Address to listen on, ADDR[:PORT] (IPv6 as [ADDR]:PORT). Default port 5445.")
    var listen: String

    @Option(name: .customLong("export"), help: "An exported directory, NAME=DIR or NAME=DIR:ro (read-only). Repeatable.")
    var exports: [String] = []

    @Option(name: .long, help: "File holding the pre-shared secret (mode 600 or stricter). \(SecretKey.rule).")
    var secretFile: String

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Connections served at once; more are refused with a reason.")
    var maxConnections: Int = 64

    @Option(name: .long, help: "Open files per client session.")
    var maxOpenFiles: Int = 1024

    @Option(name: .long, help: "Layouts a client session may hold at once; LAYOUTGET beyond it gets TOO_MANY.")
    var maxLayouts: Int = 1024

    @Option(name: .long, help: "Milliseconds a client has to return a recalled layout before it is fenced.")
    var recallDeadlineMs: UInt32 = 5000

    @Option(name: .long, help: "Seconds of silence on a connection before a keepalive; a peer that then sends nothing for 10 s is disconnected, and its layouts released.")
    var keepaliveSeconds: Int = TransportConfig.keepaliveIntervalSeconds

    @Option(name: .long, help: "Seconds a connection may stay without a session (from connecting, or after a LOGOFF) before it is closed.")
    var sessionSetupTimeout: Double = 10

    @Option(name: .long, help: "Failed authentications an address may make, across connections, before its session set-ups get TRY_LATER.")
    var authFailureBurst: Int = 10

    @Option(name: .long, help: "Seconds in which a rate-limited address earns back one failed authentication.")
    var authFailureRefillSeconds: Double = 6

    @Option(name: .long, help: "The OS lease layouts live under: 'delegation' (F_SETDELEG, Linux 6.19+; a local open, truncate, unlink, rename or attribute change recalls them; falls back to 'lease' where the kernel has none) or 'lease' (F_SETLEASE; a local open or truncate recalls them).")
    var leaseKind: FileLease.Mechanism = .delegation

    @Flag(inversion: .prefixedNo, help: "Prefetch each layout's pages at LAYOUTGET (ibv_advise_mr), so first accesses take no ODP fault.")
    var layoutPrefetch = true

    static let stopGraceSeconds = 10

    /// The entry point: blocks the lease-break signal before anything else runs. This is the
    /// main thread, before its first suspension, so no other thread exists yet (no Dispatch
    /// worker, no concurrency pool, no verbs event loop) and every thread started later inherits
    /// the mask. The main thread itself cannot keep it: Swift's async main ends in
    /// `dispatch_main`, which waits in sigsuspend with an empty mask; so the signal is also
    /// ignored there (SIG_IGN; a thread that blocks it still reads it from its signalfd). A
    /// break the kernel sends to the process (in the moment after F_SETLEASE, before
    /// F_SETOWN_EX points it at the lease thread) can then never kill the server (an RT
    /// signal's default action is to terminate); LeaseWatcher finds such a break by asking the
    /// lease's state once its breaks are redirected.
    static func main() async {
        do {
            try LeaseBreakNotifier.blockSignal()
            try LeaseBreakNotifier.ignoreWhereUnblocked()
            // The kernel falls back to SIGIO when it cannot queue the RT signal (too many
            // pending) or the descriptor has no F_SETSIG signal; its default action terminates too.
            try LeaseBreakNotifier.ignoreWhereUnblocked(SIGIO)
        } catch {
            FileHandle.standardError.write(Data("daxshared: cannot block the lease-break signal: \(error)\n".utf8))
            Glibc.exit(1)
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        guard !exports.isEmpty else { throw ValidationError("give at least one --export NAME=DIR") }
        guard maxConnections > 0, maxOpenFiles > 0, recallDeadlineMs > 0, keepaliveSeconds > 0,
              authFailureBurst > 0, authFailureRefillSeconds > 0, sessionSetupTimeout > 0 else { throw ValidationError("limits must be positive") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "daxshared")
        let (host, port) = try SocketAddress.parse(listen, defaultPort: Limits.defaultPort)
        var config = ServerConfiguration(
            host: host, port: port, exports: try exports.map { try .init(parsing: $0) }, secret: try readSecret())
        config.maxConnections = maxConnections
        config.maxOpenFiles = maxOpenFiles
        config.maxLayouts = maxLayouts
        config.recallDeadlineMs = recallDeadlineMs
        config.transport.keepaliveInterval = .seconds(keepaliveSeconds)
        config.layoutPrefetch = layoutPrefetch
        config.leaseKind = leaseKind
        config.authFailureBurst = authFailureBurst
        config.sessionSetupTimeout = .seconds(sessionSetupTimeout)
        config.authFailureRefill = .seconds(authFailureRefillSeconds)

        let server: Server
        do { server = try Server(configuration: config, logger: logger) } catch {
            // Exit 1, not CleanExit's 0: scripts and systemd's Restart=on-failure must see it.
            FileHandle.standardError.write(Data("daxshared: \(error)\n".utf8))
            throw ExitCode.failure
        }
        // Signals arrive as Dispatch events, never in a handler doing work.
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                logger.notice("received \(sig == SIGINT ? "SIGINT" : "SIGTERM")")
                SystemdNotifier.stopping()
                server.stop()
                // Connections are closed at once; one still in rdma_cm set-up (a peer that never
                // completed the handshake) must not keep the process alive past this bound.
                DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(Self.stopGraceSeconds)) {
                    logger.warning("still stopping after \(Self.stopGraceSeconds) s (a connection stuck in set-up); exiting")
                    Glibc.exit(0)
                }
            }
            source.resume()
            sources.append(source)
        }
        print("daxshared: listening on \(server.address)")
        fflush(nil)  // the line above is what scripts wait for
        let exportCount = config.exports.count
        SystemdNotifier.ready(status: "serving \(exportCount) export\(exportCount == 1 ? "" : "s") on \(server.address)")
        await server.run()
        sources.forEach { $0.cancel() }
    }

    /// Reads the secret, refusing a file others could read.
    func readSecret() throws -> [UInt8] {
        var st = stat()
        guard stat(secretFile, &st) == 0 else {
            throw ValidationError("cannot read secret file \(secretFile): \(Errno(rawValue: errno))")
        }
        guard st.st_mode & 0o077 == 0 else {
            throw ValidationError(
                "secret file \(secretFile) has mode \(String(st.st_mode & 0o777, radix: 8)); group and others must have no access (chmod 600)")
        }
        guard let data = FileManager.default.contents(atPath: secretFile) else {
            throw ValidationError("cannot read secret file \(secretFile)")
        }
        let bytes = SecretKey.key(fromFileContents: Array(data))
        guard bytes.count >= SecretKey.minimumLength else {
            throw ValidationError("the key in secret file \(secretFile) is \(bytes.count) bytes; use at least \(SecretKey.minimumLength)")
        }
        return bytes
    }
}

extension FileLease.Mechanism: ExpressibleByArgument {}
