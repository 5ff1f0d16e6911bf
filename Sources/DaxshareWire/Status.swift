/// The result of a request, carried in every response header (PROTOCOL.md §3.5).
///
/// A struct so that a status code added by a later dialect decodes (and round-trips) instead of
/// failing: a client treats any status it does not know as a failure of the request.
public struct Status: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let ok = Status(rawValue: 0x00)
    /// A layout recall is in progress on the file (or another transient condition): retry
    /// after the hint in the error body.
    public static let tryLater = Status(rawValue: 0x01)
    /// The layout named by the stateid was revoked (fenced): data written through it after
    /// its last acknowledged LAYOUTCOMMIT may be lost.
    public static let layoutRevoked = Status(rawValue: 0x02)
    public static let accessDenied = Status(rawValue: 0x03)
    public static let notFound = Status(rawValue: 0x04)
    public static let exists = Status(rawValue: 0x05)
    public static let notDirectory = Status(rawValue: 0x06)
    public static let isDirectory = Status(rawValue: 0x07)
    /// The request did not decode; the server closes the connection after sending this.
    public static let badMessage = Status(rawValue: 0x08)
    public static let notAuthenticated = Status(rawValue: 0x09)
    public static let authFailed = Status(rawValue: 0x0A)
    public static let invalidArgument = Status(rawValue: 0x0B)
    public static let noSpace = Status(rawValue: 0x0C)
    public static let ioError = Status(rawValue: 0x0D)
    /// A server limit (open files, layouts, outstanding requests, connections) was reached.
    public static let tooMany = Status(rawValue: 0x0E)
    public static let readOnly = Status(rawValue: 0x0F)
    public static let notSupported = Status(rawValue: 0x10)
    /// The file id is unknown, closed, or belongs to another session.
    public static let staleFile = Status(rawValue: 0x11)
    /// The layout stateid is unknown, already returned, or its seqid is ahead of the server's.
    public static let badStateid = Status(rawValue: 0x12)
    public static let notEmpty = Status(rawValue: 0x13)
    public static let nameTooLong = Status(rawValue: 0x14)
    public static let fileTooLarge = Status(rawValue: 0x15)
    public static let shuttingDown = Status(rawValue: 0x16)
    public static let internalError = Status(rawValue: 0x17)
    /// The tree's export was removed from the server's configuration (a reload): the session
    /// stays, the tree is gone; TREE_DISCONNECT it.
    public static let exportRemoved = Status(rawValue: 0x18)

    public static let all: [Status] = [
        .ok, .tryLater, .layoutRevoked, .accessDenied, .notFound, .exists, .notDirectory, .isDirectory,
        .badMessage, .notAuthenticated, .authFailed, .invalidArgument, .noSpace, .ioError, .tooMany,
        .readOnly, .notSupported, .staleFile, .badStateid, .notEmpty, .nameTooLong, .fileTooLarge,
        .shuttingDown, .internalError, .exportRemoved,
    ]

    public var isKnown: Bool { rawValue <= Status.exportRemoved.rawValue }

    public var name: String {
        let names = ["OK", "TRY_LATER", "LAYOUT_REVOKED", "ACCESS_DENIED", "NOT_FOUND", "EXISTS", "NOT_DIR",
                     "IS_DIR", "BAD_MESSAGE", "NOT_AUTHENTICATED", "AUTH_FAILED", "INVALID_ARGUMENT",
                     "NO_SPACE", "IO_ERROR", "TOO_MANY", "READ_ONLY", "NOT_SUPPORTED", "STALE_FILE",
                     "BAD_STATEID", "NOT_EMPTY", "NAME_TOO_LONG", "FILE_TOO_LARGE", "SHUTTING_DOWN",
                     "INTERNAL_ERROR", "EXPORT_REMOVED"]
        if rawValue < UInt32(names.count) { return names[Int(rawValue)] }
        return "STATUS_0x\(String(rawValue, radix: 16))"
    }

    public var description: String { name }
}
