import ArgumentParser

@main
struct DaxshareBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daxshare-bench",
        abstract: "Measure daxshare against baselines taken in the same run, on the same device.",
        discussion: """
            Under emulation (soft-RoCE in a VM) absolute figures mean nothing: read the ratio columns.
            `data` (the default) sweeps the data paths; `control` times LAYOUTGET, LAYOUTCOMMIT, recalls
            and fences. `make bench` runs both in the testbed VM and writes Bench/RESULTS.md.

            Exit status:
              0   the sweep finished (a measurement that failed is noted on stderr and left out)
              1   nothing was measured, or the set-up failed (starting the server, writing a file)
              64  usage error: a bad or missing option
            """,
        subcommands: [DataPathCommand.self, ControlPathCommand.self, ReportCommand.self, FioRowCommand.self],
        defaultSubcommand: DataPathCommand.self)
}
