/// perftest's `ib_read_bw` / `ib_write_bw`: the command lines and the report.
public enum Perftest {
    /// The tool for an operation.
    public static func tool(for op: BenchOp) -> String { op == .read ? "ib_read_bw" : "ib_write_bw" }

    /// Arguments for one side: rdma_cm, ODP (unless `odp` is false), the device, size, duration and depth; the client
    /// side also gets the server's address. Both sides take the same flags.
    public static func arguments(device: String, size: Int, seconds: Int, txDepth: Int, port: Int,
                                 server: String? = nil, odp: Bool = true) -> [String] {
        var a = ["-R"] + (odp ? ["--odp"] : []) + ["-d", device, "-s", "\(size)", "-D", "\(max(1, seconds))", "-t", "\(max(1, txDepth))",
                 "-p", "\(port)", "-F"]
        if let server { a.append(server) }
        return a
    }

    /// The average bandwidth in MB/s (10^6 bytes/s) from a bandwidth report: the row after the
    /// `#bytes` header whose first column is the size. perftest's "MB/sec" is MiB/s (2^20; its
    /// own help says so), converted here; a `Gb/sec` report (`--report_gbits`) is converted too.
    /// Nil when there is no such row (a failed run, or "Can't produce a report").
    public static func averageMBps(in output: String, size: Int) -> Double? {
        var column: Int?
        var factor = 1.048576
        for raw in output.split(whereSeparator: \.isNewline) {
            let line = String(raw).benchTrimmed()
            if line.hasPrefix("#bytes") {
                let headers = splitColumns(line)
                column = headers.firstIndex { $0.hasPrefix("average") }.map { $0 }
                if line.contains("Gb/sec") { factor = 1e9 / 8 / 1e6 } else { factor = 1.048576 }
                continue
            }
            guard let col = column else { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count > col, Int(fields[0]) == size, let bw = Double(fields[col]) else { continue }
            return bw * factor
        }
        return nil
    }

    /// Whether a run failed in the way that deserves one retry ("r^2 < 0.9").
    public static func isCorrelationFailure(_ output: String) -> Bool {
        output.contains("r^2") || output.contains("Can't produce a report")
    }

    /// Header columns: "#bytes #iterations BW peak[MB/sec] BW average[MB/sec] MsgRate[Mpps]"
    /// becomes ["#bytes", "#iterations", "peak[MB/sec]", "average[MB/sec]", "MsgRate[Mpps]"]
    /// (the "BW" words belong to the following column).
    static func splitColumns(_ header: String) -> [String] {
        header.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init).filter { $0 != "BW" }
    }
}

/// A process's CPU time from `/proc/PID/stat`.
public enum ProcStat {
    /// utime + stime in clock ticks, from the text of `/proc/PID/stat`. The command name (field 2)
    /// may hold spaces and parentheses, so fields are counted after its last ')'.
    public static func cpuTicks(statLine: String) -> UInt64? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let rest = statLine[statLine.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // rest[0] is field 3 (state); utime is field 14, stime field 15.
        guard rest.count > 12, let u = UInt64(rest[11]), let s = UInt64(rest[12]) else { return nil }
        return u + s
    }
}
