import DaxshareClient
import DaxshareWire
import Testing

@Suite("Exit codes")
struct ExitStatusTests {
    @Test(arguments: [
        (ClientError.status(.notFound, .stat), CommandExitCode.notFound),
        (.status(.accessDenied, .open), .denied),
        (.status(.readOnly, .write), .denied),
        (.status(.authFailed, .sessionSetup), .denied),
        (.status(.notAuthenticated, .stat), .denied),
        (.authentication("server proof"), .denied),
        (.status(.exists, .rename), .server),
        (.status(.isDirectory, .open), .server),
        (.status(.noSpace, .write), .server),
        (.status(Status(rawValue: 0x99), .stat), .server),
        (.transport("refused"), .connection),
        (.protocol("malformed"), .connection),
        (.badURL("x"), .usage),
        (.invalidArgument("x"), .usage),
        (.localIO(path: "f", reason: "EACCES"), .localIO),
    ])
    func mapsErrorsToCodes(_ error: ClientError, _ expected: CommandExitCode) {
        #expect(CommandExitCode(for: error) == expected)
    }

    @Test func codesAreDistinctAndDocumented() {
        #expect(CommandExitCode.allCases.map(\.rawValue) == [0, 1, 2, 3, 4, 5, 6])
        let built = CommandExitCode.allCases.map { "  \($0.rawValue)  \($0.description)" }.joined(separator: "\n")
        #expect(CommandExitCode.helpTable == built)
    }

    @Test func errorDescriptionsAreOneHumanLine() {
        let errors: [ClientError] = [
            .status(.notFound, .stat), .status(.tryLater, .layoutGet, retryAfterMs: 250), .transport("x"),
            .protocol("y"), .authentication("z"), .badURL("u"), .invalidArgument("v"), .localIO(path: "p", reason: "r"),
            .status(Status(rawValue: 0x77), .stat),
        ]
        for e in errors {
            #expect(!e.description.isEmpty)
            #expect(!e.description.contains("\n"))
        }
        #expect(ClientError.status(.notFound, .stat).description == "not found")
        #expect(ClientError.status(.tryLater, .layoutGet, retryAfterMs: 250).description.contains("250 ms"))
        #expect(ClientError.status(Status(rawValue: 0x77), .stat).description == "server error STATUS_0x77")
        #expect(ClientError.localIO(path: "a.bin", reason: "Permission denied").description == "a.bin: Permission denied")
        for s in Status.all where s != .ok { #expect(!s.summary.hasPrefix("server error"), "\(s)") }
    }
}
