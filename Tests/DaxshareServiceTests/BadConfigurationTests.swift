import Foundation
import Testing

/// The real `daxshared` binary given a bad configuration file (issue 16): each kind of mistake
/// gets one error naming its line, and the server does not start (exit 1, before any RDMA).
@Suite struct BadConfigurationTests {
    static let daxshared = InstallTests.repository.appendingPathComponent(".build/debug/daxshared").path

    /// A scratch directory with an export directory and a private secret.
    let dir: String
    init() throws {
        dir = NSTemporaryDirectory() + "daxshared-badconf-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        try write("secret", String(repeating: "k", count: 32), mode: 0o600)
    }

    func write(_ name: String, _ text: String, mode: Int = 0o644) throws {
        try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: dir + "/" + name)
    }

    var good: String {
        """
        listen: 127.0.0.1:6001
        secret-file: \(dir)/secret
        exports:
          - name: data
            path: \(dir)/data
        """
    }

    /// Starts daxshared on `text` (not --check-config: the real start) and returns its status and stderr.
    func start(_ text: String) throws -> (status: Int32, output: String) {
        try write("d.conf", text)
        return try InstallTests.run([Self.daxshared, "--config", dir + "/d.conf"])
    }

    @Test(arguments: [
        ("unknown key", "  max-conections: 8", 7, "unknown key 'max-conections' in 'limits'"),
        ("missing export directory", "  - name: docs\n    path: /nonexistent/docs", 6, "export 'docs': directory /nonexistent/docs"),
        ("secret readable by others", "secrets:\n  alice: {DIR}/open", 7, "mode 644; group and others must have no access"),
        ("duplicate export names", "  - name: data\n    path: {DIR}/data", 6, "export name 'data' is used twice (first on line 4)"),
    ])
    func aBadFileNamesTheLineAndTheServerDoesNotStart(kind: String, addition: String, line: Int, message: String) throws {
        try write("open", String(repeating: "k", count: 32), mode: 0o644)
        var text = good + "\n" + addition.replacingOccurrences(of: "{DIR}", with: dir)
        if kind == "unknown key" { text = good + "\nlimits:\n" + addition }
        let r = try start(text)
        #expect(r.status == 1, "\(kind): exit \(r.status)\n\(r.output)")
        let reported = r.output.split(separator: "\n").first { $0.hasPrefix("\(dir)/d.conf:\(line): ") }
        #expect(reported?.contains(message) == true, "\(kind):\n\(r.output)")
        #expect(r.output.contains("the configuration has 1 error(s)"), "\(kind):\n\(r.output)")
        #expect(!r.output.contains("listening"))
    }

    @Test func checkConfigPrintsWhatWouldBeServed() throws {
        try write("d.conf", good)
        let r = try InstallTests.run([Self.daxshared, "--config", dir + "/d.conf", "--check-config"])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("listen 127.0.0.1:6001") && r.output.contains("export data = \(dir)/data"), "\(r.output)")
    }
}
