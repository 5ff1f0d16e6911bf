import DaxshareWire
import Testing

@Suite("Path rules")
struct PathRulesTests {
    @Test(arguments: ["a", "a/b", "dir/file.txt", "...", "a..b", ".hidden", "é/ü", String(repeating: "x", count: 255)])
    func acceptable(_ p: String) {
        #expect(PathRules.check(p) == .ok)
    }

    @Test(arguments: ["/etc/passwd", "..", "a/../b", "a/..", ".", "./a", "a//b", "a/", "a\u{0}b", "/"])
    func escapesAreDenied(_ p: String) {
        #expect(PathRules.check(p) == .accessDenied)
    }

    @Test func lengthsAndRoot() {
        #expect(PathRules.check(String(repeating: "x", count: 256)) == .nameTooLong)
        #expect(PathRules.check(Array(repeating: "abc", count: 1100).joined(separator: "/")) == .nameTooLong)
        #expect(PathRules.check("") == .invalidArgument)
        #expect(PathRules.check("", allowRoot: true) == .ok)
        #expect(PathRules.components("a/b/c") == ["a", "b", "c"])
    }
}
