import DaxsharePmem
import DaxshareServer
import DaxshareWire
import Logging
import SystemPackage
import Yams

/// What `daxshared.conf` says (YAML; `dist/daxshared.conf.example` shows every key), each
/// setting nil where the file is silent so that a flag or the default decides
/// (`overlaid(by:)`). Parsing checks the form: keys, types, ranges, duplicates; `resolve`
/// then checks what needs the file system (export directories, secret files). Every problem
/// names its line.
public struct ConfigFile: Sendable, Equatable {
    /// A value and the line it was given on (0: not from a file, e.g. a flag).
    public struct Located<Value: Sendable & Equatable>: Sendable, Equatable {
        public var value: Value
        public var line: Int
        public init(_ value: Value, line: Int = 0) {
            self.value = value
            self.line = line
        }
    }

    /// How log lines are written: `text` as before, `json` one object per line (journald, Loki).
    public enum LogFormat: String, Sendable, Equatable, CaseIterable {
        case text, json
    }

    /// Addresses to listen on, ADDR[:PORT] each (one string or a list in the file).
    public var listen: [Located<String>]?
    /// The secret of every identity not in `secrets`.
    public var secretFile: Located<String>?
    /// Secret files by client identity.
    public var secrets: [String: Located<String>] = [:]
    /// Identities that see every client in `daxshare stat --server --clients`.
    public var administrators: Located<Set<String>>?
    public var exports: [Located<ServerConfiguration.ExportSpec>]?
    public var maxConnections: Int?
    public var maxOpenFiles: Int?
    public var maxLayouts: Int?
    public var recallDeadlineMs: UInt32?
    public var keepaliveSeconds: Int?
    public var sessionSetupTimeoutSeconds: Double?
    public var authFailureBurst: Int?
    public var authFailureRefillSeconds: Double?
    public var leaseKind: FileLease.Mechanism?
    public var layoutPrefetch: Bool?
    public var rdmaFlush: Bool?
    public var logLevel: Located<String>?
    public var logFormat: LogFormat?
    /// ADDR:PORT of the Prometheus endpoint; "" when the file says `off`.
    public var metricsListen: Located<String>?

    public init() {}

    /// The default path `daxshared` reads when given no `--config`.
    public static let defaultPath = "/etc/daxshare/daxshared.conf"

    /// This file with every setting `other` makes replacing its own (flags over the file).
    /// Exports and secrets are replaced whole, never merged.
    public func overlaid(by other: ConfigFile) -> ConfigFile {
        var c = self
        c.listen = other.listen ?? listen
        c.secretFile = other.secretFile ?? secretFile
        if !other.secrets.isEmpty { c.secrets = other.secrets }
        c.administrators = other.administrators ?? administrators
        c.exports = other.exports ?? exports
        c.maxConnections = other.maxConnections ?? maxConnections
        c.maxOpenFiles = other.maxOpenFiles ?? maxOpenFiles
        c.maxLayouts = other.maxLayouts ?? maxLayouts
        c.recallDeadlineMs = other.recallDeadlineMs ?? recallDeadlineMs
        c.keepaliveSeconds = other.keepaliveSeconds ?? keepaliveSeconds
        c.sessionSetupTimeoutSeconds = other.sessionSetupTimeoutSeconds ?? sessionSetupTimeoutSeconds
        c.authFailureBurst = other.authFailureBurst ?? authFailureBurst
        c.authFailureRefillSeconds = other.authFailureRefillSeconds ?? authFailureRefillSeconds
        c.leaseKind = other.leaseKind ?? leaseKind
        c.layoutPrefetch = other.layoutPrefetch ?? layoutPrefetch
        c.rdmaFlush = other.rdmaFlush ?? rdmaFlush
        c.logLevel = other.logLevel ?? logLevel
        c.logFormat = other.logFormat ?? logFormat
        c.metricsListen = other.metricsListen ?? metricsListen
        return c
    }
}

/// One thing wrong with a configuration, and the line it is on (nil: not from a line).
public struct ConfigProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int?
    public var message: String
    public init(line: Int?, _ message: String) {
        self.line = line.flatMap { $0 > 0 ? $0 : nil }
        self.message = message
    }
    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

/// Every problem found in one configuration, in line order.
public struct ConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var problems: [ConfigProblem]
    public init(path: String, problems: [ConfigProblem]) {
        self.path = path
        self.problems = problems.sorted { ($0.line ?? 0) < ($1.line ?? 0) }
    }
    /// `path:line: message`, one per line, as compilers print them.
    public var description: String {
        problems.map { p in p.line.map { "\(path):\($0): \(p.message)" } ?? "\(path): \(p.message)" }.joined(separator: "\n")
    }
}

extension ConfigFile {
    /// Parses the text of a configuration file; throws every problem of form it finds.
    public static func parse(_ text: String, path: String = defaultPath) throws(ConfigErrors) -> ConfigFile {
        let (config, problems) = parseCollecting(text)
        guard problems.isEmpty else { throw ConfigErrors(path: path, problems: problems) }
        return config
    }

