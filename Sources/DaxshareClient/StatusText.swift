import DaxshareWire

extension Status {
    /// A short phrase for a person, in the style of strerror(3): what the CLI prints after
    /// the operation and URL. Unknown codes (a newer server) still read as a failure.
    public var summary: String {
        switch self {
        case .ok: "ok"
        case .tryLater: "the server is busy with this file, try again later"
        case .layoutRevoked: "layout revoked: recent one-sided writes may be lost"
        case .accessDenied: "access denied"
        case .notFound: "not found"
        case .exists: "already exists"
        case .notDirectory: "not a directory"
        case .isDirectory: "is a directory"
        case .badMessage: "the server could not decode the request"
        case .notAuthenticated: "not authenticated"
        case .authFailed: "authentication failed (wrong secret or identity?)"
        case .invalidArgument: "invalid argument"
        case .noSpace: "no space left on the server"
        case .ioError: "I/O error on the server"
        case .tooMany: "a server limit was reached (open files, requests or connections)"
        case .readOnly: "the export is read-only"
        case .notSupported: "not supported by this server"
        case .staleFile: "stale file handle"
        case .badStateid: "unknown layout"
        case .notEmpty: "directory not empty"
        case .nameTooLong: "name too long"
        case .fileTooLarge: "file too large"
        case .shuttingDown: "the server is shutting down"
        case .internalError: "internal server error"
        case .exportRemoved: "the export was removed from the server's configuration"
        default: "server error \(name)"
        }
    }
}
