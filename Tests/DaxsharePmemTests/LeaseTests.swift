import DaxsharePmem
import Glibc
import SystemPackage
import Testing

// The test runner has threads this code did not start, which do not block
// the lease signal; so each test here works on a thread of its own that
// blocks it, and directs its leases' breaks to that thread (F_SETOWN_EX).
// Serialized: posix_spawn's child holds a copy of this process's descriptor table until it
// execs, so a child spawned by the lease-break test while another test's second descriptor is
// open keeps that file open a moment longer and its write lease fails with EAGAIN (seen once).
@Suite(.serialized) struct LeaseTests {
    @Test func leaseBreakByAnotherProcessArrivesThroughSignalfd() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("leased")
        struct Outcome: Sendable {
            var held: FileLease.Kind, readable: Bool, events: [FileDescriptor], fd: FileDescriptor
            var duringBreak: FileLease.Kind, openerBlocked: Bool, openerStatus: Int32?, afterRelease: FileLease.Kind
        }
        let outcome = try await onDedicatedThread { () throws -> Outcome in
            try LeaseBreakNotifier.blockSignal()
            let notifier = try LeaseBreakNotifier()
            let file = try PmemFile.open(path, .readWrite, options: [.create], permissions: .ownerReadWrite)
            let lease = FileLease(file.descriptor)
            try lease.setBreakSignal(notifier.signal)
            try lease.set(.write)
            defer { try? lease.set(.none) }  // never leave the opener waiting 45 s
            try lease.directBreaks(toThread: FileLease.currentThreadID())
            let held = try lease.current()
            #expect(try notifier.readEvents().isEmpty)

            // Another process opens the file for writing; open(2) blocks until we let go.
            let opener = spawn(["/bin/sh", "-c", "exec 3<>\"$0\"", path.string])
            var poller = pollfd(fd: notifier.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            let readable = poll(&poller, 1, 10_000) == 1
            let events = try notifier.readEvents()
            let duringBreak = try lease.current()
            usleep(100_000)
            let openerBlocked = waitForExit(opener, nohang: true) == nil
            try lease.set(.none)
            let status = waitForExit(opener)
            return Outcome(
                held: held, readable: readable, events: events, fd: file.descriptor,
                duringBreak: duringBreak, openerBlocked: openerBlocked, openerStatus: status,
                afterRelease: try lease.current())
        }
        #expect(outcome.held == .write)
        #expect(outcome.readable)
        #expect(outcome.events == [outcome.fd])
        #expect(outcome.duringBreak == .none)  // the opener wants the file for writing
        #expect(outcome.openerBlocked)
        #expect(outcome.openerStatus == 0)
        #expect(outcome.afterRelease == .none)
    }

    @Test func writeLeaseNeedsTheOnlyOpenDescriptor() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        let other = try PmemFile.open(dir.file("f"), .readOnly)
        #expect(throws: PmemError.system(call: "fcntl(F_SETLEASE)", errno: .resourceTemporarilyUnavailable)) {
            try FileLease(file.descriptor).set(.write)
        }
        try other.close()
        try FileLease(file.descriptor).set(.write)
        #expect(try FileLease(file.descriptor).current() == .write)
        try FileLease(file.descriptor).set(.none)
        #expect(try FileLease(file.descriptor).current() == .none)
    }

    @Test func notifierIgnoresSignalsThatAreNotLeaseBreaks() async throws {
        let events = try await onDedicatedThread { () throws -> [FileDescriptor] in
            try LeaseBreakNotifier.blockSignal()
            let notifier = try LeaseBreakNotifier()
            pthread_kill(pthread_self(), notifier.signal)
            var poller = pollfd(fd: notifier.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            #expect(poll(&poller, 1, 5_000) == 1)
            let events = try notifier.readEvents()
            #expect(poll(&poller, 1, 0) == 0)  // consumed
            notifier.close()
            notifier.close()
            return events
        }
        #expect(events.isEmpty)
    }
}
