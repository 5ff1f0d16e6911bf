import DaxshareBench
import Testing

@Suite("perftest reports")
struct PerftestTests {
    static let report = """
    ---------------------------------------------------------------------------------------
                        RDMA_Read BW Test
     Dual-port       : OFF		Device         : rxe0
    ---------------------------------------------------------------------------------------
     #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]
     1048576    120              47.10              45.25		   0.000045
    ---------------------------------------------------------------------------------------
    """

    @Test func averageIsConvertedFromMiBPerSecond() throws {
        let mbps = try #require(Perftest.averageMBps(in: Self.report, size: 1048576))
        #expect(abs(mbps - 45.25 * 1.048576) < 1e-9)
    }

    @Test func noRowForAnotherSizeOrAFailedRun() {
        #expect(Perftest.averageMBps(in: Self.report, size: 4096) == nil)
        let failed = " Correlation coefficient r^2 < 0.9\n Can't produce a report\n"
        #expect(Perftest.averageMBps(in: failed, size: 4096) == nil)
        #expect(Perftest.isCorrelationFailure(failed))
        #expect(!Perftest.isCorrelationFailure(Self.report))
    }

    @Test func gigabitReports() throws {
        let text = " #bytes #iterations BW peak[Gb/sec] BW average[Gb/sec] MsgRate[Mpps]\n 65536 1000 0.50 0.40 0.0007\n"
        let mbps = try #require(Perftest.averageMBps(in: text, size: 65536))
        #expect(abs(mbps - 50) < 1e-9)
    }

    @Test func bothSidesTakeTheSameFlags() {
        let server = Perftest.arguments(device: "rxe0", size: 4096, seconds: 2, txDepth: 8, port: 18515)
        let client = Perftest.arguments(device: "rxe0", size: 4096, seconds: 2, txDepth: 8, port: 18515, server: "169.254.77.1")
        #expect(Array(client.dropLast()) == server)
        #expect(client.last == "169.254.77.1")
        #expect(server.contains("-R") && server.contains("--odp"))
        #expect(Perftest.tool(for: .read) == "ib_read_bw")
        #expect(Perftest.tool(for: .write) == "ib_write_bw")
    }

    @Test func procStatCPUTicksSkipsACommandNameWithSpaces() {
        let line = "1234 (daxs (x) d) S 1 1234 1234 0 -1 4194560 300 0 0 0 17 5 0 0 20 0 9 0 100 0 0"
        #expect(ProcStat.cpuTicks(statLine: line) == 22)
        #expect(ProcStat.cpuTicks(statLine: "garbage") == nil)
    }
}
