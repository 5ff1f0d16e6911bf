import DaxsharePmem
import SystemPackage

/// Why a file-system operation failed: a status the protocol can send back
/// (`code`), plus the errno and call for the server's logs.
public struct FileSystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The statuses the protocol maps to its replies (PROTOCOL.md §3.5).
    public enum Code: Sendable, Equatable, CaseIterable {
        case notFound, exists, accessDenied, notDir, isDir, readOnly
        case noSpace, invalidArgument, ioError, tooMany, notEmpty
        /// A component over 255 bytes or a path over 4095.
        case nameTooLong
        /// A size or offset the file system cannot hold (EFBIG).
        case fileTooLarge
        /// A file id the session does not have (unknown or closed).
        case staleFile
        /// The file system does not do it (EOPNOTSUPP: fallocate on a file system without
        /// it, a mode on a symlink).
        case notSupported
    }

    public var code: Code
    /// The errno behind `code`, when a system call failed.
    public var errno: Errno?
    /// What failed, e.g. "openat2(docs/a.txt)"; for logs, never for clients.
    public var operation: String

    public init(_ code: Code, errno: Errno? = nil, operation: String) {
        self.code = code
        self.errno = errno
        self.operation = operation
    }

    /// Classifies an errno. Path resolution under the export reports escapes
    /// as EXDEV (RESOLVE_BENEATH) or ELOOP (magic links), hence access denied.
    public init(errno: Errno, operation: String) {
        let code: Code
        switch errno {
        case .noSuchFileOrDirectory: code = .notFound
        case .fileExists: code = .exists
        case .permissionDenied, .notPermitted, .improperLink, .tooManySymbolicLinkLevels,
             .resourceBusy, .textFileBusy:
            code = .accessDenied
        case .notDirectory: code = .notDir
        case .isDirectory: code = .isDir
        case .readOnlyFileSystem: code = .readOnly
        case .noSpace, .diskQuotaExceeded: code = .noSpace
        case .fileTooLarge: code = .fileTooLarge
        case .fileNameTooLong: code = .nameTooLong
        case .invalidArgument, .badFileDescriptor, .overflow: code = .invalidArgument
        case .tooManyOpenFiles, .tooManyOpenFilesInSystem, .tooManyLinks, .noMemory:
            code = .tooMany
        case .directoryNotEmpty: code = .notEmpty
        case .notSupported, .notSupportedOnSocket: code = .notSupported  // ENOTSUP = EOPNOTSUPP on Linux
        default: code = .ioError
        }
        self.init(code, errno: errno, operation: operation)
    }

    /// Classifies a pmem-layer failure.
    init(_ error: PmemError, operation: String) {
        if let errno = error.errno {
            self.init(errno: errno, operation: "\(operation): \(error)")
        } else if case .capacityExceeded = error {
            self.init(.noSpace, operation: "\(operation): \(error)")
        } else if case .notWritable = error {
            self.init(.accessDenied, operation: "\(operation): \(error)")
        } else {
            self.init(.invalidArgument, operation: "\(operation): \(error)")
        }
    }

    public var description: String {
        if let errno { return "\(code) (\(operation): \(errno), errno \(errno.rawValue))" }
        return "\(code) (\(operation))"
    }
}
