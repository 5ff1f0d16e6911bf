#if canImport(Glibc)
import Glibc
#endif

/// A window of a local regular file mapped into memory (`mmap`, `PROT_READ`, `MAP_SHARED`) and
/// registered read-only with a session (`ibv_reg_mr`), so that `put` sends the file's bytes
/// straight from its page cache: no `read` copy into a batch buffer. The pages are pinned for
/// reading, which Linux allows on any file system.
///
/// `get` does not receive into a mapping the same way: Linux refuses a long-term writable pin
/// of a file's pages except on tmpfs, and there, measured in the testbed, pinning (which
/// allocates and zeroes each page) cost more than the `write` copy it saves.
///
/// The CPU never touches the mapping, so a file truncated under it cannot fault the process:
/// a range past the end of the file fails to register instead.
// @unchecked: immutable after init; `release` is called once, by the transfer that made it, after its I/O.
final class MappedWindow: @unchecked Sendable {
    /// The window's bytes (`count` of them; the mapping is rounded up to whole pages).
    let bytes: UnsafeMutableRawBufferPointer
    private let mappedLength: Int
    private let registration: BufferRegistration
    private let session: ClientSession

    private init(bytes: UnsafeMutableRawBufferPointer, mappedLength: Int, registration: BufferRegistration,
                 session: ClientSession) {
        self.bytes = bytes
        self.mappedLength = mappedLength
        self.registration = registration
        self.session = session
    }

    /// `[offset, offset + count)` of `file` (offset a multiple of the page size), or nil when it
    /// cannot be mapped or registered: the caller moves that range through its own buffers.
    static func map(_ file: LocalFile, offset: UInt64, count: Int, session: ClientSession) -> MappedWindow? {
        guard count > 0, offset % UInt64(ChunkPlan.pageSize) == 0 else { return nil }
        let length = LayoutPlan.roundUp(count, ChunkPlan.pageSize)
        guard let base = mmap(nil, length, PROT_READ, MAP_SHARED, file.descriptor, off_t(offset)),
              base != MAP_FAILED else { return nil }
        let bytes = UnsafeMutableRawBufferPointer(start: base, count: count)
        let registration: BufferRegistration
        do throws(ClientError) {
            registration = try session.register(readOnly: UnsafeRawBufferPointer(bytes))
        } catch {
            munmap(base, length)
            return nil
        }
        return MappedWindow(bytes: bytes, mappedLength: length, registration: registration, session: session)
    }

    /// Ends the registration and the mapping; the I/O on the window must be over.
    func release() {
        session.deregister(registration)
        munmap(bytes.baseAddress, mappedLength)
    }
}
