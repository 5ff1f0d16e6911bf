import DaxshareWire

/// A request that failed with a protocol status (and why, for the log).
struct RequestFailure: Error {
    var status: Status
    var reason: String
    /// For TRY_LATER: when the client may try again.
    var retryAfterMs: UInt32 = 0
}

extension FileSystemError {
    /// The protocol status a file-system failure is reported as.
    var status: Status {
        switch code {
        case .notFound: .notFound
        case .exists: .exists
        case .accessDenied: .accessDenied
        case .notDir: .notDirectory
        case .isDir: .isDirectory
        case .readOnly: .readOnly
        case .noSpace: .noSpace
        case .invalidArgument: .invalidArgument
        case .ioError: .ioError
        case .tooMany: .tooMany
        case .notEmpty: .notEmpty
        case .nameTooLong: .nameTooLong
        case .fileTooLarge: .fileTooLarge
        case .staleFile: .staleFile
        }
    }
}

extension FileAttributes {
    /// The wire form of what `stat` said.
    init(_ a: FileStatus, dax: Bool = false) {
        let type: FileType = switch a.kind {
        case .regular: .regular
        case .directory: .directory
        case .symbolicLink: .symlink
        case .other: .other
        }
        self.init(
            size: UInt64(max(0, a.size)), allocatedSize: UInt64(max(0, a.allocatedSize)),
            mtimeNs: a.modificationTime, ctimeNs: a.changeTime, fileIndex: a.inode,
            mode: UInt32(a.permissions.rawValue) & 0o7777, nlink: UInt32(clamping: a.linkCount), type: type,
            flags: dax ? [.dax] : [])
    }
}
