import ArgumentParser
import DaxshareBench
import Foundation

/// `daxshare-bench report`: Bench/RESULTS.md from the JSON a run wrote.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write RESULTS.md from the JSON files of a run (data, control, peers).")

    @Option(help: "Rows of `daxshare-bench data --json-file`.")
    var data: String?
    @Option(help: "Rows of `scripts/bench-cli` (daxshare get/put at each queue depth).")
    var cli: String?
    @Option(help: "Rows of `daxshare-bench data --poll --json-file`.")
    var pollData: String?
    @Option(help: "Rows of `daxshare-bench data --durable --json-file` (every write committed).")
    var durableData: String?
    @Option(help: "Rows of `daxshare-bench control --json-file`.")
    var control: String?
    @Option(help: "Rows of the peer run (daxshare-bench data rows plus `fio-row` rows).")
    var peers: [String] = []
    @Option(help: "Text describing the machine and kernel.")
    var environment: String?
    @Option(help: "Markdown appended verbatim (the analysis).")
    var notes: String?
    @Option(help: "Path of the plot, relative to the output.")
    var plot: String?
    @Option(help: "Where to write the document.")
    var out: String

    func run() throws {
        func text(_ path: String?) throws -> String {
            guard let path, FileManager.default.fileExists(atPath: path) else { return "" }
            return try String(contentsOfFile: path, encoding: .utf8)
        }
        func rows(_ path: String?) throws -> [BenchRow] {
            guard let path, FileManager.default.fileExists(atPath: path) else { return [] }
            return try JSONRows.parse(try text(path))
        }
        let controlRows: [ControlRow] = try control.flatMap { path in
            FileManager.default.fileExists(atPath: path)
                ? try JSONDecoder().decode([ControlRow].self, from: Data(try text(path).utf8)) : nil
        } ?? []
        let doc = ResultsReport.markdown(data: try rows(data), polled: try rows(pollData), cli: try rows(cli),
                                         durable: try rows(durableData), control: controlRows, peers: try peers.flatMap { try rows($0) },
                                         environment: try text(environment), notes: try text(notes), plot: plot)
        try doc.write(toFile: out, atomically: true, encoding: .utf8)
    }
}

/// `daxshare-bench fio-row`: fio JSON reports as rows, one per point (`make bench-peers`).
struct FioRowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fio-row",
        abstract: "Turn fio --output-format=json reports into rows (JSON) for `report --peers`.")

    @Option(help: "The mode name the rows get.")
    var mode = "nfs-rdma"
    @Option(help: "The mode they are compared with.")
    var baseline = "perftest"
    @Option(help: "Where to write the rows.")
    var out: String
    @Argument(help: "OP[:PATTERN]:SIZE:QD=FILE[,FILE...] for each point's fio reports (PATTERN seq, the default, or rand; several files are repeats, and the row holds the median of each figure), e.g. read:1M:8=fio-read-1M-8.json, read:rand:4K:1=a.json,b.json,c.json.")
    var reports: [String]

    func run() throws {
        var rows: [BenchRow] = []
        for spec in reports {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            var key = parts.first?.split(separator: ":").map(String.init) ?? []
            if key.count == 3 { key.insert(AccessPattern.seq.rawValue, at: 1) }
            guard parts.count == 2, key.count == 4, let op = BenchOp(rawValue: key[0]), let pattern = AccessPattern(rawValue: key[1]),
                  let qd = Int(key[3]) else {
                throw ValidationError("'\(spec)' is not OP[:PATTERN]:SIZE:QD=FILE")
            }
            let size: Int
            do { size = try ByteSize.parse(key[2]) } catch { throw ValidationError("\(error)") }
            let point = PointKey(op: op, pattern: pattern, size: size, qd: qd, clients: 1)
            do {
                let texts = try parts[1].split(separator: ",").map { try String(contentsOfFile: String($0), encoding: .utf8) }
                rows.append(try Fio.row(jsons: texts, mode: mode, point: point, baseline: baseline))
            } catch {
                FileHandle.standardError.write(Data("daxshare-bench: \(spec): \(error)\n".utf8))
            }
        }
        try JSONRows.render(rows).write(toFile: out, atomically: true, encoding: .utf8)
        if rows.isEmpty { throw ExitCode(1) }
    }
}
