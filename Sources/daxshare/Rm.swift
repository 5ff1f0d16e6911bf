import ArgumentParser
import DaxshareClient

struct Rm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove a file (or, with -d, an empty directory).")

    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.customShort("d"), .customLong("dir")], help: "Remove an empty directory instead of a file.")
    var directory = false
    @Flag(name: [.customShort("f"), .customLong("force")], help: "Succeed if the file does not exist.")
    var force = false
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT/PATH") var url: String

    mutating func run() async throws {
        let (directory, force) = (directory, force)
        try await CLI.run("rm", url, connection) { session, url throws(ClientError) in
            guard !url.path.isEmpty else { throw .invalidArgument("refusing to remove the export root") }
            do throws(ClientError) {
                try await session.remove(url.path, directory: directory)
            } catch {
                if force, case .status(.notFound, _, _) = error { return }
                throw error
            }
        }
    }
}
