import DaxshareWire
#if canImport(Glibc)
import Glibc
#endif

/// What a `get` or `put` moved.
public struct TransferResult: Sendable, Hashable {
    public var bytes: UInt64
    /// SHA-256 of the bytes moved, in order; empty when the transfer was asked not to compute
    /// it (`digest: false`: hashing every byte costs more CPU than moving it one-sided).
    public var sha256: [UInt8]
    /// Which data path moved them: "one-sided via layout", "two-sided", or both (with byte
    /// counts and why it fell back); see `DataPathUsage`.
    public var dataPath: String
    public var sha256Hex: String { StreamDigest.hex(sha256) }
}

/// Called after each batch: bytes done, and the total when it is known (a local pipe has none).
public typealias TransferProgress = @Sendable (_ done: UInt64, _ total: UInt64?) -> Void

/// How `put` creates the remote file.
public struct PutOptions: Sendable, Hashable {
    /// Every write durable before its reply (else one FLUSH at the end makes the file durable).
    public var writeThrough = false
    /// Fail with `.exists` rather than replace an existing file.
    public var exclusive = false
    /// Compute the SHA-256 of the bytes sent (`TransferResult.sha256`).
    public var digest = true
    /// Permission bits of a created file.
    public var mode: UInt32 = 0o644
    public init(writeThrough: Bool = false, exclusive: Bool = false, mode: UInt32 = 0o644) {
        self.writeThrough = writeThrough
        self.exclusive = exclusive
        self.mode = mode
    }
}

/// Streaming copies between a local file and the server, in batches of one bounce pool's worth
/// (queueDepth chunks, each ≤ maxReadWriteSize, in flight at once), double-buffered so the
/// local read or write of one batch overlaps the network transfer of the next.
extension ClientSession {
    /// Registers a transfer's two batch buffers, so its reads and writes are zero-copy; where
    /// registration fails (memlock limits) the transfer copies through staging slots instead.
    func registerBatchBuffers(_ a: UnsafeMutableRawBufferPointer, _ b: UnsafeMutableRawBufferPointer) -> [BufferRegistration] {
        var out: [BufferRegistration] = []
        for buffer in [a, b] {
            do throws(ClientError) { out.append(try register(buffer)) } catch { break }
        }
        return out
    }

    /// Bytes one batch moves: every bounce slot in use once (two-sided), or every one-sided
    /// work request of the queue depth (layouts).
    public var transferBatchSize: Int {
        let g = ChunkPlan.bounceGeometry(maxReadWriteSize: maxReadWriteSize, budget: configuration.bounceBufferBytes,
                                         queueDepth: configuration.queueDepth)
        if let layouts = dataPath as? LayoutDataPath { return max(g.slotSize * g.slotCount, layouts.batchSize) }
        return g.slotSize * g.slotCount
    }

    /// False once the connection has ended (closed, broken by the server or by a failed
    /// one-sided operation).
    public var isConnected: Bool { dispatcher.router.closedError == nil }

    /// Copies a remote file to `local` from start to end of file.
    public func get(_ remotePath: String, to local: LocalFile, digest: Bool = true,
                    progress: TransferProgress? = nil) async throws(ClientError) -> TransferResult {
        let file = try await open(remotePath, flags: [.read])
        do throws(ClientError) {
            var result = try await Self.download(file, to: local, batch: transferBatchSize, digest: digest, executor: configuration.eventLoop, progress: progress)
            result.dataPath = file.usage.description
            try await file.close()
            return result
        } catch {
            try? await file.close()
            throw error
        }
    }

    /// Copies a remote file to a local path. The remote file is opened first, so a missing one
    /// leaves nothing behind locally; a partly written local file is removed on failure.
    public func get(_ remotePath: String, toPath localPath: String, digest: Bool = true,
                    progress: TransferProgress? = nil) async throws(ClientError) -> TransferResult {
        let file = try await open(remotePath, flags: [.read])
        do throws(ClientError) {
            let local = try LocalFile.create(localPath)
            var result: TransferResult
            do throws(ClientError) {
                result = try await Self.download(file, to: local, batch: transferBatchSize, digest: digest, executor: configuration.eventLoop, progress: progress)
                result.dataPath = file.usage.description
                local.close()
            } catch {
                local.close()
                _ = unlink(localPath)
                throw error
            }
            try await file.close()
            return result
        } catch {
            try? await file.close()
            throw error
        }
    }

