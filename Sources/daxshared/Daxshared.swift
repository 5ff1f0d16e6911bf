import ArgumentParser
import DaxshareConfigFile
import DaxshareExecutor
import DaxsharePmem
import DaxshareServer
import DaxshareService
import DaxshareVerbs
import DaxshareWire
import Dispatch
import Foundation
import CoreMetrics
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

            Everything can be given in a configuration file (YAML, daxshared.conf(5)):
            /etc/daxshare/daxshared.conf when it exists, or --config PATH; flags override it.
            `daxshared --check-config` prints what would be served, or every error with its line.

            Example, without a file:
              daxshared --listen 169.254.77.1 --export data=/mnt/pmem/data --export docs=/srv/docs:ro \\
                        --secret-file /etc/daxshare/secret

            SIGHUP rereads the configuration and applies its exports and secrets without dropping
            sessions: a removed export answers EXPORT_REMOVED to the sessions that used it, and
            the layouts a change takes away are recalled. A configuration with errors changes
            nothing (logged, and counted in daxshare_config_reload_failures_total).

            Metrics: GET http://127.0.0.1:9445/metrics (Prometheus text format; --metrics-listen).

            SIGINT or SIGTERM stops it cleanly: no new connections, open ones are closed, exit 0.
            Under systemd (Type=notify, the daxshared.service unit) it reports READY=1 and a status
            line once it listens, RELOADING=1 around a reload, and STOPPING=1 when stopping
            (sd_notify(3)).

            Exit status:
              0   stopped by SIGINT or SIGTERM (also --help, and --check-config of a good file)
              1   could not start: a configuration error (each printed with its line), no RDMA
                  device, an export directory that cannot be opened, a metrics address in use
              64  usage error: a bad option
            """,
        version: "1.0 (protocol 1.0); \(Device.flushSupportDescription)")

    @Option(name: .long, help: "The configuration file (YAML; see daxshared.conf(5) and dist/daxshared.conf.example). Default \(ConfigFile.defaultPath) when it exists; flags override it.")
    var config: String?

    @Flag(name: .long, help: "Check the configuration (file and flags), print what would be served or every error with its line, and exit (0: good, 1: not).")
    var checkConfig = false

    @Option(name: .long, help: "Address to listen on, ADDR[:PORT] (IPv6 as [ADDR]:PORT). Default port 5445. Repeatable; replaces the file's.")
    var listen: [String] = []

    @Option(name: .customLong("export"), help: "An exported directory, NAME=DIR or NAME=DIR:ro (read-only). Repeatable; replaces the file's exports.")
    var exports: [String] = []

    @Option(name: .long, help: "File holding the pre-shared secret (mode 600 or stricter). \(SecretKey.rule).")
    var secretFile: String?

    @Option(name: .customLong("admin-identity"), help: "An identity whose sessions see every client in `daxshare stat --server --clients` (others see their own). Repeatable; replaces the file's admin-identities.")
    var administrators: [String] = []

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (default info).")
    var logLevel: String?

    @Option(name: .long, help: "Log format: text, or json (one object per line, for a journal).")
    var logFormat: ConfigFile.LogFormat?

    @Option(name: .long, help: "Address of the Prometheus metrics endpoint, ADDR:PORT, or 'off' (default \(DaemonConfiguration.defaultMetricsListen)).")
    var metricsListen: String?

    @Option(name: .long, help: "Connections served at once; more are refused with a reason (default 64).")
    var maxConnections: Int?

    @Option(name: .long, help: "Open files per client session (default 1024).")
    var maxOpenFiles: Int?

    @Option(name: .long, help: "Layouts a client session may hold at once; LAYOUTGET beyond it gets TOO_MANY (default 1024).")
    var maxLayouts: Int?

    @Option(name: .long, help: "Milliseconds a client has to return a recalled layout before it is fenced (default 5000).")
    var recallDeadlineMs: UInt32?

    @Option(name: .long, help: "Seconds of silence on a connection before a keepalive; a peer that then sends nothing for 10 s is disconnected, and its layouts released (default \(TransportConfig.keepaliveIntervalSeconds)).")
    var keepaliveSeconds: Int?

    @Option(name: .long, help: "Seconds a connection may stay without a session (from connecting, or after a LOGOFF) before it is closed (default 10).")
    var sessionSetupTimeout: Double?

    @Option(name: .long, help: "Failed authentications an address may make, across connections, before its session set-ups get TRY_LATER (default 10).")
    var authFailureBurst: Int?

    @Option(name: .long, help: "Seconds in which a rate-limited address earns back one failed authentication (default 6).")
    var authFailureRefillSeconds: Double?

    @Option(name: .long, help: "The OS lease layouts live under: 'delegation' (F_SETDELEG, Linux 6.19+; a local open, truncate, unlink, rename or attribute change recalls them; falls back to 'lease' where the kernel has none) or 'lease' (F_SETLEASE; a local open or truncate recalls them). Default delegation.")
    var leaseKind: FileLease.Mechanism?

    @Flag(inversion: .prefixedNo, help: "Prefetch each layout's pages at LAYOUTGET (ibv_advise_mr), so first accesses take no ODP fault (default on).")
    var layoutPrefetch: Bool?

    @Flag(inversion: .prefixedNo, help: "Offer RDMA FLUSH as the one-sided commit where the device and this build have it (PROTOCOL.md §5.8; default on). --version says whether this build has it.")
    var rdmaFlush: Bool?

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
        // Before any task, after the mask (its threads inherit it): tasks run on a pool that
        // sleeps while there is nothing to do (ThreadPoolExecutor; Dispatch's wakes every second).
        ThreadPoolExecutor.installAsGlobalExecutor()
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
        if let logLevel, !ConfigFile.logLevels.contains(logLevel) {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        let positive = [maxConnections, maxOpenFiles, maxLayouts, keepaliveSeconds, authFailureBurst].allSatisfy { ($0 ?? 1) > 0 }
            && (recallDeadlineMs ?? 1) > 0 && (sessionSetupTimeout ?? 1) > 0 && (authFailureRefillSeconds ?? 1) > 0
        guard positive else { throw ValidationError("limits must be positive") }
    }

    /// What the flags say, as a configuration laid over the file's.
    func flagSettings() throws -> ConfigFile {
        var c = ConfigFile()
        if !listen.isEmpty { c.listen = listen.map { .init($0) } }
        c.secretFile = secretFile.map { .init($0) }
        if !exports.isEmpty {
            c.exports = try exports.map { .init(try ServerConfiguration.ExportSpec(parsing: $0)) }
        }
        if !administrators.isEmpty { c.administrators = .init(Set(administrators)) }
        c.logLevel = logLevel.map { .init($0) }
        c.logFormat = logFormat
        c.metricsListen = metricsListen.map { .init($0 == "off" ? "" : $0) }
        c.maxConnections = maxConnections
        c.maxOpenFiles = maxOpenFiles
        c.maxLayouts = maxLayouts
        c.recallDeadlineMs = recallDeadlineMs
        c.keepaliveSeconds = keepaliveSeconds
        c.sessionSetupTimeoutSeconds = sessionSetupTimeout
        c.authFailureBurst = authFailureBurst
        c.authFailureRefillSeconds = authFailureRefillSeconds
        c.leaseKind = leaseKind
        c.layoutPrefetch = layoutPrefetch
        c.rdmaFlush = rdmaFlush
        return c
    }

    /// The configuration file in use: `--config`, else the default path if it exists.
    var configPath: String? {
        if let config { return config }
        return access(ConfigFile.defaultPath, F_OK) == 0 ? ConfigFile.defaultPath : nil
    }

    /// Reads the file (if any) under the flags: what `--check-config`, start-up and SIGHUP use.
    func loadConfiguration() throws -> DaemonConfiguration {
        let flags = try flagSettings()
        if let path = configPath { return try ConfigFile.load(path: path, overlaidBy: flags) }
        return try ConfigFile().overlaid(by: flags).resolve(path: "(flags)")
    }

    func run() async throws {
        let daemon: DaemonConfiguration
        do { daemon = try loadConfiguration() } catch let errors as ConfigErrors {
            FileHandle.standardError.write(Data("daxshared: the configuration has \(errors.problems.count) error(s):\n\(errors)\n".utf8))
            throw ExitCode.failure
        }
        if checkConfig {
            print(Self.describe(daemon, path: configPath))
            return
        }
        let level = Logger.Level(rawValue: daemon.logLevel)!
        let format = daemon.logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            case .json:
                var h = JSONLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            }
        }
        let logger = Logger(label: "daxshared")
        var config = daemon.server
        config.requestExecutor = ThreadPoolExecutor.global

        // Before the server: its counters bind to the backend when made.
        let registry = daemon.metrics.map { _ in MetricsEndpoint.bootstrap() }
        let server: Server
        do { server = try Server(configuration: config, logger: logger) } catch {
            // Exit 1, not CleanExit's 0: scripts and systemd's Restart=on-failure must see it.
            logger.critical("cannot start: \(error)")
            throw ExitCode.failure
        }
        var metricsTask: Task<Void, Never>?
        var metricsLine: String?
        if let registry, let (host, port) = daemon.metrics {
            do {
                Self.identityGauges.configure(config)
                let endpoint = try await MetricsEndpoint.start(registry, host: host, port: port, logger: logger) { [server] in
                    Self.identityGauges.refresh(from: server.clientEntries())
                }
                metricsTask = endpoint.task
                metricsLine = "daxshared: metrics on http://\(endpoint.address)/metrics"
            } catch where daemon.metricsExplicit {
                logger.critical("cannot serve metrics on \(host):\(port): \(error)")
                throw ExitCode.failure
            } catch {
                logger.warning("serving no metrics: the default \(host):\(port) is not available (\(error)); set metrics: listen")
            }
        }
        // Signals reach a thread of their own through a pipe, never a handler doing work.
        let hangups = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        do {
            try SignalPipe.start([SIGINT, SIGTERM, SIGHUP]) { [server] sig in
                if sig == SIGHUP {
                    hangups.continuation.yield()
                    return
                }
                logger.notice("received \(sig == SIGINT ? "SIGINT" : "SIGTERM")")
                SystemdNotifier.stopping()
                server.stop()
                // Connections are closed at once; one still in rdma_cm set-up (a peer that never
                // completed the handshake) must not keep the process alive past this bound.
                Thread.detachNewThread {
                    sleep(UInt32(Self.stopGraceSeconds))
                    logger.warning("still stopping after \(Self.stopGraceSeconds) s (a connection stuck in set-up); exiting")
                    Glibc.exit(0)
                }
            }
        } catch {
            logger.critical("cannot handle signals: \(error)")
            throw ExitCode.failure
        }
        let reloader = Task {
            for await _ in hangups.stream { await reload(server, logger: logger) }
        }
        print("daxshared: listening on \(server.addresses.map { "\($0)" }.joined(separator: ", "))")
        if let metricsLine { print(metricsLine) }
        fflush(nil)  // the line above is what scripts wait for
        SystemdNotifier.ready(status: Self.status(of: server))
        await server.run()
        reloader.cancel()
        metricsTask?.cancel()
    }

    /// Applies the configuration as it is now to the running server: its exports and secrets
    /// (the rest needs a restart). A configuration with errors changes nothing.
    func reload(_ server: Server, logger: Logger) async {
        logger.notice("received SIGHUP: reloading \(configPath ?? "the flags (no configuration file)")")
        SystemdNotifier.reloading()
        defer { SystemdNotifier.readyAfterReload(status: Self.status(of: server)) }
        do {
            let daemon = try loadConfiguration()
            try await server.reload(
                exports: daemon.server.exports, secret: daemon.server.secret, secrets: daemon.server.secrets,
                administrators: daemon.server.administrators)
            Self.identityGauges.configure(daemon.server)
        } catch {
            Self.reloadFailures.increment()
            let reason = (error as? ConfigErrors).map { e in
                "\(e.problems.count) error(s): \(e.problems.map(\.description).joined(separator: "; "))"
            } ?? "\(error)"
            logger.error("reload refused, nothing changed: \(reason)")
        }
    }

    /// The status line systemd shows (`systemctl status`), at start and after each reload.
    static func status(of server: Server) -> String {
        let n = server.exportNames.count
        return "serving \(n) export\(n == 1 ? "" : "s") on \(server.address)"
    }

    /// The per-identity gauges of the metrics endpoint (their labels follow the configuration).
    static let identityGauges = IdentityGauges()

    /// Reloads refused (the applied ones are the server's config_reloads).
    static var reloadFailures: CoreMetrics.Counter { Counter(label: "daxshare_config_reload_failures_total") }

    /// What `--check-config` prints: what would be served.
    static func describe(_ d: DaemonConfiguration, path: String?) -> String {
        let s = d.server
        var lines = ["configuration \(path ?? "(flags only)") is valid:",
                     "  listen " + ([(s.host, s.port)] + s.alsoListen).map { "\($0.0):\($0.1)" }.joined(separator: ", ")]
        for e in s.exports {
            let who = e.identities.map { " for \($0.sorted().joined(separator: ", "))" } ?? ""
            lines.append("  export \(e.name) = \(e.path)\(e.readOnly ? " (read-only)" : "")\(who)")
        }
        let identities = s.secrets.keys.sorted()
        lines.append("  secrets: \(s.secret.isEmpty ? "none shared" : "one shared")\(identities.isEmpty ? "" : ", own for \(identities.joined(separator: ", "))")")
        lines.append("  administrators: \(s.administrators.isEmpty ? "none" : s.administrators.sorted().joined(separator: ", "))")
        lines.append("  limits: \(s.maxConnections) connections, \(s.maxOpenFiles) open files and \(s.maxLayouts) layouts per session, recall deadline \(s.recallDeadlineMs) ms")
        lines.append("  leases: \(s.leaseKind), prefetch \(s.layoutPrefetch ? "on" : "off"), RDMA FLUSH \(s.rdmaFlush ? (Device.buildHasFlush ? "offered where the device has it" : "not built in") : "off")")
        lines.append("  log: \(d.logLevel), \(d.logFormat.rawValue)")
        lines.append("  metrics: \(d.metrics.map { "http://\($0.host):\($0.port)/metrics" } ?? "off")")
        return lines.joined(separator: "\n")
    }
}

extension FileLease.Mechanism: ExpressibleByArgument {}
extension ConfigFile.LogFormat: ExpressibleByArgument {}
