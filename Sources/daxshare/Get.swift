import ArgumentParser
import DaxshareClient
#if canImport(Glibc)
import Glibc
#endif

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Copy a file from the server.",
        discussion: """
            LOCAL is a file to create or replace, an existing directory to copy into, or - for \
            stdout; by default the remote file's name in the current directory. A missing remote \
            file leaves nothing behind, and a failed copy removes its partial local file.

            --digest prints "SHA256HEX  LOCAL" (sha256sum's format) on stdout when the copy is \
            complete, or on stderr when the data itself went to stdout.

            The data moves one-sided (RDMA READ through layouts) when the server grants \
            layouts, else two-sided; --two-sided forces the latter, -v tells which was used.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var transfer: TransferOptions
    @OptionGroup var dataPath: DataPathOptions
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT/PATH") var url: String
    @Argument(help: ArgumentHelp("Where to write: a file, a directory, or - for stdout.", valueName: "LOCAL|-"))
    var local: String?

    mutating func run() async throws {
        let (local, transfer, dataPath, urlText) = (local, transfer, dataPath, url)
        try await CLI.run("get", url, connection, queueDepth: transfer.queueDepth, dataPath: dataPath,
                          retryTwoSided: local != "-") { session, url throws(ClientError) in
            guard let name = url.lastComponent else {
                throw .invalidArgument("the URL names the export root; name a file to get")
            }
            var destination = local ?? name
            if destination != "-" && Console.isDirectory(destination) {
                destination = (destination.hasSuffix("/") ? destination : destination + "/") + name
            }
            let toStdout = destination == "-"
            let bar = ProgressBar(label: name, enabled: !transfer.noProgress && !(toStdout && isatty(1) != 0))
            let result: TransferResult
            do throws(ClientError) {
                result = toStdout
                    ? try await session.get(url.path, to: .standardOutput, digest: transfer.digest, progress: bar?.callback)
                    : try await session.get(url.path, toPath: destination, digest: transfer.digest, progress: bar?.callback)
            } catch {
                bar?.abandon()
                throw error
            }
            bar?.finish(result.bytes, result.bytes)
            dataPath.report("get", urlText, result)
            if transfer.digest {
                let line = "\(result.sha256Hex)  \(destination)"
                if toStdout { Console.error(line) } else { CLI.output(line) }
            }
        }
    }
}
