/// A caller's buffer handed across tasks. The caller keeps it alive and leaves it alone until
/// the call it was passed to returns; chunks of it are touched by disjoint tasks only.
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
/// Today there is one implementation, `TwoSidedDataPath`: READ/WRITE requests, the server
/// doing the RDMA. The one-sided path will be a second implementation that holds layouts per
/// file, issues RDMA READ/WRITE itself and commits with LAYOUTCOMMIT; `RemoteFile` picks one
/// per file and falls back to two-sided when a layout is refused or revoked. Both see the
/// same calls, so `RemoteFile`, `Transfer` and the CLI do not change.
public protocol DataPath: Sendable {
    /// A short name for logs, reports and the benchmarks ("two-sided", later "layout").
    var name: String { get }

    /// Reads up to `destination.count` bytes at `offset`. Returns the bytes read: fewer only
    /// at the end of the file.
    func read(fileId: UInt64, at offset: UInt64, into destination: SharedBuffer) async throws(ClientError) -> Int

    /// Writes all of `source` at `offset`; when it returns, the bytes are visible to every
    /// reader, and durable too if `writeThrough` (else after `flush`).
    func write(fileId: UInt64, at offset: UInt64, from source: SharedBuffer, writeThrough: Bool) async throws(ClientError)
}
