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
        case .notSupported: .notSupported
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

extension FileAttributeChange {
    /// What a SET_ATTRIBUTES asks for (the codec has checked the mode is ≤ 0o7777).
    init(_ c: AttributeChange) {
        func time(_ t: TimeChange?) -> Time? {
            switch t {
            case nil: nil
            case .now: .now
            case let .at(ns): .at(nanosecondsSinceEpoch: ns)
            }
        }
        self.init(
            permissions: c.mode.map { .init(rawValue: $0 & 0o7777) },
            accessTime: time(c.accessTime), modificationTime: time(c.modificationTime))
    }
}

extension FileSystemStatistics {
    /// The wire form of what `fstatvfs` said (a count past 2^32 − 1 in a 32-bit field is clamped).
    init(_ s: FileSystemSpace) {
        self.init(
            blockSize: UInt32(clamping: max(1, s.blockSize)), maxNameLength: UInt32(clamping: s.maxNameLength),
            totalBlocks: s.totalBlocks, freeBlocks: s.freeBlocks, availableBlocks: s.availableBlocks,
            totalFiles: s.totalFiles, freeFiles: s.freeFiles)
    }
}
