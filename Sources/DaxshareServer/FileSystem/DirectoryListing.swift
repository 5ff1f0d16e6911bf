import Glibc
import SystemPackage

/// One name in a directory listing, with its status (a symlink is
/// described, not followed).
public struct DirectoryEntry: Sendable, Equatable {
    public var name: String
    public var status: FileStatus

    public init(name: String, status: FileStatus) {
        self.name = name
        self.status = status
    }
}

/// A page of a directory listing.
public struct DirectoryPage: Sendable, Equatable {
    public var entries: [DirectoryEntry]
    /// Where the next page starts; nil after the last entry (END). Never 0,
    /// which asks for the first page.
    public var nextCookie: UInt64?

    public init(entries: [DirectoryEntry], nextCookie: UInt64?) {
        self.entries = entries
        self.nextCookie = nextCookie
    }
}

extension Export {
    /// Lists a directory a page at a time, in the directory's own order.
    ///
    /// The cookie is the file system's directory position (`d_off`, resumed
    /// with `seekdir`), the same cookie NFS servers hand out: on ext4 and
    /// tmpfs it survives entries being added or removed, so an entry present
    /// throughout the paging is never missed (one added or removed meanwhile
    /// may be missed or seen twice). A made-up cookie cannot be recognised;
    /// it resumes wherever the file system puts it.
    ///
    /// "." and ".." are left out, and so are names that are not valid UTF-8.
    ///
    /// - Parameters:
    ///   - cookie: 0 for the first page, then the previous page's `nextCookie`.
    ///   - maxEntries: at most this many entries (at least 1).
    ///   - fits: asked before each entry after the first; returning false
    ///     ends the page there, e.g. when the reply would outgrow a message.
    ///     A page that is not the last always has at least one entry.
    public func list(
        _ rawPath: String, cookie: UInt64 = 0, maxEntries: Int,
        fits: (DirectoryEntry) -> Bool = { _ in true }
    ) throws(FileSystemError) -> DirectoryPage {
        let path = try validate(rawPath)
        guard maxEntries > 0 else {
            throw FileSystemError(.invalidArgument, operation: "list(\(path)): maxEntries \(maxEntries)")
        }
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY)
        guard let stream = fdopendir(fd.rawValue) else {
            let errno = Errno(rawValue: Glibc.errno)
            try? fd.close()
            throw FileSystemError(errno: errno, operation: "fdopendir(\(path))")
        }
        defer { closedir(stream) }  // closes fd too
        if cookie != 0 { seekdir(stream, Int(bitPattern: UInt(cookie))) }

        var entries: [DirectoryEntry] = []
        var resume = cookie  // d_off after the last entry taken or passed over
        while true {
            Glibc.errno = 0
            guard let record = readdir(stream) else {
                if Glibc.errno != 0 {
                    throw FileSystemError(errno: Errno(rawValue: Glibc.errno), operation: "readdir(\(path))")
                }
                return DirectoryPage(entries: entries, nextCookie: nil)
            }
            let position = UInt64(bitPattern: Int64(record.pointee.d_off))
            let bytes = withUnsafeBytes(of: record.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if bytes == [0x2E] || bytes == [0x2E, 0x2E] { continue }
            guard let name = String(validating: bytes, as: UTF8.self) else {
                resume = position
                continue
            }
            if entries.count == maxEntries { break }  // there is more: this one starts the next page
            // A name removed since readdir returned it is passed over.
            guard let status = try? statAt(fd, name, operation: "fstatat(\(path)/\(name))") else {
                resume = position
                continue
            }
            let entry = DirectoryEntry(name: name, status: status)
            if !entries.isEmpty && !fits(entry) { break }
            entries.append(entry)
            resume = position
        }
        return DirectoryPage(entries: entries, nextCookie: resume == 0 ? nil : resume)
    }
}
