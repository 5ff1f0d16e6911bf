import ArgumentParser
import DaxshareClient
import DaxshareWire

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Copy a local file to the server.",
        discussion: """
            LOCAL is a file, or - for stdin. The remote file is created or replaced; when the URL \
            names a directory (or the export root), the file keeps LOCAL's name inside it. When \
            put succeeds the file is durable on the server (one FLUSH at the end, or every write \
            with --write-through).

            --digest prints "SHA256HEX  LOCAL" (sha256sum's format) on stdout.

            The data moves one-sided (RDMA WRITE through a layout, then LAYOUTCOMMIT as the \
            durability point) when the server grants layouts, else two-sided; --two-sided \
            forces the latter, -v tells which was used. If a layout is revoked before its \
            bytes are committed, a regular file is sent again two-sided; from stdin the put \
            fails instead.
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var transfer: TransferOptions
    @OptionGroup var dataPath: DataPathOptions
    @Flag(name: .customLong("write-through"), help: "Make every write durable before its reply.")
    var writeThrough = false
    @Flag(name: [.customShort("n"), .customLong("no-clobber")], help: "Fail if the remote file exists.")
    var noClobber = false
    @Argument(help: ArgumentHelp("The file to send, or - for stdin.", valueName: "LOCAL|-")) var local: String
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT[/PATH]") var url: String

    mutating func run() async throws {
        let (localPath, transfer, urlText, dataPath) = (local, transfer, url, dataPath)
        var options = PutOptions(writeThrough: writeThrough, exclusive: noClobber)
        options.digest = transfer.digest  // hashing every byte costs more CPU than moving it
        let source: LocalFile
        do throws(ClientError) {
            if localPath == "-" {
                source = .standardInput
            } else {
                if Console.isDirectory(localPath) { throw .localIO(path: localPath, reason: "is a directory") }
                source = try LocalFile.openForReading(localPath)
            }
        } catch {
            throw CLI.fail("put", urlText, error)
        }
        defer { source.close() }
        try await CLI.run("put", urlText, connection, queueDepth: transfer.queueDepth, dataPath: dataPath,
                          retryTwoSided: source.size != nil) { session, url throws(ClientError) in
            // A second run (two-sided, after a revoked layout) reads the file again from its start.
            _ = source.rewind()
            let name: String? = localPath == "-" ? nil : Console.basename(localPath)
            var path = url.path
            if path.isEmpty {
                guard let name, !name.isEmpty else { throw .invalidArgument("name the remote file (reading stdin)") }
                path = name
            } else if let attributes = try? await session.stat(path), attributes.type == .directory {
                guard let name, !name.isEmpty else { throw .invalidArgument("\(url) is a directory; name the remote file") }
                path += "/" + name
            }
            let bar = ProgressBar(label: name ?? path, enabled: !transfer.noProgress)
            let result: TransferResult
            do throws(ClientError) {
                result = try await session.put(source, to: path, options: options, progress: bar?.callback)
            } catch {
                bar?.abandon()
                throw error
            }
            bar?.finish(result.bytes, result.bytes)
            dataPath.report("put", urlText, result)
            if transfer.digest { CLI.output("\(result.sha256Hex)  \(localPath)") }
        }
    }
}
