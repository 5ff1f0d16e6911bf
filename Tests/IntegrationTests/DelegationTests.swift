import DaxsharePmem
import DaxshareWire
import Foundation
import Glibc
import SystemPackage
import Testing

/// File delegations (F_SETDELEG, Linux 6.19; the testbed runs 7.2) on the fsdax mount, at the
/// DaxsharePmem level: a local `rm` or `mv` by another process breaks a write delegation, the
/// break arrives through the signalfd like a lease break, and the other process waits until
/// the holder lets go. A lease misses both. Then end to end through daxshared, which takes
/// delegations. And the lease-break signal sent to daxshared's process does not kill it (it is
/// blocked in every thread).
@Suite(.serialized) struct DelegationTests {
    struct BreakOutcome: Sendable {
        var mechanism: FileLease.Mechanism
        var broke: Bool, events: [FileDescriptor], fd: FileDescriptor
        var duringBreak: FileLease.Kind, breakerBlocked: Bool, breakerStatus: Int32?
    }

    /// Takes a write lease or delegation on a fresh fsdax file on a thread that blocks the
    /// signal (the test runner's threads do not), lets `breaker(path)` run as another
    /// process, waits up to `wait` seconds for the break, then releases.
    func breakBy(_ name: String, preferring: FileLease.Mechanism, wait: Int32 = 10,
                 _ breaker: @escaping @Sendable (String) -> [String]) async throws -> (BreakOutcome, path: String) {
        let path = try Testbed.pmemPath(name)
        unlink(path)
        let outcome = try await onOwnThread { () throws -> BreakOutcome in
            try LeaseBreakNotifier.blockSignal()
            let notifier = try LeaseBreakNotifier()
            let file = try PmemFile.open(FilePath(path), .readWrite, options: [.create], permissions: .ownerReadWrite)
            defer { try? file.close() }
            try file.allocate(offset: 0, length: 1 << 16)
            try FileLease(file.descriptor).setBreakSignal(notifier.signal)
            let held = try FileLease.takeWrite(on: file.descriptor, preferring: preferring)
            defer { try? held.set(.none) }  // never leave the breaker waiting 45 s
            try held.directBreaks(toThread: FileLease.currentThreadID())
            let child = spawnChild(breaker(path))
            var poller = pollfd(fd: notifier.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            let broke = poll(&poller, 1, wait * 1000) == 1
            let events = try notifier.readEvents()
            let duringBreak = try held.current()
            usleep(300_000)
            let blocked = childStatus(child, nohang: true) == nil
            try held.set(.none)
            return BreakOutcome(
                mechanism: held.mechanism, broke: broke, events: events, fd: file.descriptor,
                duringBreak: duringBreak, breakerBlocked: blocked, breakerStatus: childStatus(child))
        }
        return (outcome, path)
    }

    @Test func localUnlinkBreaksAWriteDelegation() async throws {
        let (o, path) = try await breakBy("deleg-rm", preferring: .delegation) { ["/bin/rm", "-f", $0] }
        #expect(o.mechanism == .delegation, "kernel \(kernelRelease()) refused F_SETDELEG")
        #expect(o.broke, "no break within 10 s of a local rm")
        #expect(o.events == [o.fd])
        #expect(o.duringBreak == .none)
        #expect(o.breakerBlocked, "rm went ahead before the holder released")
        #expect(o.breakerStatus == 0)
        #expect(access(path, F_OK) != 0)
    }

    @Test func localRenameBreaksAWriteDelegation() async throws {
        let (o, path) = try await breakBy("deleg-mv", preferring: .delegation) { ["/bin/mv", $0, $0 + ".moved"] }
        defer { unlink(path + ".moved") }
        #expect(o.mechanism == .delegation)
        #expect(o.broke, "no break within 10 s of a local mv")
        #expect(o.events == [o.fd])
        #expect(o.breakerBlocked, "mv went ahead before the holder released")
        #expect(o.breakerStatus == 0)
        #expect(access(path + ".moved", F_OK) == 0)
    }

    /// Why delegations matter: a lease (F_SETLEASE) does not see an unlink at all.
    @Test func aLeaseMissesALocalUnlink() async throws {
        let (o, path) = try await breakBy("lease-rm", preferring: .lease, wait: 2) { ["/bin/rm", "-f", $0] }
        #expect(o.mechanism == .lease)
        #expect(!o.broke)
        #expect(o.events.isEmpty)
        #expect(!o.breakerBlocked)
        #expect(access(path, F_OK) != 0)
    }

    /// Why the server gives its delegation up around its own metadata changes
    /// (`FileLayouts.ownChange`): the holder's own changes break its own delegation. Its
    /// ftruncate fails with EAGAIN and starts the break.
    @Test func theHoldersOwnTruncateBreaksItsOwnDelegation() async throws {
        let path = try Testbed.pmemPath("deleg-self")
        defer { unlink(path) }
        let (error, broke) = try await onOwnThread { () throws -> (PmemError?, Bool) in
            try LeaseBreakNotifier.blockSignal()
            let notifier = try LeaseBreakNotifier()
            let file = try PmemFile.open(FilePath(path), .readWrite, options: [.create], permissions: .ownerReadWrite)
            defer { try? file.close() }
            try FileLease(file.descriptor).setBreakSignal(notifier.signal)
            let held = try FileLease.takeWrite(on: file.descriptor, preferring: .delegation)
            defer { try? held.set(.none) }
            try held.directBreaks(toThread: FileLease.currentThreadID())
            var error: PmemError?
            do throws(PmemError) { try file.setSize(1 << 16) } catch let failure { error = failure }
            var poller = pollfd(fd: notifier.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            let readable = poll(&poller, 1, 2000) == 1
            let broke = try readable && notifier.readEvents() == [file.descriptor]
            return (error, broke)
        }
        #expect(error?.errno == .resourceTemporarilyUnavailable)
        #expect(broke)
    }

    /// End to end: a local `rm` or `mv` of a file under a client's RW layout recalls it, as a
    /// local open does (RecallTests), and waits for it: the server takes a delegation. Before
    /// that, the client's LAYOUTCOMMIT makes the server change the file's own metadata (the
    /// visible-size attribute of a layout past end of file, the size, mtime), which would break
    /// its own delegation if it kept it through them: that recalls nothing.
    @Test(arguments: [("rm", 5785), ("mv", 5786)])
    func aLocalRemoveOrRenameUnderALayoutRecallsIt(_ tool: String, _ port: Int) async throws {
        let server = try ServerProcess(name: "deleg-\(tool)", port: UInt16(port), arguments: ["--recall-deadline-ms", "3000"])
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
        defer { a.close() }
        let file = try await a.open("f.bin", [.read, .write, .create])
        let layout = try await a.layout(file: file, offset: 0, length: 1 << 20, .readWrite)
        _ = try await a.request(.layoutCommit(LayoutCommitRequest(
            stateid: layout.stateid, newSize: 8192, ranges: [ByteRange(offset: 0, length: 8192)])))
        var counters = try await a.counters()
        #expect(counters["layouts_recalled"] == 0 && counters["layouts_live"] == 1, "a commit broke the server's own delegation: \(counters)")
        #expect(server.log.contains("layouts live under file delegations"), "\(server.log)")
        a.answerRecalls()
        let path = server.exportDir + "/f.bin"
        let r = tool == "rm" ? try run("/bin/rm", ["-f", path]) : try run("/bin/mv", [path, path + ".moved"])
        #expect(r.status == 0, "\(tool): \(r.err)")
        // The tool returned only after the delegation was let go, which was after the recall.
        counters = try await a.counters()
        #expect(counters["layouts_recalled"] == 1 && counters["layouts_live"] == 0 && counters["layouts_revoked"] == 0, "\(counters)")
        #expect(server.log.contains("lease broken on"), "\(server.log)")
    }

    /// The server's own UNLINK and RENAME of a file the requester holds a layout on give up the
    /// server's delegation around the change: neither waits for a break of it (which would end
    /// in a recall of the requester's layout, or its fence at the deadline).
    @Test func aClientsOwnRenameAndUnlinkUnderItsLayoutRecallNothing() async throws {
        let server = try ServerProcess(name: "deleg-own", port: 5787, arguments: ["--recall-deadline-ms", "3000"])
        defer { #expect(server.stop() == 0, "log:\n\(server.log)") }
        let a = try await RawSession(host: try Testbed.address, port: server.port, export: "data", secret: try server.secret)
        defer { a.close() }
        let file = try await a.open("own.bin", [.read, .write, .create])
        _ = try await a.layout(file: file, offset: 0, length: 1 << 20, .readWrite)
        a.answerRecalls()
        _ = try await a.request(.rename(RenameRequest(treeId: a.treeId, from: "own.bin", to: "own2.bin")))
        _ = try await a.request(.unlink(UnlinkRequest(treeId: a.treeId, path: "own2.bin")))
        let counters = try await a.counters()
        #expect(counters["layouts_recalled"] == 0 && counters["layouts_revoked"] == 0 && counters["layouts_live"] == 1, "\(counters)")
        #expect(access(server.exportDir + "/own.bin", F_OK) != 0 && access(server.exportDir + "/own2.bin", F_OK) != 0)
    }

    /// A lease-break signal that reaches daxshared's process (as a break does in the moment
    /// before F_SETOWN_EX names the lease thread) must wait in the signalfd, not kill it: the
    /// signal is blocked in main before any thread starts. Without that, this kill terminates it.
    @Test func daxsharedSurvivesTheLeaseSignalSentToItsProcess() async throws {
        let server = try ServerProcess(name: "deleg-signal", port: 5781)
        defer { server.stop() }
        for _ in 0..<5 {
            kill(server.process.processIdentifier, LeaseBreakNotifier.defaultSignal)
            usleep(100_000)
        }
        usleep(500_000)
        #expect(server.process.isRunning, "daxshared died of the lease signal: \(server.log)")
        #expect(server.log.contains("layouts live under file delegations"), "\(server.log)")
        #expect(server.stop() == 0)
    }
}

private func kernelRelease() -> String {
    var u = utsname()
    uname(&u)
    return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// posix_spawn of `arguments` (argv[0] an absolute path); its pid.
private func spawnChild(_ arguments: [String]) -> pid_t {
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let result = argv.withUnsafeBufferPointer { posix_spawn(&pid, arguments[0], nil, nil, $0.baseAddress!, environ) }
    precondition(result == 0, "posix_spawn failed: \(result)")
    return pid
}

/// The child's exit status, or nil if `nohang` and it still runs.
private func childStatus(_ pid: pid_t, nohang: Bool = false) -> Int32? {
    var status: Int32 = 0
    while true {
        let result = waitpid(pid, &status, nohang ? WNOHANG : 0)
        if result == -1 && errno == EINTR { continue }
        if result == 0 { return nil }
        return (status >> 8) & 0xff
    }
}

/// Runs `body` on a thread of its own, whose signal mask it may change.
private func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
