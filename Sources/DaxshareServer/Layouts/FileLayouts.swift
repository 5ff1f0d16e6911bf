import DaxshareWire
import Logging
import Synchronization

/// The OS lease a file's layouts live under, as `FileLayouts` sees it: the server's is a lease
/// or delegation on the file's one descriptor (`LeaseWatcher`); tests pass a fake.
protocol LayoutLease: Sendable {
    /// Takes the lease; throws when the kernel refuses it (EAGAIN: the file is open elsewhere).
    func take() throws
    /// Gives it up, letting a local opener that broke it go on.
    func release()
    /// Whether what `take` took also breaks on the server's own changes to the file's
    /// metadata (a delegation does, measured on Linux 7.2; a lease does not).
    var breaksOnOwnChanges: Bool { get }
    /// Whether the file still has a name (`st_nlink` > 0).
    func fileIsLinked() -> Bool
}

/// Whoever holds a layout: the session that must answer its recall, and that the server
/// fences when it does not (`SessionLayouts`; tests pass a fake).
protocol LayoutHolder: AnyObject, Sendable {
    /// For logs: the holder's peer address.
    var peer: String { get }
    /// Sends CB_LAYOUTRECALL for the layout (`recallId` names this recall on the wire).
    func sendRecall(layout: UInt64, recallId: UInt32, deadlineMs: UInt32, reason: RecallReason) async
    /// The deadline passed: the layout's region goes, and the layout is revoked. Ends with
    /// `FileLayouts.release` for the layout, as any layout end does.
    func fence(layout: UInt64)
}

/// Why a layout cannot be granted now.
enum LayoutRefusal: Error, Equatable {
    /// A recall (or a lease break) is in progress on the file: TRY_LATER.
    case recalling
    /// Another holder's layout overlaps, and one of the two is RW: recall it first.
    case conflict
    /// The kernel refused the lease (the file is open elsewhere): TRY_LATER.
    case leaseUnavailable(String)
}

/// One file's layouts, its lease and its recalls, owned here alone, under one lock.
///
/// A grant goes `reserve` (conflict check, lease taken, all atomic) → the caller registers
/// the memory region → `confirm`; a recall that starts in between dooms the reservation, and
/// `confirm` then refuses it, so no layout is ever handed out that a recall has missed. The
/// lease is held exactly while some grant exists: taken before the first region is
/// registered, released when the last grant has ended. While a recall or a lease break is in
/// progress, and while the change it clears the way for runs, new grants are refused. A recall
/// completes when its last target is released (signalled, not polled) or when its deadline
/// passes, and then fences what is left.
final class FileLayouts: OwnMetadataChanges {
    private enum Phase { case registering, granted, doomed }
    private struct Grant {
        let holder: any LayoutHolder
        let range: ByteRange
        let writable: Bool
        var phase: Phase
    }
    private struct Recall {
        var waiting: Set<UInt64>
        var continuation: CheckedContinuation<Void, Never>?
        var finished = false
    }
    private struct State {
        var grants: [UInt64: Grant] = [:]
        var leased = false
        var recalls: [UInt64: Recall] = [:]
        var nextRecall: UInt64 = 1
        var breaking = false
    }

    /// For logs: export and path the file was first opened by.
    let name: String
    let deadline: Duration
    private let lease: any LayoutLease
    private let recallIds: RecallIDs
    private let counters: ServerCounters
    private let logger: Logger
    private let sleep: @Sendable (Duration) async -> Void
    private let state = Mutex(State())

    init(
        name: String, lease: any LayoutLease, deadline: Duration, recallIds: RecallIDs, counters: ServerCounters,
        logger: Logger, sleep: @escaping @Sendable (Duration) async -> Void = { try? await Task.sleep(for: $0) }
    ) {
        self.name = name
        self.lease = lease
        self.deadline = deadline
        self.recallIds = recallIds
        self.counters = counters
        self.logger = logger
        self.sleep = sleep
    }

    var deadlineMs: UInt32 { UInt32(clamping: deadline.components.seconds * 1000 + deadline.components.attoseconds / 1_000_000_000_000_000) }

    /// Layouts granted or being registered.
    var count: Int { state.withLock { $0.grants.count } }
    var isLeased: Bool { state.withLock { $0.leased } }

    // MARK: Granting

    /// Reserves layout `id` for `holder`: refused while a recall runs, when another holder's
    /// layout conflicts, or when the lease cannot be had. The caller registers the region,
    /// then calls `confirm` (or `release` if registering failed).
    func reserve(_ id: UInt64, holder: any LayoutHolder, range: ByteRange, writable: Bool) throws(LayoutRefusal) {
        try state.withLock { s throws(LayoutRefusal) in
            if s.breaking || !s.recalls.isEmpty { throw .recalling }
            let conflict = s.grants.values.contains { g in
                g.holder !== holder && g.range.overlaps(range) && (g.writable || writable)
            }
            if conflict { throw .conflict }
            if !s.leased {
                do { try lease.take() } catch { throw .leaseUnavailable("\(error)") }
                s.leased = true
            }
            s.grants[id] = Grant(holder: holder, range: range, writable: writable, phase: .registering)
        }
    }

