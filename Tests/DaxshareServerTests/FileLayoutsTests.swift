@testable import DaxshareServer
import DaxshareWire
import Logging
import Synchronization
import Testing

/// The per-file layout state machine with its lease, holders and deadline faked.
@Suite struct FileLayoutsTests {
    /// A lease that counts, and can be made to refuse (EAGAIN: the file is open elsewhere);
    /// as a delegation it breaks on the server's own changes, and the file can lose its name.
    final class FakeLease: LayoutLease {
        struct State {
            var held = false; var takes = 0; var releases = 0; var refuse = false
            var delegation = false; var linked = true
        }
        let state = Mutex(State())
        struct Refused: Error {}
        func take() throws {
            try state.withLock { s throws(Refused) in
                if s.refuse { throw Refused() }
                #expect(!s.held, "a lease taken twice")
                s.held = true
                s.takes += 1
            }
        }
        func release() {
            state.withLock { s in
                #expect(s.held, "a lease released that was not held")
                s.held = false
                s.releases += 1
            }
        }
        var held: Bool { state.withLock { $0.held } }
        var breaksOnOwnChanges: Bool { state.withLock { $0.delegation } }
        func fileIsLinked() -> Bool { state.withLock { $0.linked } }
    }

    /// A session: answers a recall by returning the layout (or stays silent), records fences.
    final class FakeHolder: LayoutHolder {
        let peer: String
        let answers: Bool
        struct State { var recalled: [UInt64] = []; var fenced: [UInt64] = []; var file: FileLayouts? }
        let state = Mutex(State())
        init(_ peer: String, answers: Bool = true) {
            self.peer = peer
            self.answers = answers
        }
        func sendRecall(layout: UInt64, recallId: UInt32, deadlineMs: UInt32, reason: RecallReason) async {
            let file = state.withLock { s in
                s.recalled.append(layout)
                return s.file
            }
            if answers { file?.release(layout) }
        }
        func fence(layout: UInt64) {
            let file = state.withLock { s in
                s.fenced.append(layout)
                return s.file
            }
            file?.release(layout)
        }
        var recalled: [UInt64] { state.withLock { $0.recalled } }
        var fenced: [UInt64] { state.withLock { $0.fenced } }
    }

    /// The recall deadline, passed only when the test says so.
    final class ManualDeadline: Sendable {
        let waiters = Mutex<[CheckedContinuation<Void, Never>]>([])
        func sleep(_: Duration) async {
            await withCheckedContinuation { c in waiters.withLock { $0.append(c) } }
        }
        func pass() {
            for c in waiters.withLock({ w in defer { w.removeAll() }; return w }) { c.resume() }
        }
        var armed: Int { waiters.withLock { $0.count } }
    }

    let lease = FakeLease()
    let deadline = ManualDeadline()
    let file: FileLayouts

    init() {
        let deadline = deadline
        file = FileLayouts(
            name: "test:f", lease: lease, deadline: .seconds(5), recallIds: RecallIDs(), counters: ServerCounters(),
            logger: Logger(label: "test")) { await deadline.sleep($0) }
    }

    func holder(_ name: String, answers: Bool = true) -> FakeHolder {
        let h = FakeHolder(name, answers: answers)
        h.state.withLock { $0.file = file }
        return h
    }

    func range(_ offset: UInt64, _ length: UInt64) -> ByteRange { ByteRange(offset: offset, length: length) }

    func grant(_ id: UInt64, _ h: FakeHolder, _ r: ByteRange, writable: Bool = true) throws {
        try file.reserve(id, holder: h, range: r, writable: writable)
        #expect(file.confirm(id))
    }

    @Test func theLeaseIsTakenBeforeTheFirstGrantAndReleasedWithTheLast() throws {
        let a = holder("a")
        try file.reserve(1, holder: a, range: range(0, 4096), writable: true)
        #expect(lease.held, "taken at the reservation, before any region is registered")
        #expect(file.confirm(1))
        try grant(2, a, range(4096, 4096))
        file.release(1)
        #expect(lease.held)
        file.release(2)
        #expect(!lease.held)
        #expect(lease.state.withLock { ($0.takes, $0.releases) } == (1, 1))
    }

    @Test func aRefusedLeaseGrantsNothing() {
        lease.state.withLock { $0.refuse = true }
        #expect(throws: LayoutRefusal.self) { try file.reserve(1, holder: holder("a"), range: range(0, 4096), writable: true) }
        #expect(file.count == 0)
        #expect(!file.isLeased)
    }

