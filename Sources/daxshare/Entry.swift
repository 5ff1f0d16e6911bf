import ArgumentParser
import DaxshareClient
#if canImport(Glibc)
import Glibc
#endif

/// Runs the parsed command, mapping argument-parser's usage errors to exit code 1 (its own
/// convention is 64) so that `daxshare --help`'s exit-code table holds for every failure.
enum Entry {
    /// mount.fuse3 runs an fstab line of type fuse.daxshare as `daxshare URL DIR -o OPTIONS`:
    /// that is `daxshare mount`.
    static func mountHelperArguments(_ arguments: [String]) -> [String] {
        guard let first = arguments.first, first.hasPrefix(DaxshareURL.scheme + "://") else { return arguments }
        return ["mount"] + arguments
    }

    static func main() async {
        do {
            var command = try Daxshare.parseAsRoot(mountHelperArguments(Array(CommandLine.arguments.dropFirst())))
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if Daxshare.exitCode(for: error) == .validationFailure {
                Console.error(Daxshare.fullMessage(for: error))
                exit(CommandExitCode.usage.rawValue)
            }
            Daxshare.exit(withError: error)
        }
    }
}
