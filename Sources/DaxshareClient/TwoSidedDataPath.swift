import DaxshareWire

/// SMB Direct-style data movement (PROTOCOL.md §4.19–4.20): each READ or WRITE request names a
/// slot of the client's registered bounce memory; the server RDMA-WRITEs the file's bytes into
/// it (READ) or RDMA-READs them from it (WRITE), then replies. The reply follows the RDMA on the
/// same queue pair, so when it arrives the bytes are in place.
///
/// A large read or write is split into chunks of at most one slot (≤ maxReadWriteSize), with up
/// to `queueDepth` requests in flight: the server's RDMA for one chunk overlaps the round trip
/// of the next.
final class TwoSidedDataPath: DataPath {
    let name = "two-sided"
    let dispatcher: RequestDispatcher
    let pool: BouncePool
    let queueDepth: Int
    /// Caller memory READ and WRITE name directly (zero-copy), skipping the pool.
    let callerBuffers: CallerBuffers?

    init(dispatcher: RequestDispatcher, pool: BouncePool, queueDepth: Int, callerBuffers: CallerBuffers? = nil) {
        self.dispatcher = dispatcher
        self.pool = pool
        self.queueDepth = queueDepth
        self.callerBuffers = callerBuffers
    }

    var chunkSize: Int { pool.slotSize }

    func read(fileId: UInt64, at offset: UInt64, into destination: SharedBuffer) async throws(ClientError) -> Int {
        let chunks = try ChunkPlan.split(offset: offset, length: destination.count, maxChunk: chunkSize)
        let counts = try await runPipelined(count: chunks.count, depth: queueDepth) { [self] i in
            await readChunk(fileId: fileId, chunks[i], into: destination)
        }.get()
        return ChunkPlan.contiguousBytes(requested: chunks, completed: counts)
    }

    func write(fileId: UInt64, at offset: UInt64, from source: SharedBuffer, writeThrough: Bool) async throws(ClientError) {
        let chunks = try ChunkPlan.split(offset: offset, length: source.count, maxChunk: chunkSize)
        _ = try await runPipelined(count: chunks.count, depth: queueDepth) { [self] i in
            await writeChunk(fileId: fileId, chunks[i], from: source, writeThrough: writeThrough)
        }.get()
    }

    private func readChunk(fileId: UInt64, _ chunk: Chunk, into destination: SharedBuffer) async -> Result<Int, ClientError> {
        do throws(ClientError) {
            if let (memory, at) = callerBuffers?.find(destination.slice(chunk.bufferOffset, chunk.length), receiving: true) {
                // Zero-copy: the server writes straight into the caller's registered memory.
                let request = ReadRequest(fileId: fileId, offset: chunk.fileOffset,
                                          descriptors: [memory.descriptor(offset: at, length: chunk.length)])
                return .success(try await read(request, chunk))
            }
            let slot = try await pool.acquire()
            defer { pool.release(slot) }
            let request = ReadRequest(fileId: fileId, offset: chunk.fileOffset, descriptors: [slot.descriptor(length: chunk.length)])
            let n = try await read(request, chunk)
            if n > 0 {
                destination.slice(chunk.bufferOffset, n).copyMemory(from: UnsafeRawBufferPointer(rebasing: slot.bytes[0..<n]))
            }
            return .success(n)
        } catch {
            return .failure(error)
        }
    }

    /// Sends one READ; the bytes it says it read.
    private func read(_ request: ReadRequest, _ chunk: Chunk) async throws(ClientError) -> Int {
        guard case let .read(reply) = try await dispatcher.call(.read(request)) else {
            throw .protocol("READ answered with another command's body")
        }
        let n = Int(reply.bytesRead)
        guard n <= chunk.length else {
            throw .protocol("READ of \(chunk.length) bytes answered with \(n) bytes read")
        }
        return n
    }

    private func writeChunk(fileId: UInt64, _ chunk: Chunk, from source: SharedBuffer, writeThrough: Bool) async -> Result<Void, ClientError> {
        do throws(ClientError) {
            let flags: WriteFlags = writeThrough ? [.writeThrough] : []
            if let (memory, at) = callerBuffers?.find(source.slice(chunk.bufferOffset, chunk.length), receiving: false) {
                // Zero-copy: the server reads straight from the caller's registered memory.
                let request = WriteRequest(fileId: fileId, offset: chunk.fileOffset, flags: flags,
                                           descriptors: [memory.descriptor(offset: at, length: chunk.length)])
                return .success(try await write(request, chunk))
            }
            let slot = try await pool.acquire()
            defer { pool.release(slot) }
            slot.bytes.copyMemory(from: UnsafeRawBufferPointer(source.slice(chunk.bufferOffset, chunk.length)))
            let request = WriteRequest(fileId: fileId, offset: chunk.fileOffset, flags: flags,
                                       descriptors: [slot.descriptor(length: chunk.length)])
            return .success(try await write(request, chunk))
        } catch {
            return .failure(error)
        }
    }

    /// Sends one WRITE, which must write the whole chunk.
    private func write(_ request: WriteRequest, _ chunk: Chunk) async throws(ClientError) {
        guard case let .write(reply) = try await dispatcher.call(.write(request)) else {
            throw .protocol("WRITE answered with another command's body")
        }
        guard Int(reply.bytesWritten) == chunk.length else {
            throw .protocol("WRITE of \(chunk.length) bytes answered with \(reply.bytesWritten) bytes written")
        }
    }
}