    /// Hands out a reserved layout; false when a recall doomed it (or fenced it) meanwhile: the
    /// caller then deregisters and answers TRY_LATER.
    func confirm(_ id: UInt64) -> Bool {
        let (granted, wake) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
            switch s.grants[id]?.phase {
            case .registering?:
                s.grants[id]!.phase = .granted
                return (true, [])
            case .doomed?:
                return (false, remove(id, &s))
            case .granted?, nil:
                return (false, [])
            }
        }
        wake.forEach { $0.resume() }
        return granted
    }

    /// A layout ended (returned, fenced, its session gone) after its region was deregistered.
    /// Recalls waiting for it may complete; the lease goes with the last grant. False if the
    /// layout was not (or no longer) here.
    @discardableResult
    func release(_ id: UInt64) -> Bool {
        let (present, wake) = state.withLock { s -> (Bool, [CheckedContinuation<Void, Never>]) in
            guard s.grants[id] != nil else { return (false, []) }
            return (true, remove(id, &s))
        }
        wake.forEach { $0.resume() }
        return present
    }

    /// Holds the lock: drops a grant, answers the recalls that waited only for it, and lets the
    /// lease go if nothing is left.
    private func remove(_ id: UInt64, _ s: inout State) -> [CheckedContinuation<Void, Never>] {
        s.grants.removeValue(forKey: id)
        var wake: [CheckedContinuation<Void, Never>] = []
        for key in Array(s.recalls.keys) {
            guard s.recalls[key]!.waiting.remove(id) != nil, s.recalls[key]!.waiting.isEmpty,
                !s.recalls[key]!.finished
            else { continue }
            s.recalls[key]!.finished = true
            if let c = s.recalls[key]!.continuation { wake.append(c) }
            s.recalls[key]!.continuation = nil
        }
        releaseLeaseIfIdle(&s)
        return wake
    }

    /// The lease goes with the last grant, even while a recall's change runs (new grants are
    /// refused by the recall meanwhile): the server's own truncate or rename then meets no lease
    /// or delegation of its own.
    private func releaseLeaseIfIdle(_ s: inout State) {
        guard s.leased, s.grants.isEmpty, !s.breaking else { return }
        lease.release()
        s.leased = false
    }

    // MARK: Recalling

    /// What a recall did.
    struct Outcome: Equatable {
        var recalled = 0
        var fenced = 0
    }

    /// Recalls every layout overlapping `range` (all when nil) held by others than `requester`
    /// (only RW ones with `writesOnly`), waits until each is returned or, at the deadline,
    /// fenced, then runs `change` while new grants are still refused, so the change (a
    /// truncate, a hole punch, a rename) never meets a layout granted after the recall.
    func recalling<T>(
        range: ByteRange?, except requester: (any LayoutHolder)?, writesOnly: Bool = false, reason: RecallReason,
        _ change: () async throws -> T
    ) async rethrows -> T {
        let (key, targets) = state.withLock { s -> (UInt64, [(UInt64, Grant)]) in
            let key = s.nextRecall
            s.nextRecall += 1
            let targets = s.grants.filter { _, g in
                g.holder !== requester && (range.map { g.range.overlaps($0) } ?? true) && (!writesOnly || g.writable)
            }.map { ($0.key, $0.value) }
            for (id, g) in targets where g.phase == .registering { s.grants[id]!.phase = .doomed }
            s.recalls[key] = Recall(waiting: Set(targets.map(\.0)), finished: targets.isEmpty)
            return (key, targets)
        }
        defer {
            state.withLock { s in
                s.recalls.removeValue(forKey: key)
                releaseLeaseIfIdle(&s)
            }
        }
        if !targets.isEmpty { await recall(key, targets, range: range, reason: reason) }
        return try await change()
    }

    /// Recalls without a change to run afterwards (a conflicting LAYOUTGET retries its grant).
    @discardableResult
    func recall(range: ByteRange?, except requester: (any LayoutHolder)?, writesOnly: Bool = false, reason: RecallReason) async -> Outcome {
        await recalling(range: range, except: requester, writesOnly: writesOnly, reason: reason) { () async -> Outcome in
            Outcome()
        }
    }

    private func recall(_ key: UInt64, _ targets: [(UInt64, Grant)], range: ByteRange?, reason: RecallReason) async {
        let started = ContinuousClock.now
        counters.add(ServerCounter.recallsInProgress)
        defer { counters.subtract(ServerCounter.recallsInProgress) }
        // Each callback on its own task: a holder that stopped granting credits must not hold
        // up the others' recalls, or the deadline (it is fenced like any silent holder).
        let deadlineMs = deadlineMs
        for (id, g) in targets where g.phase == .granted {
            counters.add(ServerCounter.layoutsRecalled)
            let recallId = recallIds.next()
            Task { await g.holder.sendRecall(layout: id, recallId: recallId, deadlineMs: deadlineMs, reason: reason) }
        }
        let timer = Task { [sleep, deadline] in
            await sleep(deadline)
            guard !Task.isCancelled else { return }
            let c = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard s.recalls[key]?.finished == false else { return nil }
                s.recalls[key]!.finished = true
                defer { s.recalls[key]!.continuation = nil }
                return s.recalls[key]!.continuation
            }
            c?.resume()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.recalls[key]!.finished { return true }
                s.recalls[key]!.continuation = c
                return false
            }
            if now { c.resume() }
        }
        timer.cancel()
        // Whatever is still waiting missed the deadline. A reservation still registering is
        // dropped here (its `confirm` fails); a granted layout is fenced by its holder.
        let late = state.withLock { s -> [(UInt64, Grant)] in
            let ids = s.recalls[key]!.waiting
            var late: [(UInt64, Grant)] = []
            for id in ids {
                guard let g = s.grants[id] else { continue }
                if g.phase == .granted { late.append((id, g)) } else { _ = remove(id, &s) }
            }
            return late
        }
        for (id, g) in late {
            logger.warning(
                "fenced \(g.holder.peer): layout \(id) on \(name) \(g.range.offset)+\(g.range.length) not returned within \(deadlineMs) ms",
                metadata: [
                    "event": "fence", "client": "\(g.holder.peer)", "file": "\(name)", "range": "\(g.range.offset)+\(g.range.length)",
                    "duration_ms": "\(deadlineMs)",
                ])
            g.holder.fence(layout: id)
        }
        let holders = Set(targets.map { $0.1.holder.peer }).sorted().joined(separator: ", ")
        let took = ContinuousClock.now - started
        counters.recallTook(took, reason: reason)
        let rangeText = range.map { "\($0.offset)+\($0.length)" } ?? "whole file"
        logger.notice(
            "recall (\(reason)) of \(name) \(rangeText) from \(holders): \(targets.count) layout(s), \(targets.count - late.count) returned, \(late.count) fenced, took \(took)",
            metadata: [
                "event": "recall", "reason": "\(reason)", "file": "\(name)", "range": "\(rangeText)", "clients": "\(holders)",
                "layouts": "\(targets.count)", "fenced": "\(late.count)", "duration_ms": "\(took.nanoseconds / 1_000_000)",
            ])
    }

    /// Another process opened, truncated, renamed or unlinked the file: recall everything, then
    /// let that process go. Grants are refused from the break until the lease is released.
    func leaseBroke() async {
        let first = state.withLock { s -> Bool in
            guard s.leased, !s.breaking else { return false }
            s.breaking = true
            return true
        }
        guard first else { return }
        logger.notice("lease broken on \(name): recalling its layouts")
        await recallAfterBreak()
    }

    /// Holds the lock, `breaking` set: the break's recall, on a task of its own.
    private func startBreak(_ s: inout State, because reason: String) {
        s.breaking = true
        logger.notice("\(reason) on \(name): recalling its layouts")
        Task { await recallAfterBreak() }
    }

    private func recallAfterBreak() async {
        await recall(range: nil, except: nil, reason: .leaseBreak)
        state.withLock { s in
            s.breaking = false
            // Every grant is gone (returned or fenced, and none granted meanwhile).
            if s.leased {
                lease.release()
                s.leased = false
            }
        }
    }

    // MARK: The server's own metadata changes

    /// Runs the server's own change to the file's metadata (ftruncate, futimens, an extended
    /// attribute, its unlink or rename). A delegation breaks on its holder's changes too, so it
    /// is given up around the change and taken back after, all under the lock, so no grant or
    /// other change sees the gap. Taking it back can find the file opened meanwhile (EAGAIN)
    /// or, with `expectingUnlink` false, unlinked: that is a break the kernel could not send,
    /// and its recall starts. During a break the delegation cannot be kept (the change would
    /// wait for the break, and the break for a holder waiting on this change): it goes now,
    /// letting the breaker go on a little before the recall ends. A lease needs none of this.
    func ownChange<T, E: Error>(expectingUnlink: Bool = false, _ change: () throws(E) -> T) throws(E) -> T {
        var outcome: Result<T, E>?
        state.withLock { s in
            let givenUp = s.leased && lease.breaksOnOwnChanges
            if givenUp {
                lease.release()
                s.leased = false
            }
            outcome = Self.run(change)
            // Taken back only while grants remain, and never during a break (it went for good).
            guard givenUp, !s.breaking, !s.grants.isEmpty else { return }
            do {
                try lease.take()
                s.leased = true
            } catch {
                startBreak(&s, because: "the file was opened while its delegation was given up for the server's own change (\(error))")
                return
            }
            if !expectingUnlink && !lease.fileIsLinked() {
                startBreak(&s, because: "the file was unlinked while its delegation was given up for the server's own change")
            }
        }
        return try outcome!.get()
    }

    private static func run<T, E: Error>(_ change: () throws(E) -> T) -> Result<T, E> {
        do throws(E) { return .success(try change()) } catch { return .failure(error) }
    }
}

/// Recall ids (the wire's `recallId`): unique across the server, never 0.
final class RecallIDs: Sendable {
    private let last = Atomic<UInt32>(0)
    func next() -> UInt32 {
        while true {
            let id = last.add(1, ordering: .relaxed).newValue
            if id != 0 { return id }
        }
    }
}
