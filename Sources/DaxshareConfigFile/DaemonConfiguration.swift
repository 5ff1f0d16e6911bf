import DaxshareServer
import DaxshareVerbs
import DaxshareWire
import Glibc
import SystemPackage

/// Everything `daxshared` runs with: the server's configuration and the daemon's own settings.
public struct DaemonConfiguration: Sendable {
    public var server: ServerConfiguration
    public var logLevel: String
    public var logFormat: ConfigFile.LogFormat
    /// Where the Prometheus endpoint listens; nil: nowhere.
    public var metrics: (host: String, port: UInt16)?
    /// Whether the file or a flag named the metrics address (else it is the default, and a
    /// second daxshared on the host finding it taken serves without metrics, with a warning).
    public var metricsExplicit = false

    /// The metrics endpoint's default: loopback only, the port after the protocol's.
    public static let defaultMetricsListen = "127.0.0.1:9445"
}

extension ConfigFile {
    /// Checks what needs the file system (every export directory exists and is a directory,
    /// every secret file is private and long enough) and builds the configuration; throws every
    /// problem, each with its line.
    public func resolve(path: String) throws(ConfigErrors) -> DaemonConfiguration {
        var problems: [ConfigProblem] = []
        var addresses: [(host: String, port: UInt16)] = []
        for entry in listen ?? [] {
            do { addresses.append(try SocketAddress.parse(entry.value, defaultPort: Limits.defaultPort)) } catch {
                problems.append(ConfigProblem(line: entry.line, "listen address '\(entry.value)': \(error)"))
            }
        }
        if (listen ?? []).isEmpty {
            problems.append(ConfigProblem(line: nil, "no listen address: give 'listen:' or --listen"))
        }
        var metrics: (host: String, port: UInt16)?
        let metricsText = metricsListen ?? Located(DaemonConfiguration.defaultMetricsListen)
        if !metricsText.value.isEmpty {
            do { metrics = try SocketAddress.parse(metricsText.value, defaultPort: 9445) } catch {
                problems.append(ConfigProblem(line: metricsText.line, "metrics address '\(metricsText.value)': \(error)"))
            }
        }

        var exportSpecs: [ServerConfiguration.ExportSpec] = []
        if let exports, !exports.isEmpty {
            for export in exports {
                if let problem = Self.checkDirectory(export.value.path) {
                    problems.append(ConfigProblem(line: export.line, "export '\(export.value.name)': \(problem)"))
                }
                exportSpecs.append(export.value)
            }
        } else {
            problems.append(ConfigProblem(line: nil, "no exports: give 'exports:' or --export NAME=DIR"))
        }

        var secret: [UInt8] = []
        var secretsRead: [String: [UInt8]] = [:]
        if let secretFile {
            do { secret = try SecretFile.read(secretFile.value) } catch {
                problems.append(ConfigProblem(line: secretFile.line, error.message))
            }
        }
        for (identity, file) in secrets {
            do { secretsRead[identity] = try SecretFile.read(file.value) } catch {
                problems.append(ConfigProblem(line: file.line, "secret of '\(identity)': \(error.message)"))
            }
        }
        if secretFile == nil && secrets.isEmpty {
            problems.append(ConfigProblem(line: nil, "no secret: give 'secret-file:', 'secrets:' or --secret-file"))
        }
        // An identity is proven only by a secret of its own: with the shared one, any client may
        // claim any identity, and an access rule naming it would protect nothing.
        let unproven = " has no secret of its own under 'secrets:' (with only the shared secret, any client can claim it)"
        for export in exports ?? [] {
            for identity in (export.value.identities ?? []).sorted() where secrets[identity] == nil {
                problems.append(ConfigProblem(line: export.line, "export '\(export.value.name)' names identity '\(identity)', which" + unproven))
            }
        }
        for identity in (administrators?.value ?? []).sorted() where secrets[identity] == nil {
            problems.append(ConfigProblem(line: administrators?.line, "administrator '\(identity)'" + unproven))
        }
        guard problems.isEmpty, let address = addresses.first else { throw ConfigErrors(path: path, problems: problems) }

        var server = ServerConfiguration(host: address.host, port: address.port, exports: exportSpecs, secret: secret)
        server.alsoListen = Array(addresses.dropFirst())
        server.secrets = secretsRead
        server.administrators = administrators?.value ?? []
        if let v = maxConnections { server.maxConnections = v }
        if let v = maxOpenFiles { server.maxOpenFiles = v }
        if let v = maxLayouts { server.maxLayouts = v }
        if let v = recallDeadlineMs { server.recallDeadlineMs = v }
        if let v = keepaliveSeconds { server.transport.keepaliveInterval = .seconds(v) }
        if let v = sessionSetupTimeoutSeconds { server.sessionSetupTimeout = .seconds(v) }
        if let v = authFailureBurst { server.authFailureBurst = v }
        if let v = authFailureRefillSeconds { server.authFailureRefill = .seconds(v) }
        if let v = leaseKind { server.leaseKind = v }
        if let v = layoutPrefetch { server.layoutPrefetch = v }
        if let v = rdmaFlush { server.rdmaFlush = v }
        return DaemonConfiguration(
            server: server, logLevel: logLevel?.value ?? "info", logFormat: logFormat ?? .text, metrics: metrics,
            metricsExplicit: metricsListen != nil)
    }

