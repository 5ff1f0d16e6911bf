import ArgumentParser
import DaxshareClient

struct Truncate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "truncate",
        abstract: "Shrink or extend a file to a size.",
        discussion: """
            SIZE is in bytes, optionally followed by K, M, G or T (powers of 1024): 4096, 64K, \
            1G. Extending fills with zeros. The new size is durable when the command returns.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.customShort("c"), .customLong("create")], help: "Create the file if it does not exist.")
    var create = false
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT/PATH") var url: String
    @Argument(help: "The new size: bytes, or with a K, M, G or T suffix.") var size: String

    func validate() throws {
        do throws(ClientError) { _ = try ByteCount.parse(size) } catch { throw ValidationError(error.description) }
    }

    mutating func run() async throws {
        let create = create
        let bytes = try ByteCount.parse(size)
        try await CLI.run("truncate", url, connection) { session, url throws(ClientError) in
            guard !url.path.isEmpty else { throw .invalidArgument("the URL names the export root; name a file") }
            _ = try await session.truncate(url.path, to: bytes, create: create)
        }
    }
}