    @Test func aReservationGivenBackLeavesNoLease() throws {
        // A LAYOUTGET whose registration failed (or a LAYOUTRETURN racing it) ends in `release`.
        try file.reserve(1, holder: holder("a"), range: range(0, 4096), writable: true)
        file.release(1)
        #expect(!lease.held)
        #expect(!file.isLeased)
        #expect(!file.confirm(1))
    }

    @Test func conflictsAreCheckedAtomicallyWithTheGrant() throws {
        let a = holder("a"), b = holder("b")
        try grant(1, a, range(0, 8192))
        #expect(throws: LayoutRefusal.conflict) { try file.reserve(2, holder: b, range: range(4096, 8192), writable: true) }
        #expect(throws: LayoutRefusal.conflict) { try file.reserve(3, holder: b, range: range(0, 4096), writable: false) }
        try grant(4, b, range(8192, 4096))  // no overlap
        try grant(5, a, range(4096, 4096))  // the same holder may overlap itself
        file.release(1)
        file.release(5)
        try grant(6, b, range(0, 4096), writable: false)
        try grant(7, a, range(0, 4096), writable: false)  // READ beside READ
    }

    @Test func aRecallCompletesWhenTheHolderReturnsWithoutWaitingForTheDeadline() async throws {
        let a = holder("a")
        try grant(1, a, range(0, 4096))
        let outcome = await file.recall(range: nil, except: nil, reason: .truncate)
        #expect(outcome == .init())
        #expect(a.recalled == [1])
        #expect(a.fenced.isEmpty)
        #expect(file.count == 0)
        #expect(!lease.held)
    }

    @Test func aSilentHolderIsFencedAtTheDeadline() async throws {
        let a = holder("a", answers: false)
        try grant(1, a, range(0, 4096))
        let recall = Task { await file.recall(range: nil, except: nil, reason: .punchHole) }
        while deadline.armed == 0 { await Task.yield() }
        #expect(file.count == 1, "not fenced before the deadline")
        deadline.pass()
        _ = await recall.value
        #expect(a.fenced == [1])
        #expect(file.count == 0)
        #expect(!lease.held)
    }

    @Test func onlyOverlappingLayoutsOfOthersAreRecalled() async throws {
        let a = holder("a"), b = holder("b")
        try grant(1, a, range(0, 4096), writable: false)
        try grant(2, b, range(8192, 4096))
        try grant(3, b, range(0, 4096), writable: false)
        await file.recall(range: range(0, 4096), except: a, writesOnly: true, reason: .conflictingLayout)
        #expect(a.recalled.isEmpty, "the requester's own layouts stay")
        #expect(b.recalled.isEmpty, "READ layouts stay with writesOnly, and 8192+4096 does not overlap")
        await file.recall(range: range(0, 4096), except: a, reason: .conflictingLayout)
        #expect(b.recalled == [3])
    }

    @Test func nothingIsGrantedWhileARecallOrItsChangeRuns() async throws {
        let a = holder("a", answers: false), b = holder("b")
        try grant(1, a, range(0, 4096))
        let refusals = Mutex<[LayoutRefusal]>([])
        let recall = Task {
            await file.recalling(range: nil, except: nil, reason: .truncate) {
                // The truncate itself: still no grant.
                do { try file.reserve(3, holder: b, range: range(1 << 20, 4096), writable: true) } catch {
                    refusals.withLock { $0.append(error as! LayoutRefusal) }
                }
            }
        }
        while deadline.armed == 0 { await Task.yield() }
        #expect(throws: LayoutRefusal.recalling) { try file.reserve(2, holder: b, range: range(1 << 20, 4096), writable: true) }
        deadline.pass()
        await recall.value
        #expect(refusals.withLock { $0 } == [.recalling])
        try grant(4, b, range(1 << 20, 4096))
    }

    @Test func aLayoutBeingRegisteredWhenARecallStartsIsNeverGranted() async throws {
        let a = holder("a")
        try file.reserve(1, holder: a, range: range(0, 4096), writable: true)
        // The recall must not wait for a region still being registered, nor miss it.
        let recall = Task { await file.recall(range: nil, except: nil, reason: .leaseBreak) }
        while file.count == 1 && deadline.armed == 0 { await Task.yield() }
        #expect(!file.confirm(1), "doomed by the recall")
        _ = await recall.value
        #expect(a.recalled.isEmpty, "no CB_LAYOUTRECALL for a layout the client never saw")
        #expect(file.count == 0)
        #expect(!lease.held)
    }

