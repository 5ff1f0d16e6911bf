/// The v1 rules for paths in requests (PROTOCOL.md §4.1), as a pure check both sides can run:
/// the client to fail early, the server before it touches the file system (where openat2 with
/// RESOLVE_BENEATH remains the real confinement).
///
/// The codec does *not* apply these rules: a path that breaks them is a well-formed message
/// that gets a status reply (ACCESS_DENIED for an escape attempt), not a protocol violation.
public enum PathRules {
    /// - Returns: `.ok`; `.invalidArgument` for the empty path where the export root is not
    ///   allowed; `.accessDenied` for an absolute path, an empty, "." or ".." component, or a
    ///   NUL byte; `.nameTooLong` for a component over 255 bytes or a path over 4095 bytes.
    public static func check(_ path: String, allowRoot: Bool = false) -> Status {
        let bytes = Array(path.utf8)
        if bytes.isEmpty { return allowRoot ? .ok : .invalidArgument }
        if bytes.count > Limits.maxPathLength { return .nameTooLong }
        if bytes.contains(0) { return .accessDenied }
        var componentStart = 0
        for i in 0...bytes.count {
            guard i == bytes.count || bytes[i] == 0x2F else { continue }
            let n = i - componentStart
            if n == 0 { return .accessDenied }  // leading "/", trailing "/" or "//"
            if n > Limits.maxNameLength { return .nameTooLong }
            if n == 1 && bytes[componentStart] == 0x2E { return .accessDenied }
            if n == 2 && bytes[componentStart] == 0x2E && bytes[componentStart + 1] == 0x2E { return .accessDenied }
            componentStart = i + 1
        }
        return .ok
    }

    /// The components of a path that passed ``check(_:allowRoot:)``.
    public static func components(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }
}
