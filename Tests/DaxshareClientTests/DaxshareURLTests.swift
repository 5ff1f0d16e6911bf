@testable import DaxshareClient
import Testing

@Suite("daxshare:// URLs")
struct DaxshareURLTests {
    @Test func hostExportAndPath() throws {
        let u = try DaxshareURL("daxshare://server1/pmem/data/big.bin")
        #expect(u.host == "server1")
        #expect(u.port == 5445)
        #expect(u.identity == nil)
        #expect(u.export == "pmem")
        #expect(u.path == "data/big.bin")
        #expect(u.lastComponent == "big.bin")
    }

    @Test func portIPv4AndEmptyPath() throws {
        let u = try DaxshareURL("daxshare://10.0.0.1:7000/pmem")
        #expect(u.host == "10.0.0.1")
        #expect(u.port == 7000)
        #expect(u.path == "")
        #expect(u.lastComponent == nil)
        #expect(try DaxshareURL("daxshare://10.0.0.1:7000/pmem/").path == "")
    }

    @Test func ipv6InBrackets() throws {
        let u = try DaxshareURL("daxshare://[fe80::1%rxe0]:5446/e/a")
        #expect(u.host == "fe80::1%rxe0")
        #expect(u.port == 5446)
        let v = try DaxshareURL("daxshare://[::1]/e")
        #expect(v.host == "::1")
        #expect(v.port == 5445)
    }

    @Test func identityPercentDecodingAndTrailingSlash() throws {
        let u = try DaxshareURL("DAXSHARE://al%69ce@h/my%20export/dir%3Fx/na%C3%AFve%23/")
        #expect(u.identity == "alice")
        #expect(u.export == "my export")
        #expect(u.path == "dir?x/naïve#")
    }

    @Test func printsACanonicalFormThatParsesBack() throws {
        let u = DaxshareURL(host: "fe80::1", port: 9, identity: "bob", export: "a b", path: "x/y?z/é")
        #expect(u.description == "daxshare://bob@[fe80::1]:9/a%20b/x/y%3Fz/%C3%A9")
        #expect(try DaxshareURL(u.description) == u)
        #expect(DaxshareURL(host: "h", export: "e").description == "daxshare://h/e")
    }

    @Test(arguments: [
        ("http://h/e/x", "scheme"),
        ("h/e/x", "expected daxshare://"),
        ("daxshare://h", "missing export"),
        ("daxshare://h/", "missing export"),
        ("daxshare:///e/x", "missing host"),
        ("daxshare://h:0/e", "bad port"),
        ("daxshare://h:65536/e", "bad port"),
        ("daxshare://h:x/e", "bad port"),
        ("daxshare://h:/e", "bad port"),
        ("daxshare://fe80::1/e", "brackets"),
        ("daxshare://[fe80::1/e", "missing ']'"),
        ("daxshare://[zz]/e", "not an IPv6"),
        ("daxshare://h/e/a//b", "empty path component"),
        ("daxshare://h/e/../etc", "'..'"),
        ("daxshare://h/e/./x", "'.'"),
        ("daxshare://h/e/a%2Fb", "encoded '/'"),
        ("daxshare://h/e/a%00", "NUL"),
        ("daxshare://h/e/a%zz", "percent-encoding"),
        ("daxshare://h/e/a%4", "percent-encoding"),
        ("daxshare://h/e/%FF", "UTF-8"),
        ("daxshare://h/e/x?y", "'?'"),
        ("daxshare://h/e/x#y", "'#'"),
        ("daxshare://h$x/e", "host name"),
        ("daxshare://@h/e", "empty identity"),
    ])
    func rejects(_ text: String, _ reason: String) {
        do {
            let u = try DaxshareURL(text)
            Issue.record("parsed \(text) as \(u)")
        } catch {
            guard case let .badURL(message) = error else {
                Issue.record("\(error) is not badURL")
                return
            }
            #expect(message.contains(reason), "\(message)")
        }
    }

    @Test func rejectsOverlongComponents() {
        #expect(throws: ClientError.self) { try DaxshareURL("daxshare://h/e/" + String(repeating: "a", count: 256)) }
        #expect(throws: ClientError.self) { try DaxshareURL("daxshare://h/" + String(repeating: "e", count: 256)) }
        #expect((try? DaxshareURL("daxshare://h/e/" + String(repeating: "a", count: 255))) != nil)
    }

    @Test func sameExport() throws {
        let a = try DaxshareURL("daxshare://h/e/x")
        #expect(a.isSameExport(as: try DaxshareURL("daxshare://h:5445/e/y/z")))
        #expect(!a.isSameExport(as: try DaxshareURL("daxshare://h:5446/e/x")))
        #expect(!a.isSameExport(as: try DaxshareURL("daxshare://h/f/x")))
    }
}
