import ArgumentParser
import DaxshareClient
import DaxshareVerbs
import DaxshareWire

/// The root command: only help; the work is in the subcommands.
struct Daxshare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daxshare",
        abstract: "Copy, list and manage files on a daxshare server (daxshared) over RDMA.",
        discussion: """
            Every command names a file on the server with a URL:

              daxshare://HOST[:PORT]/EXPORT/PATH

            HOST is a name, an IPv4 address or a bracketed IPv6 address ([fe80::1]); PORT \
            defaults to 5445; EXPORT is one of the server's exports (daxshared --export NAME=DIR); \
            PATH is relative to the export and may be empty for its root. Special characters \
            are percent-encoded (%20 for a space). An optional IDENTITY@ before HOST picks which \
            of the server's secrets to use (as --identity does).

            The server and client share a secret: a file of at least 16 bytes, given with \
            --secret-file PATH or the environment variable DAXSHARE_SECRET_FILE. One final \
            newline (\\n) is not part of the key, as on the server. The secret never \
            crosses the network; both sides prove they know it (HMAC-SHA256 challenge-response).

            Examples:
              export DAXSHARE_SECRET_FILE=~/.daxshare-secret
              daxshare ls daxshare://10.0.0.1/pmem
              daxshare put big.bin daxshare://10.0.0.1/pmem/data/ --digest
              daxshare get daxshare://10.0.0.1/pmem/data/big.bin copy.bin --digest
              daxshare cat daxshare://10.0.0.1/pmem/notes.txt | less
              daxshare mv daxshare://10.0.0.1/pmem/data/big.bin old/big.bin
              daxshare truncate daxshare://10.0.0.1/pmem/data/big.bin 1G
              daxshare mount daxshare://10.0.0.1/pmem /mnt/pmem

            Errors are one line on stderr, e.g. "daxshare: stat daxshare://h/e/x: not found".

            Exit codes:
            \(CommandExitCode.helpTable)
            """,
        version: "1.0 (protocol 1.0); \(Device.flushSupportDescription)",
        subcommands: [Ls.self, Stat.self, Get.self, Put.self, Cat.self, Rm.self, Mv.self, Truncate.self, Mount.self, Umount.self]
    )
}

/// How to reach and authenticate to the server: shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("secret-file"),
            help: ArgumentHelp("File with the pre-shared secret (default: $DAXSHARE_SECRET_FILE). \(SecretKey.rule).", valueName: "PATH"))
    var secretFile: String?

    @Option(help: ArgumentHelp("Which of the server's secrets to use (default: its default secret).", valueName: "NAME"))
    var identity: String?

    /// The secret from --secret-file, else $DAXSHARE_SECRET_FILE.
    func secret() throws(ClientError) -> SessionSecret {
        let path = secretFile ?? Console.environment("DAXSHARE_SECRET_FILE")
        guard let path, !path.isEmpty else {
            throw .invalidArgument("no secret: pass --secret-file PATH or set DAXSHARE_SECRET_FILE")
        }
        return try SessionSecret(contentsOf: path)
    }
}

/// Options of the commands that move file data.
struct TransferOptions: ParsableArguments {
    @Flag(help: "Print the SHA-256 of the bytes moved, as sha256sum does: HEX, two spaces, the local file.")
    var digest = false

    @Flag(name: .customLong("no-progress"), help: "Never draw the progress bar (it is drawn only when stderr is a terminal).")
    var noProgress = false

    @Option(name: .customLong("queue-depth"),
            help: "Requests kept in flight: READ/WRITE requests two-sided, RDMA work requests (up to 1 MiB each) one-sided.")
    var queueDepth = 4

    func validate() throws {
        guard (1...64).contains(queueDepth) else { throw ValidationError("--queue-depth must be between 1 and 64") }
    }
}

/// How file data moves: shared by get, put and cat.
struct DataPathOptions: ParsableArguments {
    @Flag(name: .customLong("two-sided"),
          help: "Move the data with two-sided READ/WRITE requests instead of one-sided RDMA through layouts.")
    var twoSided = false