    /// Copies `local` (to its end) to a remote file, created or truncated, and makes it durable
    /// before returning: LAYOUTCOMMIT of what moved one-sided, FLUSH of what moved two-sided (or
    /// every write durable with write-through).
    ///
    /// If a layout is revoked before its bytes were committed (`.layoutLost`) and the
    /// connection still works, the file is sent again from the start two-sided — possible when
    /// `local` is a regular file (it is read again); from a pipe the error is thrown: the
    /// remote file is incomplete and must not be trusted.
    public func put(_ local: LocalFile, to remotePath: String, options: PutOptions = .init(),
                    progress: TransferProgress? = nil) async throws(ClientError) -> TransferResult {
        var flags: OpenFlags = [.write, .create, .truncate]
        if options.exclusive { flags.insert(.exclusive) }
        if options.writeThrough { flags.insert(.writeThrough) }
        let file = try await open(remotePath, flags: flags, mode: options.mode)
        if let size = local.size { file.expectWrites(upTo: size) }
        do throws(ClientError) {
            var result: TransferResult
            do throws(ClientError) {
                result = try await Self.upload(local, to: file, batch: transferBatchSize, writeThrough: options.writeThrough,
                                               digest: options.digest, executor: configuration.eventLoop, progress: progress)
                // The commit (and FLUSH) is the durability point: success only after it.
                if options.writeThrough { try await file.commit() } else { try await file.flush() }
            } catch {
                guard case .layoutLost = error, isConnected, local.rewind() else { throw error }
                file.disableOneSided(reason: "\(error); sent again two-sided")
                result = try await Self.upload(local, to: file, batch: transferBatchSize, writeThrough: options.writeThrough,
                                               digest: options.digest, executor: configuration.eventLoop, progress: progress)
                if !options.writeThrough { try await file.flush() }
            }
            result.dataPath = file.usage.description
            try await file.close()
            return result
        } catch {
            try? await file.close()
            throw error
        }
    }

