import DaxshareWire
import Synchronization

/// An open regular file on the server (a file id of the session).
///
/// Reads and writes of any size go through the session's `DataPath`, which splits them by the
/// negotiated `maxReadWriteSize` and keeps several requests in flight. Several calls on one
/// file may run concurrently; their order on the server is not defined (as with pread/pwrite
/// from several threads).
///
/// Durability follows PROTOCOL.md §6: a write is durable when it returns only with
/// `writeThrough` (or a file opened `.writeThrough`); otherwise after `flush()`.
public final class RemoteFile: Sendable {
    public let session: ClientSession
    /// As opened, relative to the export root.
    public let path: String
    public let fileId: UInt64
    public let flags: OpenFlags
    /// The attributes OPEN returned.
    public let attributesAtOpen: FileAttributes
    private let state: Mutex<(size: UInt64, closed: Bool)>

    init(session: ClientSession, path: String, fileId: UInt64, flags: OpenFlags, attributes: FileAttributes) {
        self.session = session
        self.path = path
        self.fileId = fileId
        self.flags = flags
        self.attributesAtOpen = attributes
        state = Mutex((attributes.size, false))
        session.dataPath.opened(fileId: fileId, flags: flags, size: attributes.size)
    }

    /// The size as last known to this client: at open, then after its own writes, set-size and
    /// stat calls. Other clients' changes show after `stat()`.
    public var size: UInt64 { state.withLock { $0.size } }

    public var dataPath: any DataPath { session.dataPath }

    /// Fresh attributes from the server (STAT by file id).
    public func stat() async throws(ClientError) -> FileAttributes {
        guard case let .stat(a) = try await session.dispatcher.call(.stat(.fileId(fileId))) else {
            throw .protocol("STAT answered with another body")
        }
        state.withLock { $0.size = a.size }
        return a
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many, fewer only at the end.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) async throws(ClientError) -> Int {
        try checkOpen()
        if buffer.isEmpty { return 0 }
        return try await dataPath.read(fileId: fileId, at: offset, into: SharedBuffer(buffer))
    }

    /// Reads up to `count` bytes at `offset`.
    public func read(at offset: UInt64, count: Int) async throws(ClientError) -> [UInt8] {
        guard count >= 0 else { throw .invalidArgument("negative count") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 64)
        defer { buffer.deallocate() }
        let n = try await read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        return Array(buffer[0..<n])
    }

    /// How this file's bytes moved so far ("one-sided via layout", "two-sided", or both).
    public var usage: DataPathUsage { dataPath.usage(fileId: fileId) }

    /// A hint that writes will reach `end` (a put of a file that size): the layout path asks
    /// for one layout covering them rather than a whole window.
    public func expectWrites(upTo end: UInt64) {
        dataPath.expectWrites(fileId: fileId, upTo: end)
    }

    /// Moves no more of this file's bytes one-sided.
    public func disableOneSided(reason: String) {
        dataPath.disableOneSided(fileId: fileId, reason: reason)
    }

    /// Writes all of `source` at `offset`.
    public func write(from source: UnsafeRawBufferPointer, at offset: UInt64, writeThrough: Bool = false) async throws(ClientError) {
        try checkOpen()
        if source.isEmpty { return }
        try await dataPath.write(fileId: fileId, at: offset, from: SharedBuffer(readOnly: source), writeThrough: writeThrough)
        let end = offset + UInt64(source.count)
        state.withLock { $0.size = max($0.size, end) }
    }

