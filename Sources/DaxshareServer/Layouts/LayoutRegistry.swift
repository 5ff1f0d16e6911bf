import DaxsharePmem
import DaxshareWire
import Foundation
import Logging
import Synchronization
import SystemPackage

/// Every layout the server has granted, by file: what a recall needs to find
/// the holders, and the OS lease that layouts live under (PROTOCOL.md §5.6).
///
/// A recall marks the file (new LAYOUTGETs on it get TRY_LATER), sends
/// CB_LAYOUTRECALL to each affected holder, waits for their LAYOUTRETURNs
/// until the deadline, fences whoever is left (their regions deregistered,
/// their layouts revoked), and only then lets the conflicting change go on.
final class LayoutRegistry: Sendable {
    struct Holder: Sendable {
        let layout: Layout
        let owner: SessionLayouts
    }
    private struct FileState {
        var descriptor: FileDescriptor
        var holders: [UInt64: Holder] = [:]
        var recalling = 0
        var leased = false
    }
    private let files = Mutex<[FileKey: FileState]>([:])
    private let recallIds = Atomic<UInt32>(0)
    let deadlineMs: UInt32
    private let counters: ServerCounters
    private let logger: Logger
    private let watcher: LeaseWatcher?

    init(deadlineMs: UInt32, counters: ServerCounters, logger: Logger, leases: Bool, fileForDescriptor: @escaping @Sendable (FileDescriptor) -> SharedFile?) {
        self.deadlineMs = deadlineMs
        self.counters = counters
        self.logger = logger
        var watcher: LeaseWatcher?
        if leases {
            let box = WeakBox<LayoutRegistry>()
            do {
                watcher = try LeaseWatcher(logger: logger) { fd in
                    guard let registry = box.value, let file = fileForDescriptor(fd) else { return }
                    Task { await registry.leaseBroke(file) }
                }
            } catch {
                logger.error("no lease-break watcher, local opens will not recall layouts: \(error)")
            }
            self.watcher = watcher
            box.value = self
        } else {
            self.watcher = nil
        }
    }

    /// Refuses a LAYOUTGET while the file is being recalled.
    func checkNotRecalling(_ key: FileKey) throws {
        if files.withLock({ ($0[key]?.recalling ?? 0) > 0 }) {
            throw RequestFailure(status: .tryLater, reason: "a recall is in progress on the file", retryAfterMs: 200)
        }
    }

    /// Records a granted layout and makes sure the file is leased.
    func add(_ layout: Layout, owner: SessionLayouts) {
        let shared = layout.file.shared
        let takeLease = files.withLock { f -> Bool in
            f[shared.key, default: FileState(descriptor: shared.descriptor)].holders[layout.id] = Holder(layout: layout, owner: owner)
            guard !f[shared.key]!.leased else { return false }
            f[shared.key]!.leased = true
            return true
        }
        if takeLease, let watcher {
            do { try watcher.lease(shared.descriptor) } catch {
                files.withLock { $0[shared.key]?.leased = false }
                logger.warning("no lease on \(shared.origin) (open elsewhere?): local opens will not recall its layouts: \(error)")
            }
        }
    }

    /// Forgets a layout that ended; the lease goes with the file's last layout.
    func remove(_ layout: Layout) {
        let key = layout.file.shared.key
        let release = files.withLock { f -> FileDescriptor? in
            f[key]?.holders.removeValue(forKey: layout.id)
            guard let s = f[key], s.holders.isEmpty, s.recalling == 0 else { return nil }
            f.removeValue(forKey: key)
            return s.leased ? s.descriptor : nil
        }
        if let release { watcher?.release(release) }
    }

    /// Holders of layouts on `key` that conflict with `range` for `requester`.
    private func holders(_ key: FileKey, range: ByteRange?, except requester: SessionLayouts?, writesOnly: Bool) -> [Holder] {
        files.withLock { f in
            (f[key]?.holders.values ?? [:].values).filter { h in
                h.owner !== requester && (!writesOnly || h.layout.iomode == .readWrite)
                    && (range.map { h.layout.overlaps($0) } ?? true)
            }
        }
    }

    /// Whether any other session holds a layout on the file that `range` touches.
    func hasConflict(_ key: FileKey, range: ByteRange?, requester: SessionLayouts?, writesOnly: Bool = false) -> Bool {
        !holders(key, range: range, except: requester, writesOnly: writesOnly).isEmpty
    }

    /// Recalls every layout on `key` overlapping `range` (all of them when nil)
    /// held by sessions other than `requester`, and returns once each was
    /// returned or fenced.
    func recall(_ key: FileKey, range: ByteRange?, requester: SessionLayouts?, reason: RecallReason, writesOnly: Bool = false) async {
        let targets = holders(key, range: range, except: requester, writesOnly: writesOnly)
        guard !targets.isEmpty else { return }
        files.withLock { $0[key]?.recalling += 1 }
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int(deadlineMs))
        // Each callback on its own task: a holder that stopped granting credits must not hold
        // the others' recalls, or the deadline, up (it is fenced like any silent holder).
        for t in targets {
            let id = recallIds.add(1, ordering: .relaxed).newValue
            counters.add(ServerCounter.layoutsRecalled)
            let deadlineMs = deadlineMs
            Task { await t.owner.sendRecall(t.layout, recallId: id, deadlineMs: deadlineMs, reason: reason) }
        }
        counters.add(ServerCounter.recallsInProgress)
        var pending = targets
        while !pending.isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
            pending = pending.filter { t in files.withLock { $0[key]?.holders[t.layout.id] != nil } }
        }
        for t in pending {
            t.owner.fence(t.layout)
            logger.warning("fenced \(t.owner.peer): layout \(t.layout.id) on \(t.layout.file.path) \(t.layout.extent.range) not returned within \(deadlineMs) ms")
        }
        counters.subtract(ServerCounter.recallsInProgress)
        let took = ContinuousClock.now - started
        let holders = Set(targets.map(\.owner.peer)).sorted().joined(separator: ", ")
        logger.notice("recall (\(reason)) of \(targets.first!.layout.file.path) \(range.map { "\($0.offset)+\($0.length)" } ?? "whole file") from \(holders): \(targets.count) layout(s), \(targets.count - pending.count) returned, \(pending.count) fenced, took \(took)")
        let release = files.withLock { f -> FileDescriptor? in
            f[key]?.recalling -= 1
            guard let s = f[key], s.holders.isEmpty, s.recalling == 0 else { return nil }
            f.removeValue(forKey: key)
            return s.leased ? s.descriptor : nil
        }
        if let release { watcher?.release(release) }
    }

    /// Another process opened or truncated a leased file: recall everything on
    /// it, then let that process go (the lease goes with the last layout).
    func leaseBroke(_ file: SharedFile) async {
        logger.notice("lease broken on \(file.origin): recalling its layouts")
        await recall(file.key, range: nil, requester: nil, reason: .leaseBreak)
        // Layouts granted meanwhile (none: TRY_LATER) or a lease kept for other
        // reasons must not hold the opener up.
        let release = files.withLock { f -> FileDescriptor? in
            guard let s = f[file.key], s.leased else { return nil }
            f[file.key]?.leased = false
            return s.descriptor
        }
        if let release { watcher?.release(release) }
    }
}

/// A weak reference that can be captured before the object exists.
final class WeakBox<T: AnyObject>: @unchecked Sendable {
    weak var value: T?
}