    @Flag(help: "Busy-poll RDMA completions (a core spins while the command runs) for lower latency, as perftest does.")
    var poll = false

    @Flag(name: [.customShort("v"), .customLong("verbose")],
          help: "Print on stderr how the data moved (\"one-sided via layout\" or \"two-sided\") and how much.")
    var verbose = false

    func apply(to config: inout ClientConfiguration) {
        if twoSided { config.useLayouts = false }
        if poll { config.eventLoop = EventLoop(name: "daxshare-poll", waiting: .busyPolling) }
        // TEST ONLY (the recall tests' fencing case): acknowledge recalls but never return.
        if Console.environment(ClientConfiguration.ignoreRecallsVariable) == "1" {
            config.layouts.ignoreRecallsForTesting = true
        }
    }

    /// The `-v` line: "daxshare: get URL: N bytes, one-sided via layout".
    func report(_ verb: String, _ subject: String, _ result: TransferResult) {
        if verbose { Console.error("daxshare: \(verb) \(subject): \(result.bytes) bytes, \(result.dataPath)") }
    }
}

/// Runs one command against the server: parse the URL, connect, run `body`, disconnect.
/// Any failure is printed as `daxshare: VERB SUBJECT: reason` and ends the process with the
/// exit code of its kind (see `CommandExitCode`).
enum CLI {
    ///
    /// With `retryTwoSided`, a command whose one-sided I/O failed (`.layoutLost`: a layout
    /// revoked before its bytes were committed, or a one-sided operation that broke the
    /// connection) runs once more on a new connection, two-sided; `body` must then be safe to
    /// run again (get to a file, put from a regular file).
    static func run<T>(
        _ verb: String, _ urlText: String, _ options: ConnectionOptions, queueDepth: Int? = nil,
        dataPath: DataPathOptions? = nil, retryTwoSided: Bool = false,
        _ body: (ClientSession, DaxshareURL) async throws(ClientError) -> T
    ) async throws -> T {
        do throws(ClientError) {
            let url = try DaxshareURL(urlText)
            let secret = try options.secret()
            var config = ClientConfiguration()
            if let identity = options.identity { config.identity = identity }
            if let queueDepth {
                // What is in flight either way: two-sided READ/WRITE requests, or one-sided work
                // requests (up to 1 MiB each) through layouts.
                config.queueDepth = queueDepth
                config.layouts.queueDepth = queueDepth
            }
            dataPath?.apply(to: &config)
            do throws(ClientError) {
                return try await once(url, secret, config, body)
            } catch {
                guard case .layoutLost = error, retryTwoSided, config.useLayouts else { throw error }
                Console.error("daxshare: \(verb) \(urlText): \(error); retrying two-sided")
                config.useLayouts = false
                return try await once(url, secret, config, body)
            }
        } catch {
            throw fail(verb, urlText, error)
        }
    }

    private static func once<T>(
        _ url: DaxshareURL, _ secret: SessionSecret, _ config: ClientConfiguration,
        _ body: (ClientSession, DaxshareURL) async throws(ClientError) -> T
    ) async throws(ClientError) -> T {
        let session = try await ClientSession.connect(to: url, secret: secret, config: config)
        do throws(ClientError) {
            // Not on the connection's loop: get and put run their RDMA there themselves
            // (`ClientConfiguration.eventLoop`), and their local file I/O must not hold it up.
            let result = try await body(session, url)
            await session.close()
            return result
        } catch {
            await session.close()
            throw error
        }
    }

    /// Prints the one-line error and returns the exit code to throw.
    static func fail(_ verb: String, _ subject: String, _ error: ClientError) -> ExitCode {
        Console.error("daxshare: \(verb) \(subject): \(error)")
        return ExitCode(CommandExitCode(for: error).rawValue)
    }

    /// Prints `line` to stdout (the command's output).
    static func output(_ line: String) {
        print(line)
    }
}