    /// Writes `bytes` at `offset`.
    public func write(at offset: UInt64, _ bytes: [UInt8], writeThrough: Bool = false) async throws(ClientError) {
        if bytes.isEmpty { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 64)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: bytes)
        try await write(from: UnsafeRawBufferPointer(buffer), at: offset, writeThrough: writeThrough)
    }

    /// Truncates or extends (with zeros); durable when it returns.
    public func setSize(_ size: UInt64) async throws(ClientError) -> FileAttributes {
        try checkOpen()
        // One-sided writes are committed first: the server returns our own layouts past a
        // smaller size without committing them.
        try await dataPath.commit(fileId: fileId)
        guard case let .setSize(a) = try await session.dispatcher.call(.setSize(SetSizeRequest(fileId: fileId, size: size)))
        else { throw .protocol("SET_SIZE answered with another body") }
        dataPath.sizeChanged(fileId: fileId, to: a.size)
        state.withLock { $0.size = a.size }
        return a
    }

    /// Allocates zeroed blocks for `[offset, offset + length)` (fallocate on the server); bytes
    /// already there stay. Without `keepSize` a range past the end grows the file to the range's
    /// end; with it the size stays. Durable when it returns. Needs the file open for writing.
    /// Returns the attributes after the change. A server (or a file system) without it gives
    /// `.status(.notSupported, .allocate)`.
    public func allocate(offset: UInt64, length: UInt64, keepSize: Bool) async throws(ClientError) -> FileAttributes {
        try checkOpen()
        try Self.checkRange(offset: offset, length: length)
        // One-sided writes are committed first, so the size the server answers with counts them.
        try await dataPath.commit(fileId: fileId)
        guard case let .allocate(a) = try await session.dispatcher.call(.allocate(AllocateRequest(
            fileId: fileId, range: ByteRange(offset: offset, length: length), flags: keepSize ? [.keepSize] : [])))
        else { throw .protocol("ALLOCATE answered with another body") }
        dataPath.sizeChanged(fileId: fileId, to: a.size)
        state.withLock { $0.size = a.size }
        return a
    }

    /// Deallocates `[offset, offset + length)`: it reads as zeros afterwards, the size does not
    /// change. Durable when it returns. Needs the file open for writing. The server ends this
    /// session's layouts on the file (PROTOCOL.md §4.15): one-sided writes are committed first,
    /// and later I/O asks for new layouts.
    public func punchHole(offset: UInt64, length: UInt64) async throws(ClientError) {
        try checkOpen()
        try Self.checkRange(offset: offset, length: length)
        try await dataPath.commit(fileId: fileId)
        do throws(ClientError) {
            _ = try await session.dispatcher.call(.punchHole(PunchHoleRequest(fileId: fileId, range: ByteRange(offset: offset, length: length))))
        } catch {
            // Refused before or after the server let go of them: either way, ask anew.
            dataPath.layoutsEnded(fileId: fileId)
            throw error
        }
        dataPath.layoutsEnded(fileId: fileId)
    }

    /// Changes the file's permission bits and times and returns its attributes after the
    /// change; durable when it returns. One-sided writes are committed first, so that their
    /// LAYOUTCOMMIT does not move a modification time set here. Needs no write access (as
    /// fchmod and futimens), but a writable export.
    public func setAttributes(_ change: AttributeChange) async throws(ClientError) -> FileAttributes {
        try checkOpen()
        try ClientSession.check(change)
        try await dataPath.commit(fileId: fileId)
        guard case let .setAttributes(a) = try await session.dispatcher.call(
            .setAttributes(SetAttributesRequest(.fileId(fileId), change)))
        else { throw .protocol("SET_ATTRIBUTES answered with another body") }
        if change.modificationTime != nil { dataPath.modificationTimeSet(fileId: fileId) }
        return a
    }

    /// What the codec refuses (PROTOCOL.md §3.9.3); a range past what a file can hold is the
    /// server's to answer (FILE_TOO_LARGE for ALLOCATE, INVALID_ARGUMENT for PUNCH_HOLE).
    private static func checkRange(offset: UInt64, length: UInt64) throws(ClientError) {
        guard length >= 1 else { throw .invalidArgument("an empty range") }
        guard length <= UInt64.max - offset else { throw .invalidArgument("the range \(offset)+\(length) wraps past 2^64") }
    }

    /// Makes this file id's acknowledged writes in the range (length 0: to the end), the size
    /// and the times durable: LAYOUTCOMMIT of what was written one-sided (with the new size),
    /// then FLUSH, only if something was written two-sided without write-through since the last
    /// one (after one-sided writes alone, the LAYOUTCOMMIT is the durability point: the server
    /// persists no whole file for them). Throws `.layoutLost` if bytes written one-sided were
    /// lost with a revoked layout.
    public func flush(offset: UInt64 = 0, length: UInt64 = 0) async throws(ClientError) {
        try checkOpen()
        try await dataPath.commit(fileId: fileId)
        guard dataPath.takeUnflushedWrites(fileId: fileId) else { return }
        do throws(ClientError) {
            _ = try await session.dispatcher.call(.flush(FlushRequest(fileId: fileId, offset: offset, length: length)))
        } catch {
            dataPath.markUnflushed(fileId: fileId)
            throw error
        }
    }

    /// LAYOUTCOMMIT of what was written one-sided (with the new size): durable when it returns.
    /// `flush` does this and FLUSH; this alone is enough when every two-sided write was
    /// write-through. Nothing to do on the two-sided path.
    /// `touchingTimes`: also move mtime and ctime now for writes that RDMA FLUSH made durable
    /// (which change no metadata; PROTOCOL.md §5.8), as closing the file would.
    public func commit(touchingTimes: Bool = false) async throws(ClientError) {
        try checkOpen()
        try await dataPath.commit(fileId: fileId)
        if touchingTimes { try await dataPath.touchTimes(fileId: fileId) }
    }

    /// Closes the file id: commits what was written one-sided (LAYOUTCOMMIT) and returns the
    /// file's layouts (LAYOUTRETURN), then CLOSE. Does not FLUSH two-sided writes. A second
    /// close does nothing. A failed commit is thrown after the file is closed.
    public func close() async throws(ClientError) {
        let first = state.withLock { s -> Bool in
            defer { s.closed = true }
            return !s.closed
        }
        guard first else { return }
        var failure: ClientError?
        do throws(ClientError) { try await dataPath.closing(fileId: fileId) } catch { failure = error }
        _ = try await session.dispatcher.call(.close(CloseRequest(fileId: fileId)))
        if let failure { throw failure }
    }

    private func checkOpen() throws(ClientError) {
        if state.withLock({ $0.closed }) { throw .invalidArgument("\(path) is closed") }
    }
}