    @Test func aLeaseBreakRecallsEverythingAndThenLetsTheOpenerGo() async throws {
        let a = holder("a"), b = holder("b")
        try grant(1, a, range(0, 4096))
        try grant(2, b, range(8192, 4096), writable: false)
        await file.leaseBroke()
        #expect(a.recalled == [1])
        #expect(b.recalled == [2])
        #expect(!lease.held)
        #expect(lease.state.withLock { $0.releases } == 1)
        // A later grant takes the lease anew.
        try grant(3, a, range(0, 4096))
        #expect(lease.held)
    }

    @Test func aLeaseBreakRefusesGrantsUntilItIsDone() async throws {
        let a = holder("a", answers: false)
        try grant(1, a, range(0, 4096))
        let brk = Task { await file.leaseBroke() }
        while deadline.armed == 0 { await Task.yield() }
        #expect(throws: LayoutRefusal.recalling) { try file.reserve(2, holder: holder("b"), range: range(8192, 4096), writable: false) }
        deadline.pass()
        await brk.value
        #expect(a.fenced == [1])
        #expect(!lease.held)
    }

    // MARK: The server's own metadata changes under a delegation

    @Test func aDelegationIsGivenUpAroundTheServersOwnChangeAndTakenBack() throws {
        lease.state.withLock { $0.delegation = true }
        try grant(1, holder("a"), range(0, 4096))
        let ran = try file.ownChange(expectingUnlink: false) { () throws(LayoutRefusal) -> Bool in
            #expect(!lease.held, "the change ran under the server's own delegation")
            return true
        }
        #expect(ran)
        #expect(lease.held)
        #expect(lease.state.withLock { ($0.takes, $0.releases) } == (2, 1))
    }

    @Test func aLeaseStaysThroughTheServersOwnChange() throws {
        try grant(1, holder("a"), range(0, 4096))
        try file.ownChange(expectingUnlink: false) { () throws(LayoutRefusal) in #expect(lease.held) }
        #expect(lease.state.withLock { ($0.takes, $0.releases) } == (1, 0))
    }

    @Test func aFailingChangeStillTakesTheDelegationBack() throws {
        lease.state.withLock { $0.delegation = true }
        try grant(1, holder("a"), range(0, 4096))
        #expect(throws: LayoutRefusal.conflict) {
            try file.ownChange(expectingUnlink: false) { () throws(LayoutRefusal) in throw .conflict }
        }
        #expect(lease.held)
    }

    @Test func anOpenWhileTheDelegationWasGivenUpIsABreak() async throws {
        lease.state.withLock { $0.delegation = true }
        let a = holder("a")
        try grant(1, a, range(0, 4096))
        try file.ownChange(expectingUnlink: false) { () throws(LayoutRefusal) in
            lease.state.withLock { $0.refuse = true }  // a local process opened the file meanwhile
        }
        while file.count > 0 { await Task.yield() }
        #expect(a.recalled == [1])
        #expect(!lease.held)
    }

    @Test func anUnlinkWhileTheDelegationWasGivenUpIsABreakUnlessItWasTheChange() async throws {
        lease.state.withLock { $0.delegation = true }
        let a = holder("a")
        try grant(1, a, range(0, 4096))
        try file.ownChange(expectingUnlink: true) { () throws(LayoutRefusal) in lease.state.withLock { $0.linked = false } }
        #expect(lease.held, "the server's own UNLINK: its requester keeps its layout")
        #expect(a.recalled.isEmpty)
        try file.ownChange(expectingUnlink: false) { () throws(LayoutRefusal) in }
        while file.count > 0 || lease.held { await Task.yield() }  // the break's recall, then its release
        #expect(a.recalled == [1], "nameless after a change that was not an unlink: a local rm got in")
        #expect(!lease.held)
    }

    @Test func duringABreakTheServersOwnChangeLetsTheDelegationGo() async throws {
        lease.state.withLock { $0.delegation = true }
        let a = holder("a", answers: false)
        try grant(1, a, range(0, 4096))
        let brk = Task { await file.leaseBroke() }
        while deadline.armed == 0 { await Task.yield() }
        // The holder commits while its layout is being recalled: the change cannot wait for the
        // break (which waits for this holder), so the delegation goes now, for good.
        try file.ownChange(expectingUnlink: false) { () throws(LayoutRefusal) in #expect(!lease.held) }
        #expect(!lease.held)
        deadline.pass()
        await brk.value
        #expect(a.fenced == [1])
        #expect(lease.state.withLock { ($0.takes, $0.releases) } == (1, 1))
    }
}