    /// `executor`: where the batches' tasks run (the connection's event loop: no hop per
    /// completion).
    static func download(_ file: RemoteFile, to local: LocalFile, batch: Int, digest hashing: Bool = true,
                         executor: (any TaskExecutor)? = nil,
                         progress: TransferProgress?) async throws(ClientError) -> TransferResult {
        let total = file.size
        // No larger than the file needs (whole pages, one byte more so that a short first read
        // says "end of file" without another round trip): registering the two buffers pins and
        // zeroes every page of them, ~26 ms of a 4 KiB get's ~0.5 s at 4 MiB each in the
        // testbed. A file that grows meanwhile is still read to its end, a batch at a time.
        let batch = min(batch, LayoutPlan.roundUp(Int(clamping: total) &+ 1, ChunkPlan.pageSize))
        let a = UnsafeMutableRawBufferPointer.allocate(byteCount: batch, alignment: 4096)
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: batch, alignment: 4096)
        let registered = file.session.registerBatchBuffers(a, b)
        defer {
            for r in registered { file.session.deregister(r) }
            a.deallocate()
            b.deallocate()
        }
        var current = SharedBuffer(a)
        var spare = SharedBuffer(b)
        var digest = StreamDigest()
        var offset: UInt64 = 0
        var pending: Task<Result<Int, ClientError>, Never>? = startRead(file, at: 0, into: current, executor)
        while let task = pending {
            let n = try await task.value.get()
            // Ask for the next batch before writing this one locally.
            pending = n == batch ? startRead(file, at: offset + UInt64(n), into: spare, executor) : nil
            let bytes = UnsafeRawBufferPointer(current.slice(0, n))
            do throws(ClientError) {
                try local.write(bytes)
            } catch {
                if let p = pending { _ = await p.value }  // its buffer is freed on return
                throw error
            }
            if hashing { digest.update(bytes) }
            offset += UInt64(n)
            progress?(offset, max(total, offset))
            swap(&current, &spare)
        }
        return TransferResult(bytes: offset, sha256: hashing ? digest.finalize() : [], dataPath: file.dataPath.name)
    }

    static func upload(_ local: LocalFile, to file: RemoteFile, batch: Int, writeThrough: Bool, digest hashing: Bool = true,
                       executor: (any TaskExecutor)? = nil, progress: TransferProgress?) async throws(ClientError) -> TransferResult {
        let total = local.size
        var offset: UInt64 = 0
        // A regular file goes from its own pages (`MappedWindow`) unless a digest is asked for
        // (the CPU would read every byte anyway).
        if !hashing, let total, total > 0 {
            offset = try await uploadMapped(local, size: total, to: file, batch: batch, writeThrough: writeThrough,
                                            executor: executor, progress: progress)
            if offset > 0 {
                // The rest (a window that could not be mapped, or what the file gained meanwhile)
                // is read and sent as below, from where the mapped part ended.
                guard lseek(local.descriptor, off_t(offset), SEEK_SET) == off_t(offset) else {
                    throw .localIO(path: local.path, reason: LocalFile.errnoText())
                }
                if offset == total && local.size == total {
                    return TransferResult(bytes: offset, sha256: [], dataPath: file.dataPath.name)
                }
            }
        }
        let a = UnsafeMutableRawBufferPointer.allocate(byteCount: batch, alignment: 4096)
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: batch, alignment: 4096)
        let registered = file.session.registerBatchBuffers(a, b)
        defer {
            for r in registered { file.session.deregister(r) }
            a.deallocate()
            b.deallocate()
        }
        var current = SharedBuffer(a)
        var spare = SharedBuffer(b)
        var digest = StreamDigest()
        var pending: Task<Result<Void, ClientError>, Never>?
        while true {
            // Read the next batch locally while the previous one is on the wire.
            let n: Int
            do throws(ClientError) {
                n = try local.read(into: current.pointer)
            } catch {
                if let p = pending { _ = await p.value }
                throw error
            }
            if hashing { digest.update(UnsafeRawBufferPointer(current.slice(0, n))) }
            if let p = pending {
                try await p.value.get()
                pending = nil
                progress?(offset, total)
            }
            if n == 0 { break }
            let chunk = SharedBuffer(current.slice(0, n))
            let at = offset
            pending = Task(executorPreference: executor) {
                do throws(ClientError) {
                    try await file.write(from: UnsafeRawBufferPointer(chunk.pointer), at: at, writeThrough: writeThrough)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            offset += UInt64(n)
            swap(&current, &spare)
            if n < batch {  // end of the local file
                try await pending!.value.get()
                pending = nil
                progress?(offset, total)
                break
            }
        }
        return TransferResult(bytes: offset, sha256: hashing ? digest.finalize() : [], dataPath: file.dataPath.name)
    }

    /// Sends `[0, size)` of a regular file from its pages, a batch-sized window at a time, two
    /// windows in flight: the next one's writes are posted before the one before it is done, so
    /// the queue never drains between batches. Returns the bytes sent: fewer than `size` (0 at
    /// first) where a window could not be mapped or registered (memlock limits, a file shrunk
    /// meanwhile); the caller copies the rest.
    private static func uploadMapped(_ local: LocalFile, size: UInt64, to file: RemoteFile, batch: Int, writeThrough: Bool,
                                     executor: (any TaskExecutor)?, progress: TransferProgress?) async throws(ClientError) -> UInt64 {
        var offset: UInt64 = 0
        var sent: UInt64 = 0
        var inFlight: [(task: Task<Result<Void, ClientError>, Never>, window: MappedWindow)] = []
        var failure: ClientError?
        func finishOldest() async {
            let (task, window) = inFlight.removeFirst()
            let result = await task.value
            window.release()
            if case let .failure(error) = result, failure == nil { failure = error }
            sent += UInt64(window.bytes.count)
            progress?(sent, size)
        }
        while offset < size && failure == nil {
            let count = Int(min(UInt64(batch), size - offset))
            guard let window = MappedWindow.map(local, offset: offset, count: count, session: file.session) else { break }
            let at = offset
            inFlight.append((Task(executorPreference: executor) { () -> Result<Void, ClientError> in
                do throws(ClientError) {
                    try await file.write(from: UnsafeRawBufferPointer(window.bytes), at: at, writeThrough: writeThrough)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }, window))
            offset += UInt64(count)
            if inFlight.count == 2 { await finishOldest() }
        }
        while !inFlight.isEmpty { await finishOldest() }
        if let failure { throw failure }
        return sent
    }

    private static func startRead(_ file: RemoteFile, at offset: UInt64, into buffer: SharedBuffer,
                                  _ executor: (any TaskExecutor)?) -> Task<Result<Int, ClientError>, Never> {
        Task(executorPreference: executor) {
            do throws(ClientError) {
                return .success(try await file.read(at: offset, into: buffer.pointer))
            } catch {
                return .failure(error)
            }
        }
    }
}
