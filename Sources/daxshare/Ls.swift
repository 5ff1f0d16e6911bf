import ArgumentParser
import DaxshareClient
import DaxshareWire

struct Ls: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List a directory, or show a single file, in long format.",
        discussion: """
            Entries are sorted by name, one per line: type and permissions, link count, size in \
            bytes, modification time (UTC) and name. There is no owner column: the protocol does \
            not carry owners.

            With --json, each entry is one JSON object on its own line (JSON Lines), with the keys \
            name, type (regular, directory, symlink, other), size, allocatedSize, mode (octal \
            string, e.g. "0644"), permissions, nlink, fileIndex, mtime (ISO 8601, UTC), mtimeNs, \
            ctimeNs and dax. An empty directory prints nothing.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "One JSON object per entry, one per line.") var json = false
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT[/PATH]") var url: String

    mutating func run() async throws {
        let json = json
        try await CLI.run("ls", url, connection) { session, url throws(ClientError) in
            var entries: [ListEntry]
            do throws(ClientError) {
                entries = try await session.list(url.path)
            } catch {
                guard case .status(.notDirectory, _, _) = error else { throw error }
                // A file: show it alone, as ls does.
                let attributes = try await session.stat(url.path)
                entries = [ListEntry(attributes: attributes, name: url.lastComponent ?? url.path)]
            }
            entries.sort { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
            if json {
                for e in entries { CLI.output(EntryFormat.json(e.attributes, name: e.name).text) }
            } else {
                for line in EntryFormat.longListing(entries) { CLI.output(line) }
            }
        }
    }
}
