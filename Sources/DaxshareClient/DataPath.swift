import DaxshareWire

/// A caller's buffer handed across tasks. The caller keeps it alive and leaves it alone until
/// the call it was passed to returns; chunks of it are touched by disjoint tasks only.
// @unchecked: the caller owns the memory, and tasks touch disjoint chunks (above).
public struct SharedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawBufferPointer
    public init(_ pointer: UnsafeMutableRawBufferPointer) { self.pointer = pointer }
    public init(readOnly pointer: UnsafeRawBufferPointer) { self.pointer = UnsafeMutableRawBufferPointer(mutating: pointer) }
    public var count: Int { pointer.count }
    public func slice(_ offset: Int, _ length: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: pointer[offset..<(offset + length)])
    }
}

/// How an open file's bytes move between the client and the server: the seam where layouts
/// (PROTOCOL.md §5, issue 5) plug in.
///
/// Two implementations: `TwoSidedDataPath` (READ/WRITE requests, the server doing the RDMA)
/// and `LayoutDataPath` (layouts per file, the client issuing RDMA READ/WRITE itself and
/// committing with LAYOUTCOMMIT, falling back to two-sided per I/O when a layout is refused or
/// recalled). `RemoteFile` calls the lifecycle hooks (opened, commit, closing) so that a path
/// with per-file state can keep it; the two-sided path ignores them.
public protocol DataPath: Sendable {
    /// A short name for logs, reports and the benchmarks ("two-sided", "one-sided via layout").
    var name: String { get }

    /// Reads up to `destination.count` bytes at `offset`. Returns the bytes read: fewer only
    /// at the end of the file.
    func read(fileId: UInt64, at offset: UInt64, into destination: SharedBuffer) async throws(ClientError) -> Int

    /// Writes all of `source` at `offset`; when it returns, the bytes are visible to every
    /// reader of this client (to others once committed), and durable too if `writeThrough`
    /// (else after `commit` and FLUSH).
    func write(fileId: UInt64, at offset: UInt64, from source: SharedBuffer, writeThrough: Bool) async throws(ClientError)

    /// A file id was opened with `flags`; `size` is its visible size then.
    func opened(fileId: UInt64, flags: OpenFlags, size: UInt64)

    /// The caller expects to write up to `end` (a put of a file of that size): a hint for how
    /// large a layout to ask for.
    func expectWrites(fileId: UInt64, upTo end: UInt64)

    /// Makes everything this path wrote to the file and the size it reached durable (for
    /// layouts: LAYOUTCOMMIT of the dirty ranges with NEW_SIZE). Throws `.layoutRevoked` when
    /// bytes already reported written were lost with a revoked layout.
    func commit(fileId: UInt64) async throws(ClientError)

    /// The file's size was set to `size` (SET_SIZE): state beyond it is stale.
    func sizeChanged(fileId: UInt64, to size: UInt64)

    /// The server ended every layout this session held on the file without a LAYOUTRETURN
    /// (PUNCH_HOLE returns them implicitly, PROTOCOL.md §4.15): forget them, ask anew.
    func layoutsEnded(fileId: UInt64)

    /// The file id is about to be closed: commit, give back per-file resources (LAYOUTRETURN),
    /// forget the file. Called once; CLOSE follows whatever it throws.
    func closing(fileId: UInt64) async throws(ClientError)

    /// Moves no more of this file's bytes one-sided (after a revocation, the caller re-sends).
    func disableOneSided(fileId: UInt64, reason: String)

    /// How this file's bytes moved so far.
    func usage(fileId: UInt64) -> DataPathUsage

    /// Whether a FLUSH would make durable anything of this file id's that `commit` does not:
    /// a two-sided write without write-through since the last call, which clears the mark
    /// (`markUnflushed` sets it again if the FLUSH fails). Writes that all went one-sided are
    /// durable with their LAYOUTCOMMIT, size and times included (PROTOCOL.md §6).
    func takeUnflushedWrites(fileId: UInt64) -> Bool

    /// A FLUSH that `takeUnflushedWrites` asked for failed: its writes are still not durable.
    func markUnflushed(fileId: UInt64)

    /// The file's modification time was just set explicitly (SET_ATTRIBUTES, after `commit`):
    /// no later commit of the writes before it may move it (the TOUCH of PROTOCOL.md §5.8).
    func modificationTimeSet(fileId: UInt64)

    /// After `commit`: sets mtime and ctime for writes whose commit changed no metadata (RDMA
    /// FLUSH), as the return of their layout would.
    func touchTimes(fileId: UInt64) async throws(ClientError)
}

extension DataPath {
    public func opened(fileId: UInt64, flags: OpenFlags, size: UInt64) {}
    public func expectWrites(fileId: UInt64, upTo end: UInt64) {}
    public func commit(fileId: UInt64) async throws(ClientError) {}
    public func sizeChanged(fileId: UInt64, to size: UInt64) {}
    public func layoutsEnded(fileId: UInt64) {}
    public func closing(fileId: UInt64) async throws(ClientError) {}
    public func disableOneSided(fileId: UInt64, reason: String) {}
    public func usage(fileId: UInt64) -> DataPathUsage { DataPathUsage(defaultPath: name) }
    /// A path that does not track its writes always FLUSHes.
    public func takeUnflushedWrites(fileId: UInt64) -> Bool { true }
    public func markUnflushed(fileId: UInt64) {}
    public func modificationTimeSet(fileId: UInt64) {}
    public func touchTimes(fileId: UInt64) async throws(ClientError) {}
}

/// How one file's bytes moved: what `-v` prints and the transfer result reports.
public struct DataPathUsage: Sendable, Hashable, CustomStringConvertible {
    public var oneSidedBytes: UInt64 = 0
    public var twoSidedBytes: UInt64 = 0
    /// Why layouts were not (or no longer) used for this file, if they were refused or lost.
    public var fallbackReason: String?
    /// Layout recalls this file's layouts answered.
    public var recalls = 0
    /// Commits made durable by RDMA FLUSH rather than LAYOUTCOMMIT (PROTOCOL.md §5.8).
    public var flushCommits = 0
    /// The path's name, for a file that moved no bytes.
    public var defaultPath: String

    public init(oneSidedBytes: UInt64 = 0, twoSidedBytes: UInt64 = 0, fallbackReason: String? = nil, recalls: Int = 0,
                defaultPath: String) {
        self.oneSidedBytes = oneSidedBytes
        self.twoSidedBytes = twoSidedBytes
        self.fallbackReason = fallbackReason
        self.recalls = recalls
        self.defaultPath = defaultPath
    }

    public static let oneSidedName = "one-sided via layout"
    public static let twoSidedName = "two-sided"

    /// "one-sided via layout", "two-sided", or both with their byte counts; with the reason
    /// for falling back, if any.
    public var description: String {
        var text: String
        switch (oneSidedBytes > 0, twoSidedBytes > 0) {
        case (true, false): text = Self.oneSidedName
        case (false, true): text = Self.twoSidedName
        case (true, true): text = "\(Self.oneSidedName) (\(oneSidedBytes) bytes) and \(Self.twoSidedName) (\(twoSidedBytes) bytes)"
        case (false, false): text = defaultPath
        }
        if let fallbackReason { text += " (fell back to two-sided: \(fallbackReason))" }
        return text
    }
}
