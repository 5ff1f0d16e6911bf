import DaxsharePmem
import DaxshareWire
import Glibc
import Logging
import Synchronization
import SystemPackage

/// Finds a file's `FileLayouts` (PROTOCOL.md §5): one per open `SharedFile`, made on first
/// use and dropped when the file table closes the file (no layout can outlive its file: each
/// holds a handle on it). Also the lease-break entry point: the watcher names a descriptor.
final class LayoutRegistry: Sendable {
    private struct Entry {
        let file: ObjectIdentifier
        let descriptor: FileDescriptor
        let layouts: FileLayouts
    }
    private let entries = Mutex<[FileKey: Entry]>([:])
    private let recallIds = RecallIDs()
    let deadline: Duration
    private let counters: ServerCounters
    private let logger: Logger
    private let watcher: LeaseWatcher?

    /// `leases` nil: layouts live without an OS lease (`--no-leases`).
    init(deadlineMs: UInt32, counters: ServerCounters, logger: Logger, leases: FileLease.Mechanism?) {
        self.deadline = .milliseconds(Int(deadlineMs))
        self.counters = counters
        self.logger = logger
        guard let preferred = leases else {
            watcher = nil
            return
        }
        let box = WeakBox<LayoutRegistry>()
        do {
            watcher = try LeaseWatcher(logger: logger, preferring: preferred) { fd in
                guard let layouts = box.value?.layouts(descriptor: fd) else { return }
                Task { await layouts.leaseBroke() }
            }
        } catch {
            logger.error("no lease-break watcher, local opens will not recall layouts: \(error)")
            watcher = nil
        }
        box.value = self
    }

    /// The file's layout state, made on first use.
    func layouts(of file: SharedFile) -> FileLayouts {
        entries.withLock { e in
            if let entry = e[file.key], entry.file == ObjectIdentifier(file) { return entry.layouts }
            let lease: any LayoutLease = watcher.map { WatchedLease(watcher: $0, descriptor: file.descriptor) } ?? NoLease()
            let layouts = FileLayouts(
                name: file.origin, lease: lease, deadline: deadline, recallIds: recallIds, counters: counters, logger: logger)
            e[file.key] = Entry(file: ObjectIdentifier(file), descriptor: file.descriptor, layouts: layouts)
            file.routeOwnChanges(through: layouts)
            return layouts
        }
    }

    /// The layout state of an open file, if it has any.
    func existingLayouts(_ key: FileKey) -> FileLayouts? { entries.withLock { $0[key]?.layouts } }

    private func layouts(descriptor: FileDescriptor) -> FileLayouts? {
        entries.withLock { $0.values.first { $0.descriptor == descriptor }?.layouts }
    }

    /// The file table closed `file` (its last handle, so its last layout, is gone).
    func forget(_ file: SharedFile) {
        entries.withLock { e in
            if e[file.key]?.file == ObjectIdentifier(file) { e.removeValue(forKey: file.key) }
        }
    }
}

/// The lease on a file's one descriptor, with breaks sent to the watcher's thread.
private struct WatchedLease: LayoutLease {
    let watcher: LeaseWatcher
    let descriptor: FileDescriptor
    func take() throws { _ = try watcher.lease(descriptor) }
    func release() { watcher.release(descriptor) }
    var breaksOnOwnChanges: Bool { watcher.mechanism(of: descriptor) == .delegation }
    func fileIsLinked() -> Bool {
        var st = stat()
        return fstat(descriptor.rawValue, &st) != 0 || st.st_nlink > 0  // unknown: assume linked
    }
}

/// `--no-leases`: layouts live without an OS lease (local opens do not recall them).
private struct NoLease: LayoutLease {
    func take() {}
    func release() {}
    var breaksOnOwnChanges: Bool { false }
    func fileIsLinked() -> Bool { true }
}

/// A weak reference that can be captured before the object exists.
final class WeakBox<T: AnyObject>: @unchecked Sendable {  // only `value` is mutable, set once before use
    weak var value: T?
}
