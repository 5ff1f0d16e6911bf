import ArgumentParser
import DaxshareClient
import DaxshareWire

struct Mv: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mv",
        abstract: "Rename or move a file or directory within one export.",
        discussion: """
            NEWPATH is relative to the export root (a leading / is ignored), or a daxshare:// URL \
            on the same server and export. If it names an existing directory, the file is moved \
            into it under its own name. An existing file there is replaced, unless --no-clobber.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Flag(name: [.customShort("n"), .customLong("no-clobber")], help: "Fail if the target exists.")
    var noClobber = false
    @Argument(help: "daxshare://HOST[:PORT]/EXPORT/PATH") var url: String
    @Argument(help: ArgumentHelp("The new path in the same export.", valueName: "NEWPATH")) var newPath: String

    mutating func run() async throws {
        let (newPath, noClobber) = (newPath, noClobber)
        try await CLI.run("mv", url, connection) { session, url throws(ClientError) in
            guard let name = url.lastComponent else { throw .invalidArgument("cannot move the export root") }
            var target: String
            if newPath.lowercased().hasPrefix(DaxshareURL.scheme + "://") {
                let other = try DaxshareURL(newPath)
                guard other.isSameExport(as: url) else {
                    throw .invalidArgument("mv works within one export; \(newPath) is on another")
                }
                target = other.path
            } else {
                target = String(newPath.drop { $0 == "/" })
                while target.hasSuffix("/") { target.removeLast() }
            }
            if target.isEmpty {
                target = name
            } else if let attributes = try? await session.stat(target), attributes.type == .directory {
                target += "/" + name
            }
            try await session.rename(from: url.path, to: target, replace: !noClobber)
        }
    }
}
