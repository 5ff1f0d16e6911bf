import ArgumentParser
import DaxshareClient

struct Cat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a file from the server to stdout.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT/PATH") var url: String

    mutating func run() async throws {
        try await CLI.run("cat", url, connection) { session, url throws(ClientError) in
            guard !url.path.isEmpty else { throw .invalidArgument("the URL names the export root; name a file") }
            _ = try await session.get(url.path, to: .standardOutput)
        }
    }
}
