import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The memory the kernel's FUSE requests are read into, registered once with the session's
/// connection, so that a write's data goes from here to the server's pmem by RDMA WRITE, and
/// a read's reply is filled here by RDMA READ: no staging copy on either path.
///
/// libfuse reads each request into the buffer its caller hands `fuse_session_receive_buf`,
/// and a write callback's data points into that buffer. libfuse's own loops reuse a thread's
/// buffer for its next request as soon as the callback returns (libfuse issue #725), which
/// would force a copy or a blocked thread per write; here each request gets a slot of its own
/// that lives until the reply: the reader's reference ends when the callback returns, a read
/// or write callback takes a second one (`retainCurrent`) and gives it back after replying.
/// When every slot is in use, readers wait: that bounds the I/O in flight.
public final class RequestBuffers: Sendable {
    /// A request holds at most max_write (1 MiB) of data plus its headers; libfuse reads
    /// with its own buffer size (256 pages + one page of header in libfuse 3.14). The slack
    /// keeps a slot larger than either.
    public static let slotSize = (1 << 20) + (128 << 10)

    public let count: Int
    // @unchecked: the memory is owned here for the process's life; slots are handed out
    // under `state`, and a slot's bytes are touched by the one request holding it.
    private struct Memory: @unchecked Sendable { let base: UnsafeMutableRawPointer }
    private let memory: Memory
    private let free: DispatchSemaphore
    private struct State {
        var freeList: [Int]
        var references: [Int]
    }
    private let state: Mutex<State>
    /// The slot the calling reader thread is dispatching (pthread-specific, slot + 1).
    private let currentKey: pthread_key_t

    public init(count: Int) {
        precondition(count >= 1)
        self.count = count
        memory = Memory(base: UnsafeMutableRawPointer.allocate(byteCount: count * Self.slotSize, alignment: 4096))
        free = DispatchSemaphore(value: count)
        state = Mutex(State(freeList: Array((0..<count).reversed()), references: Array(repeating: 0, count: count)))
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        currentKey = key
    }

    /// All slots as one buffer, to register with the session.
    public var all: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: memory.base, count: count * Self.slotSize)
    }

    public func slot(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: memory.base + index * Self.slotSize, count: Self.slotSize)
    }

    /// Waits for a free slot and makes it the calling thread's current one (one reference).
    public func acquireForReading() -> Int {
        free.wait()
        let index = state.withLock { s -> Int in
            let i = s.freeList.removeLast()
            s.references[i] = 1
            return i
        }
        pthread_setspecific(currentKey, UnsafeRawPointer(bitPattern: index + 1))
        return index
    }

    /// Called by the reader after the callback returned: drops its reference.
    public func finishedDispatching(_ index: Int) {
        pthread_setspecific(currentKey, nil)
        release(index)
    }

    /// From inside a callback: keeps the slot being dispatched until `release`. Nil when not
    /// called on a reader thread (never, in practice).
    public func retainCurrent() -> Int? {
        guard let p = pthread_getspecific(currentKey) else { return nil }
        let index = Int(bitPattern: p) - 1
        state.withLock { $0.references[index] += 1 }
        return index
    }

    public func release(_ index: Int) {
        let isFree = state.withLock { s -> Bool in
            s.references[index] -= 1
            guard s.references[index] == 0 else { return false }
            s.freeList.append(index)
            return true
        }
        if isFree { free.signal() }
    }
}
