import DaxshareWire

/// LAYOUTGET, LAYOUTCOMMIT and LAYOUTRETURN by hand, beside the layout engine (PROTOCOL.md §5).
///
/// For tools that manage or measure layouts themselves (`daxshare-bench`'s control-path
/// figures). The engine behind `RemoteFile.read`/`write` does not know these layouts: a recall
/// of one is acknowledged BAD_STATEID and left to the server's deadline, so return them promptly.
extension ClientSession {
    /// LAYOUTGET for `[offset, offset + length)` of an open file.
    public func layoutGet(_ file: RemoteFile, _ iomode: LayoutIOMode, offset: UInt64, length: UInt64)
        async throws(ClientError) -> LayoutGetResponse
    {
        let request = LayoutGetRequest(fileId: file.fileId, offset: offset, length: length, minLength: length, iomode: iomode)
        guard case let .layoutGet(reply) = try await dispatcher.call(.layoutGet(request)) else {
            throw .protocol("LAYOUTGET answered with another body")
        }
        return reply
    }

    /// LAYOUTCOMMIT of `ranges` (and a new size): the reply is the durability point.
    public func layoutCommit(_ stateid: LayoutStateid, ranges: [ByteRange], newSize: UInt64? = nil)
        async throws(ClientError) -> LayoutCommitResponse
    {
        let request = LayoutCommitRequest(stateid: stateid, newSize: newSize, ranges: ranges)
        guard case let .layoutCommit(reply) = try await dispatcher.call(.layoutCommit(request)) else {
            throw .protocol("LAYOUTCOMMIT answered with another body")
        }
        return reply
    }

    /// LAYOUTRETURN of the whole layout.
    public func layoutReturn(_ stateid: LayoutStateid) async throws(ClientError) {
        _ = try await dispatcher.call(.layoutReturn(LayoutReturnRequest(stateid: stateid)))
    }
}
