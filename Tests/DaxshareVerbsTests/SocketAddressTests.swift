import Testing
@testable import DaxshareVerbs

@Suite struct SocketAddressTests {
    @Test func parsesHostAndPort() throws {
        #expect(try SocketAddress.parse("169.254.77.1:6000", defaultPort: 5445) == ("169.254.77.1", 6000))
        #expect(try SocketAddress.parse("169.254.77.1", defaultPort: 5445) == ("169.254.77.1", 5445))
        #expect(try SocketAddress.parse("[fe80::1]:7", defaultPort: 5445) == ("fe80::1", 7))
        #expect(try SocketAddress.parse("[::1]", defaultPort: 5445) == ("::1", 5445))
    }

    @Test(arguments: ["", ":5445", "host:port", "host:70000", "a:b:c", "[::1", "[::1]x"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: VerbsError.badAddress(text)) { try SocketAddress.parse(text, defaultPort: 1) }
    }

    @Test func resolvesNumericAddresses() throws {
        let v4 = try SocketAddress(host: "127.0.0.1", port: 5445)
        #expect(v4.host == "127.0.0.1" && v4.port == 5445 && v4.description == "127.0.0.1:5445")
        let v6 = try SocketAddress(host: "[::1]", port: 9)
        #expect(v6.host == "::1" && v6.port == 9 && v6.description == "[::1]:9")
    }
}
