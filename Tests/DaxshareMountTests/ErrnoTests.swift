import DaxshareClient
import DaxshareMount
import DaxshareWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ErrnoTests {
    @Test func statusesMapToTheirPosixMeaning() {
        let expected: [(Status, Int32)] = [
            (.notFound, ENOENT), (.exists, EEXIST), (.notDirectory, ENOTDIR), (.isDirectory, EISDIR),
            (.accessDenied, EACCES), (.readOnly, EROFS), (.noSpace, ENOSPC), (.notEmpty, ENOTEMPTY),
            (.nameTooLong, ENAMETOOLONG), (.fileTooLarge, EFBIG), (.notSupported, EOPNOTSUPP),
            (.staleFile, ESTALE), (.tryLater, EAGAIN), (.ioError, EIO),
        ]
        for (status, code) in expected {
            #expect(Errno.code(for: .status(status, .open)) == code, "\(status)")
        }
        // Every status maps to something other than success.
        for status in Status.all where status != .ok { #expect(Errno.code(for: status) != 0) }
    }

    @Test func lostConnectionsAndLayoutsAreEIO() {
        #expect(Errno.code(for: .transport("gone")) == EIO)
        #expect(Errno.code(for: .layoutLost(reason: "revoked", unwrittenBytes: 4096)) == EIO)
    }

    @Test func openFlags() {
        #expect(OpenFlagsMapping.flags(posix: O_RDONLY, creating: false) == [.read])
        #expect(OpenFlagsMapping.flags(posix: O_WRONLY | O_TRUNC, creating: false) == [.write, .truncate])
        #expect(OpenFlagsMapping.flags(posix: O_RDWR | O_CREAT | O_EXCL, creating: true) == [.read, .write, .create, .exclusive])
        #expect(OpenFlagsMapping.flags(posix: O_WRONLY | O_APPEND, creating: false) == [.write])
        #expect(OpenFlagsMapping.flags(posix: O_RDWR | O_SYNC, creating: false) == [.read, .write, .writeThrough])
        // O_TRUNC without write access changes nothing (as open(2) leaves it unspecified).
        #expect(OpenFlagsMapping.flags(posix: O_RDONLY | O_TRUNC, creating: false) == [.read])
    }
}