    /// What the text says where it is well-formed, and the problems where it is not (a key in
    /// error is left out): `load` goes on to check the rest, so one run reports everything.
    static func parseCollecting(_ text: String) -> (ConfigFile, [ConfigProblem]) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            return (ConfigFile(), [ConfigProblem(yamlError: error)])
        } catch {
            return (ConfigFile(), [ConfigProblem(line: nil, "\(error)")])
        }
        var reader = Reader()
        var config = ConfigFile()
        if let root { reader.readTop(root, into: &config) }
        return (config, reader.problems)
    }
}

extension ConfigProblem {
    init(yamlError error: YamlError) {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            self.init(line: mark.line, "not valid YAML: \(problem)")
        default:
            self.init(line: nil, "not valid YAML: \(error)")
        }
    }
}

/// Walks the YAML tree, collecting every problem rather than stopping at the first.
private struct Reader {
    var problems: [ConfigProblem] = []

    mutating func problem(_ node: Node?, _ message: String) {
        problems.append(ConfigProblem(line: node?.mark?.line, message))
    }

    /// Calls `handle` for each key of a mapping; unknown and repeated keys are problems.
    mutating func mapping(_ node: Node, _ what: String, keys: [String], _ handle: (inout Reader, String, Node) -> Void) {
        guard let mapping = node.mapping else { return problem(node, "\(what) must be a mapping of keys to values") }
        var seen: [String: Int] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                problem(keyNode, "a key in \(what) must be a plain name")
                continue
            }
            if let first = seen[key] {
                problem(keyNode, "'\(key)' is given twice in \(what) (first on line \(first))")
                continue
            }
            seen[key] = keyNode.mark?.line ?? 0
            guard keys.contains(key) else {
                problem(keyNode, "unknown key '\(key)' in \(what); known: \(keys.joined(separator: ", "))")
                continue
            }
            handle(&self, key, value)
        }
    }

    mutating func string(_ node: Node, _ key: String) -> String? {
        guard let s = node.scalar?.string, !s.isEmpty else {
            problem(node, "'\(key)' must be a non-empty string")
            return nil
        }
        return s
    }

    mutating func located(_ node: Node, _ key: String) -> ConfigFile.Located<String>? {
        string(node, key).map { ConfigFile.Located($0, line: node.mark?.line ?? 0) }
    }

    mutating func integer<T: FixedWidthInteger>(_ node: Node, _ key: String, positive: Bool = true) -> T? {
        guard let s = node.scalar?.string, let v = T(s), !positive || v > 0 else {
            problem(node, "'\(key)' must be a \(positive ? "positive " : "")whole number up to \(T.max)")
            return nil
        }
        return v
    }

    mutating func seconds(_ node: Node, _ key: String) -> Double? {
        guard let s = node.scalar?.string, let v = Double(s), v > 0, v.isFinite else {
            problem(node, "'\(key)' must be a positive number of seconds")
            return nil
        }
        return v
    }

    mutating func boolean(_ node: Node, _ key: String) -> Bool? {
        switch node.scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            problem(node, "'\(key)' must be true or false")
            return nil
        }
    }

    mutating func readTop(_ root: Node, into c: inout ConfigFile) {
        let keys = ["listen", "secret-file", "secrets", "admin-identities", "exports", "limits", "lease-kind", "layout-prefetch",
                    "rdma-flush", "log", "metrics"]
        mapping(root, "the file", keys: keys) { r, key, v in
            switch key {
            case "listen":
                if let list = v.sequence {
                    c.listen = list.compactMap { r.located($0, key) }
                    if list.count == 0 { r.problem(v, "'listen' needs at least one address") }
                } else {
                    c.listen = r.located(v, key).map { [$0] }
                }
            case "secret-file": c.secretFile = r.located(v, key)
            case "secrets": r.readSecrets(v, into: &c)
            case "admin-identities":
                guard let list = v.sequence else { return r.problem(v, "'admin-identities' must be a list of identities") }
                c.administrators = ConfigFile.Located(Set(list.compactMap { r.string($0, key) }), line: v.mark?.line ?? 0)
            case "exports": r.readExports(v, into: &c)
            case "limits": r.readLimits(v, into: &c)
            case "lease-kind":
                guard let s = r.string(v, key) else { return }
                guard let kind = FileLease.Mechanism(rawValue: s) else {
                    return r.problem(v, "'lease-kind' must be 'delegation' or 'lease', not '\(s)'")
                }
                c.leaseKind = kind
            case "layout-prefetch": c.layoutPrefetch = r.boolean(v, key)
            case "rdma-flush": c.rdmaFlush = r.boolean(v, key)
            case "log": r.readLog(v, into: &c)
            default: r.readMetrics(v, into: &c)
            }
        }
    }

    mutating func readSecrets(_ node: Node, into c: inout ConfigFile) {
        guard let mapping = node.mapping else { return problem(node, "'secrets' must map identities to secret files") }
        var seen = Set<String>()
        for (keyNode, value) in mapping {
            guard let identity = keyNode.scalar?.string, !identity.isEmpty, identity.utf8.count <= Limits.maxIdentityLength else {
                problem(keyNode, "an identity in 'secrets' must be 1 to \(Limits.maxIdentityLength) bytes")
                continue
            }
            guard seen.insert(identity).inserted else {
                problem(keyNode, "identity '\(identity)' is given twice in 'secrets'")
                continue
            }
            if let path = located(value, "secrets.\(identity)") { c.secrets[identity] = path }
        }
    }

    mutating func readExports(_ node: Node, into c: inout ConfigFile) {
        guard let sequence = node.sequence else {
            return problem(node, "'exports' must be a list of exports (each '- name: ...' with 'path: ...')")
        }
        var exports: [ConfigFile.Located<ServerConfiguration.ExportSpec>] = []
        var lines: [String: Int] = [:]
        for item in sequence {
            var name: (String, Node)?
            var path: String?
            var readOnly = false
            var identities: Set<String>?
            mapping(item, "an export", keys: ["name", "path", "read-only", "identities"]) { r, key, v in
                switch key {
                case "name": name = r.string(v, key).map { ($0, v) }
                case "path": path = r.string(v, key)
                case "read-only": readOnly = r.boolean(v, key) ?? false
                default:
                    guard let list = v.sequence else { return r.problem(v, "'identities' must be a list of identities") }
                    identities = Set(list.compactMap { r.string($0, "identities") })
                }
            }
            guard item.mapping != nil else { continue }
            guard let (exportName, nameNode) = name else {
                problem(item, "an export needs a 'name'")
                continue
            }
            guard let path else {
                problem(item, "export '\(exportName)' needs a 'path'")
                continue
            }
            guard exportName.utf8.count <= Limits.maxExportNameLength, !exportName.contains("/") else {
                problem(nameNode, "export name '\(exportName)' must be at most \(Limits.maxExportNameLength) bytes, without '/'")
                continue
            }
            let line = item.mark?.line ?? 0
            if let first = lines[exportName] {
                problem(nameNode, "export name '\(exportName)' is used twice (first on line \(first))")
                continue
            }
            lines[exportName] = line
            let spec = ServerConfiguration.ExportSpec(
                name: exportName, path: FilePath(path), readOnly: readOnly, identities: identities)
            exports.append(ConfigFile.Located(spec, line: line))
        }
        c.exports = exports
    }

    mutating func readLimits(_ node: Node, into c: inout ConfigFile) {
        let keys = ["max-connections", "max-open-files", "max-layouts", "recall-deadline-ms", "keepalive-seconds",
                    "session-setup-timeout-seconds", "auth-failure-burst", "auth-failure-refill-seconds"]
        mapping(node, "'limits'", keys: keys) { r, key, v in
            switch key {
            case "max-connections": c.maxConnections = r.integer(v, key)
            case "max-open-files": c.maxOpenFiles = r.integer(v, key)
            case "max-layouts": c.maxLayouts = r.integer(v, key)
            case "recall-deadline-ms": c.recallDeadlineMs = r.integer(v, key)
            case "keepalive-seconds": c.keepaliveSeconds = r.integer(v, key)
            case "session-setup-timeout-seconds": c.sessionSetupTimeoutSeconds = r.seconds(v, key)
            case "auth-failure-burst": c.authFailureBurst = r.integer(v, key)
            default: c.authFailureRefillSeconds = r.seconds(v, key)
            }
        }
    }

    mutating func readLog(_ node: Node, into c: inout ConfigFile) {
        mapping(node, "'log'", keys: ["level", "format"]) { r, key, v in
            guard let s = r.string(v, key) else { return }
            if key == "level" {
                guard ConfigFile.logLevels.contains(s) else {
                    return r.problem(v, "'level' must be one of \(ConfigFile.logLevels.joined(separator: ", ")), not '\(s)'")
                }
                c.logLevel = ConfigFile.Located(s, line: v.mark?.line ?? 0)
            } else {
                guard let format = ConfigFile.LogFormat(rawValue: s) else {
                    return r.problem(v, "'format' must be 'text' or 'json', not '\(s)'")
                }
                c.logFormat = format
            }
        }
    }

    mutating func readMetrics(_ node: Node, into c: inout ConfigFile) {
        mapping(node, "'metrics'", keys: ["listen"]) { r, _, v in
            guard let s = r.string(v, "listen") else { return }
            c.metricsListen = ConfigFile.Located(s == "off" ? "" : s, line: v.mark?.line ?? 0)
        }
    }
}

extension ConfigFile {
    /// swift-log's levels, by the names `--log-level` takes.
    public static let logLevels = Logger.Level.allCases.map(\.rawValue)
}
