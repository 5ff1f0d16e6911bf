import Synchronization

/// The caller's own memory registered with the session's connection, so that reads and
/// writes into it move between it and the server with no staging copy: zero-copy, as
/// io_uring's fixed buffers and librpma's `rpma_mr_reg` are. A READ or WRITE (two-sided) names
/// it in its descriptors; a one-sided piece uses it as the local side of the RDMA operation.
/// I/O into memory that is not registered (or not wholly inside one registration) goes
/// through the session's staging slots as before.
public final class CallerBuffers: Sendable {
    private struct Entry {
        let start: UInt
        let end: UInt
        let memory: any RegisteredMemory
        let registration: ObjectIdentifier
        /// False for `register(readOnly:)`: never the destination of a read.
        let writable: Bool
    }
    private let entries = Mutex<[Entry]>([])
    private let registrar: any BufferRegistrar

    init(registrar: any BufferRegistrar) { self.registrar = registrar }

    /// Registers `buffer` (`ibv_reg_mr`: pins its pages) until `deregister`. The caller keeps
    /// the memory alive until then.
    func register(_ buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> BufferRegistration {
        guard buffer.baseAddress != nil, buffer.count > 0 else { throw .invalidArgument("an empty buffer cannot be registered") }
        return add(buffer, try registrar.register(existing: buffer), writable: true)
    }

    /// Registers `buffer` for writes from it only (`BufferRegistrar.register(readOnly:)`):
    /// reads into it still go through staging slots.
    func register(readOnly buffer: UnsafeRawBufferPointer) throws(ClientError) -> BufferRegistration {
        guard buffer.baseAddress != nil, buffer.count > 0 else { throw .invalidArgument("an empty buffer cannot be registered") }
        return add(UnsafeMutableRawBufferPointer(mutating: buffer), try registrar.register(readOnly: buffer), writable: false)
    }

    private func add(_ buffer: UnsafeMutableRawBufferPointer, _ memory: any RegisteredMemory, writable: Bool) -> BufferRegistration {
        let registration = BufferRegistration(buffer: buffer)
        let start = UInt(bitPattern: buffer.baseAddress!)
        entries.withLock {
            $0.append(Entry(start: start, end: start + UInt(buffer.count), memory: memory,
                            registration: ObjectIdentifier(registration), writable: writable))
        }
        return registration
    }

    /// Forgets the registration (its region is deregistered once no I/O still uses it).
    func deregister(_ registration: BufferRegistration) {
        entries.withLock { $0.removeAll { $0.registration == ObjectIdentifier(registration) } }
    }

    /// The registration `range` lies wholly inside, and the range's offset in it; `receiving`:
    /// the I/O writes into the range (a read), which a read-only registration cannot take.
    func find(_ range: UnsafeMutableRawBufferPointer, receiving: Bool) -> (memory: any RegisteredMemory, offset: Int)? {
        guard let base = range.baseAddress else { return nil }
        let start = UInt(bitPattern: base), end = start + UInt(range.count)
        return entries.withLock { list in
            for e in list where e.start <= start && end <= e.end && (e.writable || !receiving) { return (e.memory, Int(start - e.start)) }
            return nil
        }
    }

    var isEmpty: Bool { entries.withLock { $0.isEmpty } }
}

/// A buffer registered with `ClientSession.register(_:)`; give it back with `deregister`.
public final class BufferRegistration: Sendable {
    public let count: Int
    init(buffer: UnsafeMutableRawBufferPointer) { count = buffer.count }
}
