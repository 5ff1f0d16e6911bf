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

    // Each operation on a range comes twice: with the wire's UInt64 values,
    // which are checked here and never trap whatever a client sends (a range
    // that wraps past 2^64 is .invalidArgument, one past what a file can hold
    // .fileTooLarge, or clipped where the operation allows it), and with Int
    // for the server's own callers and tests (negative is .invalidArgument).

    /// Reads up to `buffer.count` bytes at `offset` with pread on the shared
    /// descriptor: fewer at the end of the file (`endOfFile`), none past it.
    /// Needs read access.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> ReadResult {
        try read(at: offset, count: buffer.count, into: buffer)
    }

    /// `read` of `count` bytes into a buffer that may be longer: with room for one byte more,
    /// end of file is learnt from that byte instead of an fstat (`SharedFile.read`).
    public func read(at offset: UInt64, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> ReadResult {
        try checkReadable("read")
        return try shared.read(at: offset, count: count, into: buffer)
    }

    /// Where a READ's bytes lie in the file's mapping (`SharedFile.mappedRange`), for the
    /// NIC to send them from there; nil when it does not hold them. Needs read access.
    public func mappedRange(at offset: UInt64, count: Int) throws(FileSystemError) -> MappedRange? {
        try checkReadable("read")
        return try shared.mappedRange(at: offset, count: count)
    }

    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> ReadResult {
        try read(at: try unsigned(offset, "read"), into: buffer)
    }

    public func read(at offset: Int, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> ReadResult {
        try read(at: try unsigned(offset, "read"), count: count, into: buffer)
    }

    /// Writes `bytes` at `offset` with pwrite on the shared descriptor,
    /// growing the file (a gap reads as zeros). With `writeThrough`, or on a
    /// handle opened write-through, the bytes and any size change are durable
    /// on return; otherwise after `flush`. A range that wraps is
    /// .invalidArgument; one ending past Int.max .fileTooLarge.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, writeThrough: Bool = false) throws(FileSystemError) {
        try checkWritable("write")
        try shared.write(bytes, at: offset, writeThrough: writeThrough || self.writeThrough)
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, writeThrough: Bool = false) throws(FileSystemError) {
        try write(bytes, at: try unsigned(offset, "write"), writeThrough: writeThrough)
    }

    /// Grows (zeros) or truncates the file to `size` (its visible size while
    /// layouts reach past it); durable on return. Past Int.max: .fileTooLarge.
    /// Callers recall layouts over the cut range first (issue 6).
    public func setSize(_ size: UInt64) throws(FileSystemError) {
        try checkWritable("setSize")
        try shared.setSize(size)
    }

    public func setSize(_ size: Int) throws(FileSystemError) {
        try setSize(try unsigned(size, "setSize"))
    }

    /// Deallocates a range, which then reads as zeros; the size is
    /// unchanged, and the part past end of file is ignored. Durable on
    /// return. A range that wraps is .invalidArgument. Callers recall
    /// overlapping layouts first.
    public func punchHole(offset: UInt64, length: UInt64) throws(FileSystemError) {
        try checkWritable("punchHole")
        try shared.punchHole(offset: offset, length: length)
    }

    public func punchHole(offset: Int, length: Int) throws(FileSystemError) {
        try punchHole(offset: try unsigned(offset, "punchHole"), length: try unsigned(length, "punchHole"))
    }

    /// Allocates zeroed blocks for a range (fallocate); without `keepSize` a
    /// range past the end grows the file to its end. Durable on return. A
    /// range that wraps is .invalidArgument; one ending past Int.max
    /// .fileTooLarge. Needs write access; no layout is recalled (nothing a
    /// layout maps changes).
    public func allocate(offset: UInt64, length: UInt64, keepSize: Bool) throws(FileSystemError) {
        try checkWritable("allocate")
        try shared.allocate(offset: offset, length: length, keepSize: keepSize)
    }

    public func allocate(offset: Int, length: Int, keepSize: Bool = false) throws(FileSystemError) {
        try allocate(offset: try unsigned(offset, "allocate"), length: try unsigned(length, "allocate"), keepSize: keepSize)
    }

    /// Changes the file's permission bits and times through the shared
    /// descriptor and returns its status; durable on return. Needs no
    /// particular access (as chmod and utimes need none on an open file), but
    /// not a read-only export. Layouts stay as they are.
    public func setAttributes(_ change: FileAttributeChange) throws(FileSystemError) -> FileStatus {
        try checkOpen("setAttributes")
        if export.isReadOnly { throw FileSystemError(.readOnly, operation: "setAttributes on read-only export \(export.name)") }
        return try shared.setAttributes(change)
    }

    /// Makes a range (`length` 0: to the end of the file) durable, with the
    /// file's size and times. Any range is accepted: it is clipped to the
    /// file. Needs no particular access.
    public func flush(offset: UInt64, length: UInt64) throws(FileSystemError) {
        try checkOpen("flush")
        try shared.flush(offset: offset, length: length)
    }

    public func flush(offset: Int = 0, length: Int = 0) throws(FileSystemError) {
        try flush(offset: try unsigned(offset, "flush"), length: try unsigned(length, "flush"))
    }

    private func unsigned(_ value: Int, _ operation: String) throws(FileSystemError) -> UInt64 {
        guard value >= 0 else { throw FileSystemError(.invalidArgument, operation: "\(operation)(\(path)) with \(value)") }
        return UInt64(value)
    }

    private func checkOpen(_ operation: String) throws(FileSystemError) {
        if isClosed { throw FileSystemError(.staleFile, operation: "\(operation) on a closed handle (\(path))") }
    }

    private func checkReadable(_ operation: String) throws(FileSystemError) {
        try checkOpen(operation)
        if !canRead { throw FileSystemError(.accessDenied, operation: "\(operation) on a handle opened without read access (\(path))") }
    }

    private func checkWritable(_ operation: String) throws(FileSystemError) {
        try checkOpen(operation)
        if export.isReadOnly { throw FileSystemError(.readOnly, operation: "\(operation) on read-only export \(export.name)") }
        if !canWrite || !shared.file.isWritable {
            throw FileSystemError(.accessDenied, operation: "\(operation) on a handle opened without write access (\(path))")
        }
    }
}
