import SystemPackage

/// How a client opens a file (OPEN, PROTOCOL.md §4.10).
public struct FileOpenOptions: Sendable, Equatable {
    /// The handle may read.
    public var read: Bool
    /// The handle may write, set the size and punch holes.
    public var write: Bool
    /// Create the file if it does not exist (durably, with its directory entry).
    public var create: Bool
    /// With `create`: fail with `exists` if it does.
    public var exclusive: Bool
    /// Cut the file to zero bytes on open (needs `write`).
    public var truncate: Bool
    /// Every write through the handle is durable before it returns.
    public var writeThrough: Bool
    /// Permission bits for a created file.
    public var permissions: FilePermissions

    public init(
        read: Bool = true, write: Bool = false, create: Bool = false, exclusive: Bool = false,
        truncate: Bool = false, writeThrough: Bool = false,
        permissions: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead]
    ) {
        self.read = read
        self.write = write
        self.create = create
        self.exclusive = exclusive
        self.truncate = truncate
        self.writeThrough = writeThrough
        self.permissions = permissions
    }

    /// Whether opening this way changes anything, which a read-only export refuses.
    var mutates: Bool { write || create || truncate }

    /// The combinations the protocol refuses with INVALID_ARGUMENT.
    func check(_ path: ClientPath) throws(FileSystemError) {
        let problem: String? =
            if !read && !write { "neither read nor write access" }
            else if exclusive && !create { "exclusive without create" }
            else if truncate && !write { "truncate without write access" }
            else { nil }
        if let problem { throw FileSystemError(.invalidArgument, operation: "open(\(path)): \(problem)") }
    }
}
