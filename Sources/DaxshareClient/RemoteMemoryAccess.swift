import DaxshareVerbs

/// Server memory that a layout extent grants: `length` bytes at `address`, reachable with `rkey`
/// on this connection only.
public struct RemoteSpan: Sendable, Hashable {
    public var address: UInt64
    public var rkey: UInt32
    public var length: UInt64
    public init(address: UInt64, rkey: UInt32, length: UInt64) {
        self.address = address
        self.rkey = rkey
        self.length = length
    }
}

/// Why a one-sided operation failed.
public enum OneSidedFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server's NIC refused the access: the memory region is gone (the layout was fenced),
    /// or the rkey, range or mode is wrong. On a reliable connection this also breaks the queue
    /// pair: nothing more, one- or two-sided, gets through this connection.
    case remoteAccess(String)
    /// Any other failure (the connection broke, a flushed work request).
    case failed(String)

    public var description: String {
        switch self {
        case let .remoteAccess(s): "remote access error: \(s)"
        case let .failed(s): s
        }
    }
}

/// RDMA READ and WRITE between the client's registered memory and the server's, the client
/// posting them (one-sided: no server CPU). The real one is the session's verbs connection;
/// host unit tests use a fake that copies memory.
public protocol RemoteMemoryAccess: Sendable {
    /// RDMA READ of `remote` into `local[offset, offset + remote.length)`.
    func read(into local: any RegisteredMemory, offset: Int, from remote: RemoteSpan) async throws(OneSidedFailure)
    /// RDMA WRITE of `local[offset, offset + remote.length)` to `remote`.
    func write(from local: any RegisteredMemory, offset: Int, to remote: RemoteSpan) async throws(OneSidedFailure)
    /// Whether `flush` and `writeAndFlush` can be posted (the queue pair was made with FLUSH).
    var canFlush: Bool { get }
    /// RDMA FLUSH of `remote` to persistence: the bytes earlier WRITEs placed there are durable
    /// when it returns.
    func flush(_ remote: RemoteSpan) async throws(OneSidedFailure)
    /// RDMA WRITE then RDMA FLUSH of the pages `flushing` covers, posted as one chain; durable
    /// when it returns.
    func writeAndFlush(from local: any RegisteredMemory, offset: Int, to remote: RemoteSpan,
                       flushing: RemoteSpan) async throws(OneSidedFailure)
}

extension RemoteMemoryAccess {
    public var canFlush: Bool { false }
    public func flush(_ remote: RemoteSpan) async throws(OneSidedFailure) {
        throw .failed("RDMA FLUSH is not available on this connection")
    }
    public func writeAndFlush(from local: any RegisteredMemory, offset: Int, to remote: RemoteSpan,
                              flushing: RemoteSpan) async throws(OneSidedFailure) {
        try await write(from: local, offset: offset, to: remote)
        try await flush(flushing)
    }
}

/// One-sided operations on a verbs connection; `local` must be memory registered on that
/// connection's protection domain (`VerbsBufferRegistrar`).
public struct VerbsRemoteAccess: RemoteMemoryAccess {
    public let connection: Connection
    public init(connection: Connection) { self.connection = connection }

    public func read(into local: any RegisteredMemory, offset: Int, from remote: RemoteSpan) async throws(OneSidedFailure) {
        let segment = try Self.segment(local, offset, remote)
        do {
            try await connection.read(into: segment, from: RemoteMemory(address: remote.address, rkey: remote.rkey, length: remote.length))
        } catch {
            throw Self.failure(error)
        }
    }

    public func write(from local: any RegisteredMemory, offset: Int, to remote: RemoteSpan) async throws(OneSidedFailure) {
        let segment = try Self.segment(local, offset, remote)
        do {
            try await connection.write(from: segment, to: RemoteMemory(address: remote.address, rkey: remote.rkey, length: remote.length))
        } catch {
            throw Self.failure(error)
        }
    }

    public var canFlush: Bool { connection.canFlush }

    public func flush(_ remote: RemoteSpan) async throws(OneSidedFailure) {
        do {
            try await connection.flush(RemoteMemory(address: remote.address, rkey: remote.rkey, length: remote.length))
        } catch {
            throw Self.failure(error)
        }
    }

    public func writeAndFlush(from local: any RegisteredMemory, offset: Int, to remote: RemoteSpan,
                              flushing: RemoteSpan) async throws(OneSidedFailure) {
        let segment = try Self.segment(local, offset, remote)
        do {
            try await connection.writeAndFlush(
                from: CollectionOfOne(segment), to: RemoteMemory(address: remote.address, rkey: remote.rkey, length: remote.length),
                flushing: RemoteMemory(address: flushing.address, rkey: flushing.rkey, length: flushing.length))
        } catch {
            throw Self.failure(error)
        }
    }

    private static func segment(_ local: any RegisteredMemory, _ offset: Int, _ remote: RemoteSpan) throws(OneSidedFailure) -> ScatterGatherElement {
        guard let m = local as? VerbsRegisteredMemory else { throw .failed("local memory is not registered with verbs") }
        guard offset >= 0, remote.length <= UInt64(m.region.length - offset) else {
            throw .failed("\(remote.length) bytes at \(offset) pass the end of the local buffer")
        }
        return m.region.segment(offset: offset, length: Int(remote.length))
    }

    private static func failure(_ error: any Error) -> OneSidedFailure {
        if let v = error as? VerbsError, v.isRemoteAccessError { return .remoteAccess("\(v)") }
        return .failed("\(error)")
    }
}
