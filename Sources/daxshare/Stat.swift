import ArgumentParser
import DaxshareClient

struct Stat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat",
        abstract: "Show a file's attributes, or with --server the server's counters.",
        discussion: """
            A symbolic link is described, not followed. With --json the output is one JSON \
            object with the keys of `ls --json`, "path" in place of "name".

            --server prints the server's counters instead (bytes moved two-sided, layouts, open \
            files, connections...), one "name value" per line, or one JSON object of them.

            --server --clients lists the connected clients instead: session, address, identity, \
            session age, open files, bytes moved two-sided, granted and committed one-sided, and \
            the layouts each holds (file, range, mode). The server lists every client to the \
            identities it names administrators (admin-identities), and to others only their own \
            session.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Print JSON instead of text.") var json = false
    @Flag(help: "Show the server's counters instead of the file's attributes.") var server = false
    @Flag(help: "With --server: list the connected clients and what they hold.") var clients = false
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT[/PATH]") var url: String

    func validate() throws {
        if clients && !server { throw ValidationError("--clients goes with --server") }
    }

    mutating func run() async throws {
        let (json, server, clients) = (json, server, clients)
        try await CLI.run("stat", url, connection) { session, url throws(ClientError) in
            if server && clients {
                let r = try await session.serverClients()
                if json {
                    CLI.output(EntryFormat.clientsJSON(r).text)
                } else {
                    for line in EntryFormat.clients(r) { CLI.output(line) }
                }
                return
            }
            if server {
                let counters = try await session.serverStats()
                if json {
                    CLI.output(JSONValue.object(counters.map { ($0.name, .uint($0.value)) }).text)
                } else {
                    for line in EntryFormat.counters(counters) { CLI.output(line) }
                }
                return
            }
            let attributes = try await session.stat(url.path)
            if json {
                CLI.output(EntryFormat.json(attributes, nameKey: "path", name: url.path).text)
            } else {
                CLI.output(EntryFormat.statText(attributes, path: url.path))
            }
        }
    }
}
