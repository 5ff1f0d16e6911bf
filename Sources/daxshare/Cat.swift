import ArgumentParser
import DaxshareClient

struct Cat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cat", abstract: "Write a file from the server to stdout.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var dataPath: DataPathOptions
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT/PATH") var url: String

    mutating func run() async throws {
        let (dataPath, urlText) = (dataPath, url)
        try await CLI.run("cat", url, connection, dataPath: dataPath) { session, url throws(ClientError) in
            guard !url.path.isEmpty else { throw .invalidArgument("the URL names the export root; name a file") }
            let result = try await session.get(url.path, to: .standardOutput, digest: false)
            dataPath.report("cat", urlText, result)
        }
    }
}
