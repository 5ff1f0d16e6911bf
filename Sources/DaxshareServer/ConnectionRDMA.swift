import DaxshareVerbs

/// What the server does with RDMA itself on one client's connection, beside its messages:
/// two-sided READ and WRITE move data between the client's buffers and registered chunks
/// (`BouncePool`), layouts register file ranges in the connection's protection domain
/// (`SessionLayouts`), and NEGOTIATE offers layouts only where the connection's device can
/// serve them. Built from the verbs connection under the `MessageChannel`; a connection served
/// over a fake channel (host unit tests) has none, and then two-sided READ and WRITE answer
/// NOT_SUPPORTED and layouts are not offered.
struct ConnectionRDMA: Sendable {
    let connection: Connection
    /// The connection's chunks for two-sided data: at most `ServerContext.bounceChunks`.
    let bounce: BouncePool
    /// Where a large READ's bytes go from the file's mapping instead of through a chunk: an
    /// on-demand region per file in the connection's domain. Nil where the device does not
    /// page on demand.
    let mappedRegions: MappedRegions?

    init(connection: Connection, maxReadWriteSize: UInt32, readsFromMappings: Bool) {
        self.connection = connection
        self.mappedRegions = readsFromMappings ? MappedRegions(domain: connection.domain) : nil
        let chunk = min(Int(maxReadWriteSize), ServerContext.bounceChunkSize)
        self.bounce = BouncePool(domain: connection.domain, chunkSize: chunk, count: ServerContext.bounceChunks)
    }

    var domain: ProtectionDomain { connection.domain }
}
