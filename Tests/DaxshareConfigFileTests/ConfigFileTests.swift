import DaxshareConfigFile
import DaxshareServer
import Foundation
import Testing

/// The configuration file against real files in a temporary directory: what it serves, and
/// one clear error naming the line for each way it can be wrong (issue 16).
@Suite("Configuration file")
struct ConfigFileTests {
    /// A directory with an export directory and a private secret.
    final class Fixture {
        let dir: String
        init() throws {
            dir = NSTemporaryDirectory() + "daxshare-conf-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/docs", withIntermediateDirectories: true)
            try secret("secret", mode: 0o600)
        }
        func secret(_ name: String, mode: Int) throws {
            let path = dir + "/" + name
            _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x41, count: 32))
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }

        func resolve(_ text: String) throws(ConfigErrors) -> DaemonConfiguration {
            try ConfigFile.parse(text, path: "test.conf").resolve(path: "test.conf")
        }
        /// The problems a text has, as "line: message".
        func problems(_ text: String) -> [ConfigProblem] {
            do {
                _ = try resolve(text)
                return []
            } catch {
                return error.problems
            }
        }
    }

    func good(_ f: Fixture) -> String {
        """
        # a comment
        listen: 127.0.0.1:6000
        secret-file: \(f.dir)/secret
        exports:
          - name: data
            path: \(f.dir)/data
          - name: docs
            path: \(f.dir)/docs
            read-only: true
            identities: [alice, bob]
        secrets:
          alice: \(f.dir)/secret
          bob: \(f.dir)/secret
        limits:
          max-connections: 8
          recall-deadline-ms: 2000
          session-setup-timeout-seconds: 2.5
        lease-kind: lease
        log:
          level: debug
          format: json
        metrics:
          listen: 127.0.0.1:9999
        """
    }

    @Test func aGoodFileSaysWhatToServe() throws {
        let f = try Fixture()
        let c = try f.resolve(good(f))
        #expect(c.server.host == "127.0.0.1" && c.server.port == 6000 && c.server.alsoListen.isEmpty)
        #expect(c.server.exports.map(\.name) == ["data", "docs"])
        #expect(c.server.exports[1].readOnly && c.server.exports[1].identities == ["alice", "bob"])
        #expect(c.server.exports[0].identities == nil && !c.server.exports[0].readOnly)
        #expect(c.server.secret.count == 32 && c.server.secrets["alice"]?.count == 32)
        #expect(c.server.maxConnections == 8 && c.server.recallDeadlineMs == 2000)
        #expect(c.server.sessionSetupTimeout == .milliseconds(2500))
        #expect(c.server.leaseKind == .lease)
        #expect(c.logLevel == "debug" && c.logFormat == .json)
        #expect(c.metrics?.host == "127.0.0.1" && c.metrics?.port == 9999)
    }

    @Test func listenTakesOneAddressOrAList() throws {
        let f = try Fixture()
        let c = try f.resolve(good(f).replacingOccurrences(of: "listen: 127.0.0.1:6000", with: "listen: [127.0.0.1:6000, \"[::1]\"]"))
        #expect(c.server.host == "127.0.0.1" && c.server.port == 6000)
        #expect(c.server.alsoListen.count == 1 && c.server.alsoListen[0].host == "::1" && c.server.alsoListen[0].port == 5445)
        #expect(f.problems(good(f).replacingOccurrences(of: "listen: 127.0.0.1:6000", with: "listen: []")).first?.line == 2)
    }

    /// With only the shared secret any client can claim any identity: an access rule naming
    /// one must come with that identity's own secret.
    @Test func anIdentityInAnAccessRuleNeedsItsOwnSecret() throws {
        let f = try Fixture()
        let noBob = good(f).replacingOccurrences(of: "  bob: \(f.dir)/secret\n", with: "")
        #expect(f.problems(noBob).map(\.line) == [7])
        #expect(f.problems(noBob).first?.message.contains("identity 'bob', which has no secret of its own") == true)
        let admin = good(f) + "\nadmin-identities: [ops]\n"
        #expect(f.problems(admin).map(\.line) == [24])
        #expect(try f.resolve(admin.replacingOccurrences(of: "  bob:", with: "  ops: \(f.dir)/secret\n  bob:")).server.administrators == ["ops"])
    }

    @Test func flagsOverrideTheFile() throws {
        let f = try Fixture()
        var flags = ConfigFile()
        flags.listen = [.init("127.0.0.2:7000")]
        flags.exports = [.init(ServerConfiguration.ExportSpec(name: "only", path: .init(f.dir + "/docs")))]
        flags.maxConnections = 3
        flags.metricsListen = .init("")
        let c = try ConfigFile.parse(good(f)).overlaid(by: flags).resolve(path: "x")
        #expect(c.server.host == "127.0.0.2" && c.server.port == 7000)
        #expect(c.server.exports.map(\.name) == ["only"])
        #expect(c.server.maxConnections == 3 && c.server.recallDeadlineMs == 2000)
        #expect(c.metrics == nil)
    }

    @Test func anUnknownKeyNamesItsLine() throws {
        let f = try Fixture()
        let text = good(f).replacingOccurrences(of: "  max-connections: 8", with: "  max-conections: 8")
        let p = f.problems(text)
        #expect(p.count == 1)
        #expect(p.first?.line == 15)
        #expect(p.first?.message.contains("unknown key 'max-conections'") == true)
    }

    @Test func aMissingExportDirectoryNamesItsExport() throws {
        let f = try Fixture()
        let text = good(f).replacingOccurrences(of: "\(f.dir)/docs", with: "\(f.dir)/nowhere")
        let p = f.problems(text)
        #expect(p.count == 1)
        #expect(p.first?.line == 7)
        #expect(p.first?.message.contains("export 'docs'") == true)
        #expect(p.first?.message.contains("nowhere") == true)
    }

    @Test func aSecretOthersCanReadIsRefusedAtItsLine() throws {
        let f = try Fixture()
        try f.secret("open", mode: 0o644)
        let text = good(f).replacingOccurrences(of: "alice: \(f.dir)/secret", with: "alice: \(f.dir)/open")
        let p = f.problems(text)
        #expect(p.count == 1)
        #expect(p.first?.line == 12)
        #expect(p.first?.message.contains("mode 644") == true)
    }

    @Test func aDuplicateExportNameNamesBothLines() throws {
        let f = try Fixture()
        let text = good(f).replacingOccurrences(of: "name: docs", with: "name: data")
        let p = f.problems(text)
        #expect(p.count == 1)
        #expect(p.first?.line == 7)
        #expect(p.first?.message == "export name 'data' is used twice (first on line 5)")
    }

    @Test func everyProblemIsReportedNotOnlyTheFirst() throws {
        let f = try Fixture()
        let text = """
            listen: 127.0.0.1
            lease-kind: sometimes
            exports:
              - name: a
              - path: /x
            limits:
              max-layouts: -1
            colour: blue
            """
        let p = f.problems(text)
        // Form first: what needs the file system (the missing secret) is checked once the form is right.
        #expect(p.map(\.line) == [2, 4, 5, 7, 8])
    }

    @Test func aYAMLSyntaxErrorNamesItsLine() throws {
        let f = try Fixture()
        let p = f.problems("listen: a\nexports:\n  - name: [unclosed\n")
        #expect(p.count == 1)
        #expect(p.first?.line != nil)
        #expect(p.first?.message.hasPrefix("not valid YAML") == true)
    }

    @Test func errorsPrintAsPathLineMessage() {
        let e = ConfigErrors(path: "/etc/d.conf", problems: [ConfigProblem(line: 9, "b"), ConfigProblem(line: 3, "a")])
        #expect(e.description == "/etc/d.conf:3: a\n/etc/d.conf:9: b")
    }

    /// The example committed under dist/ parses (its directories are the administrator's).
    @Test func theExampleFileParses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("dist/daxshared.conf.example"), encoding: .utf8)
        let c = try ConfigFile.parse(text)
        #expect(c.listen != nil && (c.exports?.count ?? 0) >= 2)
    }
}

extension ConfigFileTests {
    /// `daxshared --check-config` reads a file with `load`: form errors and the file-system
    /// problems of the well-formed rest come in one report.
    @Test func loadReportsFormAndFileSystemProblemsTogether() throws {
        let f = try Fixture()
        try f.secret("open", mode: 0o640)
        let path = f.dir + "/d.conf"
        let text = """
            listen: 127.0.0.1
            secret-file: \(f.dir)/open
            exports:
              - name: a
                path: \(f.dir)/missing
              - name: a
                path: \(f.dir)/data
            bogus: 1
            """
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigFile.load(path: path)
            Issue.record("loaded")
        } catch {
            #expect(error.problems.map(\.line) == [2, 4, 6, 8])
            #expect(error.description.hasPrefix(path + ":2: secret file"))
        }
    }
}