    /// Reads and resolves the file at `path`.
    public static func load(path: String, overlaidBy flags: ConfigFile = ConfigFile()) throws(ConfigErrors) -> DaemonConfiguration {
        let text: String
        do { text = try SecretFile.readText(path) } catch {
            throw ConfigErrors(path: path, problems: [ConfigProblem(line: nil, error.message)])
        }
        let (file, problems) = parseCollecting(text)
        guard !problems.isEmpty else { return try file.overlaid(by: flags).resolve(path: path) }
        // With the form errors, what the well-formed rest gets wrong on its lines (a missing
        // directory, a readable secret), in one report; "no exports" and the like wait until
        // the form is right, as a key in error may be what gives them.
        do throws(ConfigErrors) {
            _ = try file.overlaid(by: flags).resolve(path: path)
            throw ConfigErrors(path: path, problems: problems)
        } catch {
            throw ConfigErrors(path: path, problems: problems + error.problems.filter { $0.line != nil && !problems.contains($0) })
        }
    }

    /// Why `path` cannot be exported, or nil.
    static func checkDirectory(_ path: FilePath) -> String? {
        var st = stat()
        guard stat(path.string, &st) == 0 else { return "directory \(path): \(Errno(rawValue: errno))" }
        guard st.st_mode & S_IFMT == S_IFDIR else { return "\(path) is not a directory" }
        return nil
    }
}

/// A pre-shared secret read from its file, which no one but its owner may read: a secret
/// others can read is no secret (the same rule as ssh's private keys).
public enum SecretFile {
    public struct Failure: Error, Sendable { public var message: String }

    public static func read(_ path: String) throws(Failure) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw Failure(message: "cannot read secret file \(path): \(Errno(rawValue: errno))") }
        guard st.st_mode & 0o077 == 0 else {
            throw Failure(message:
                "secret file \(path) has mode \(String(st.st_mode & 0o777, radix: 8)); group and others must have no access (chmod 600)")
        }
        let bytes = SecretKey.key(fromFileContents: try readBytes(path))
        guard bytes.count >= SecretKey.minimumLength else {
            throw Failure(message: "the key in secret file \(path) is \(bytes.count) bytes; use at least \(SecretKey.minimumLength)")
        }
        return bytes
    }

    static func readText(_ path: String) throws(Failure) -> String {
        String(decoding: try readBytes(path), as: UTF8.self)
    }

    /// The whole file, through `open(2)` and `read(2)`.
    static func readBytes(_ path: String) throws(Failure) -> [UInt8] {
        do {
            let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec)
            defer { try? fd.close() }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
                if n == 0 { return bytes }
                bytes += chunk[..<n]
                guard bytes.count <= 1 << 20 else { throw Failure(message: "\(path) is over 1 MiB") }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(message: "cannot read \(path): \(error)")
        }
    }
}
