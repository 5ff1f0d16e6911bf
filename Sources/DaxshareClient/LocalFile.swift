#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A local file descriptor for transfers: the file `get` writes and `put` reads, or stdin and
/// stdout for `-`. Plain POSIX calls, retried on EINTR and looped until the whole buffer is
/// moved, so a pipe that returns short reads behaves like a file.
///
/// Reads and writes block the calling thread; transfers call them between network round trips
/// (which overlap with them), so the cost is one cooperative thread while a disk or pipe is slow.
public final class LocalFile: Sendable {
    public let descriptor: Int32
    /// For error messages: the path, or "-" for stdin/stdout.
    public let path: String
    private let owns: Bool
    private let closed = Mutex(false)

    public init(descriptor: Int32, path: String, closeOnDeinit: Bool) {
        self.descriptor = descriptor
        self.path = path
        self.owns = closeOnDeinit
    }

    deinit { if owns { close() } }

    public static var standardInput: LocalFile { LocalFile(descriptor: 0, path: "-", closeOnDeinit: false) }
    public static var standardOutput: LocalFile { LocalFile(descriptor: 1, path: "-", closeOnDeinit: false) }

    public static func openForReading(_ path: String) throws(ClientError) -> LocalFile {
        let fd = retrying { open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 { throw .localIO(path: path, reason: errnoText()) }
        return LocalFile(descriptor: fd, path: path, closeOnDeinit: true)
    }

    /// Creates or truncates `path` for writing.
    public static func create(_ path: String, mode: UInt32 = 0o644) throws(ClientError) -> LocalFile {
        let fd = retrying { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode)) }
        if fd < 0 { throw .localIO(path: path, reason: errnoText()) }
        return LocalFile(descriptor: fd, path: path, closeOnDeinit: true)
    }

    /// The size of a regular file; nil for pipes, terminals and sockets (unknown length).
    public var size: UInt64? {
        var st = stat()
        guard fstat(descriptor, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return UInt64(st.st_size)
    }

    /// Moves back to the start of a regular file, to read it again. False for pipes and the
    /// like (nothing to re-read) or when seeking fails.
    public func rewind() -> Bool {
        guard size != nil else { return false }
        return lseek(descriptor, 0, SEEK_SET) == 0
    }

    /// Fills `buffer` unless the end of the file comes first. Returns the bytes read: fewer
    /// than `buffer.count` only at the end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.read(descriptor, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .localIO(path: path, reason: Self.errnoText())
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads to the end, refusing more than `limit` bytes (secret files are small).
    public func readAll(limit: Int) throws(ClientError) -> [UInt8] {
        var out: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let n = try read(into: chunk)
            out += chunk[0..<n]
            if out.count > limit { throw .localIO(path: path, reason: "larger than \(limit) bytes") }
            if n < chunk.count { return out }
        }
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(ClientError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(descriptor, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .localIO(path: path, reason: Self.errnoText())
            }
            done += n
        }
    }

    /// Closes the descriptor once (never stdin/stdout's unless this object opened them).
    public func close() {
        let first = closed.withLock { c -> Bool in
            defer { c = true }
            return !c
        }
        if first && owns { _ = Glibc.close(descriptor) }
    }

    static func errnoText() -> String {
        String(cString: strerror(errno))
    }

    private static func retrying(_ call: () -> Int32) -> Int32 {
        while true {
            let r = call()
            if r < 0 && errno == EINTR { continue }
            return r
        }
    }
}
