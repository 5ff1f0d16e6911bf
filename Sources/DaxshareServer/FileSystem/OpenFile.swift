import Synchronization
import SystemPackage

/// A client's handle on an open file: the shared entry plus what this open
/// may do. Closing it (or dropping the last reference) releases its share of
/// the entry; the entry closes with its last handle.
public final class OpenFile: Sendable {
    public let shared: SharedFile
    public let export: Export
    /// The path it was opened by, for logs.
    public let path: ClientPath
    public let canRead: Bool
    public let canWrite: Bool
    /// Every write through this handle is durable before it returns.
    public let writeThrough: Bool
    private let table: FileTable
    private let closed = Mutex(false)

    init(shared: SharedFile, export: Export, path: ClientPath, options: FileOpenOptions, table: FileTable) {
        self.shared = shared
        self.export = export
        self.path = path
        self.canRead = options.read
        self.canWrite = options.write
        self.writeThrough = options.writeThrough
        self.table = table
    }

    deinit {
        close()
    }

    /// Releases the handle. Idempotent. Does not flush.
    public func close() {
        let wasClosed = closed.withLock { closed in
            defer { closed = true }
            return closed
        }
        if !wasClosed { table.release(shared) }
    }

    public var isClosed: Bool { closed.withLock { $0 } }

    /// The file's status (`fstat` on the shared descriptor).
    public func status() throws(FileSystemError) -> FileStatus {
        try checkOpen("stat")
        return try shared.status()
    }

    /// Reads up to `buffer.count` bytes at `offset` through the shared
    /// mapping (fewer at end of file). Needs read access.
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> ReadResult {
        try checkOpen("read")
        if !canRead { throw FileSystemError(.accessDenied, operation: "read on a handle opened without read access (\(path))") }
        return try shared.read(at: offset, into: buffer)
    }

    /// Writes `bytes` at `offset` through the shared mapping, growing the
    /// file (a gap reads as zeros). With `writeThrough`, or on a handle
    /// opened write-through, the bytes and any size change are durable on
    /// return; otherwise after `flush`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, writeThrough: Bool = false) throws(FileSystemError) {
        try checkWritable("write")
        try shared.write(bytes, at: offset, writeThrough: writeThrough || self.writeThrough)
    }

    /// Grows (zeros) or truncates the file; durable on return.
    /// Callers recall layouts over the cut range first (issue 6).
    public func setSize(_ size: Int) throws(FileSystemError) {
        try checkWritable("setSize")
        try shared.setSize(size)
    }

    /// Deallocates a range, which then reads as zeros; the size is
    /// unchanged. Durable on return. Callers recall overlapping layouts first.
    public func punchHole(offset: Int, length: Int) throws(FileSystemError) {
        try checkWritable("punchHole")
        try shared.punchHole(offset: offset, length: length)
    }

    /// Makes a range (`length` 0: to the end of the file) durable, with the
    /// file's size and times. Needs no particular access.
    public func flush(offset: Int = 0, length: Int = 0) throws(FileSystemError) {
        try checkOpen("flush")
        try shared.flush(offset: offset, length: length)
    }

    private func checkOpen(_ operation: String) throws(FileSystemError) {
        if isClosed { throw FileSystemError(.staleFile, operation: "\(operation) on a closed handle (\(path))") }
    }

    private func checkWritable(_ operation: String) throws(FileSystemError) {
        try checkOpen(operation)
        if export.isReadOnly { throw FileSystemError(.readOnly, operation: "\(operation) on read-only export \(export.name)") }
        if !canWrite || !shared.file.isWritable {
            throw FileSystemError(.accessDenied, operation: "\(operation) on a handle opened without write access (\(path))")
        }
    }
}
