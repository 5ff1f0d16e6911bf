import Synchronization

/// A file id as one session's client sees it.
public struct FileID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "#\(rawValue)" }
}

/// One session's open files: its ids mapped to handles in the shared
/// `FileTable`. Ids count up from 1 and are never reused within a session,
/// so a stale id can't reach a newer file.
public final class SessionFiles: Sendable {
    private struct State {
        var next: UInt64 = 1
        var files: [FileID: OpenFile] = [:]
    }

    private let state = Mutex(State())
    /// The most files the session may hold open (the server's `maxOpenFiles`).
    public let maxOpenFiles: Int

    public init(maxOpenFiles: Int = .max) {
        self.maxOpenFiles = maxOpenFiles
    }

    /// Whether another file may be opened; check before opening, since
    /// `insert` closes what it cannot take.
    public var isFull: Bool { state.withLock { $0.files.count >= maxOpenFiles } }

    /// Registers a handle and returns its id. Over `maxOpenFiles` the handle
    /// is closed and `tooMany` thrown.
    public func insert(_ file: OpenFile) throws(FileSystemError) -> FileID {
        let id = state.withLock { state -> FileID? in
            guard state.files.count < maxOpenFiles else { return nil }
            let id = FileID(rawValue: state.next)
            state.next += 1
            state.files[id] = file
            return id
        }
        guard let id else {
            file.close()
            throw FileSystemError(.tooMany, operation: "open(\(file.path)): \(maxOpenFiles) files already open in the session")
        }
        return id
    }

    /// The handle for an id; `staleFile` if the session has none.
    public func file(_ id: FileID) throws(FileSystemError) -> OpenFile {
        guard let file = state.withLock({ $0.files[id] }) else {
            throw FileSystemError(.staleFile, operation: "unknown file id \(id)")
        }
        return file
    }

    /// Closes and forgets an id; `staleFile` if the session has none.
    public func close(_ id: FileID) throws(FileSystemError) {
        guard let file = state.withLock({ $0.files.removeValue(forKey: id) }) else {
            throw FileSystemError(.staleFile, operation: "close of unknown file id \(id)")
        }
        file.close()
    }

    /// Closes everything, as when the session ends.
    public func closeAll() {
        let files = state.withLock { state in
            defer { state.files.removeAll() }
            return Array(state.files.values)
        }
        for file in files { file.close() }
    }

    public var count: Int { state.withLock { $0.files.count } }

    /// Every file open now.
    public var openFiles: [OpenFile] { state.withLock { Array($0.files.values) } }
}
