/// A path a client named, checked to stay inside an export before the kernel
/// ever sees it (PROTOCOL.md §4.1, the same rules as `DaxshareWire.PathRules`).
/// It is relative to the export's root; "" is the root itself.
///
/// Rejected as `accessDenied`: an absolute path, an empty component ("a//b",
/// a trailing "/"), a "." or ".." component, a NUL byte. Rejected as
/// `nameTooLong`: a path over `maxLength` bytes, a component over
/// `maxComponentLength`. Symlinks are left to `openat2(RESOLVE_BENEATH)` at use.
public struct ClientPath: Sendable, Hashable, CustomStringConvertible {
    /// PATH_MAX less its NUL.
    public static let maxLength = 4095
    /// NAME_MAX.
    public static let maxComponentLength = 255

    /// The components, none empty, "." or "..".
    public let components: [String]

    /// The export's root.
    public static let root = ClientPath(components: [])

    private init(components: [String]) {
        self.components = components
    }

    public init(validating raw: String) throws(FileSystemError) {
        let operation = "path \(ClientPath.quoted(raw))"
        if raw.utf8.count > Self.maxLength {
            throw FileSystemError(.nameTooLong, operation: "\(operation): longer than \(Self.maxLength) bytes")
        }
        if raw.utf8.contains(0) { throw FileSystemError(.accessDenied, operation: "\(operation): NUL byte") }
        if raw.isEmpty {
            self = .root
            return
        }
        var components: [String] = []
        for component in raw.split(separator: "/", omittingEmptySubsequences: false) {
            switch component {
            case "":
                throw FileSystemError(.accessDenied, operation: "\(operation): absolute, or an empty component")
            case ".", "..":
                throw FileSystemError(.accessDenied, operation: "\(operation): '\(component)' component")
            default:
                if component.utf8.count > Self.maxComponentLength {
                    throw FileSystemError(
                        .nameTooLong, operation: "\(operation): component over \(Self.maxComponentLength) bytes")
                }
                components.append(String(component))
            }
        }
        self.components = components
    }

    public var isRoot: Bool { components.isEmpty }

    /// The path as the kernel takes it relative to the export: "." for the root.
    var relative: String { isRoot ? "." : components.joined(separator: "/") }

    /// The directory holding the last component (the root for a top-level name).
    var parent: ClientPath { ClientPath(components: Array(components.dropLast())) }

    /// The last component; nil for the root.
    var name: String? { components.last }

    public var description: String { components.joined(separator: "/") }

    /// A path quoted for a log line, with control characters and NUL escaped.
    static func quoted(_ raw: String) -> String {
        let escaped = raw.unicodeScalars.map {
            $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0)
        }
        return "\"" + escaped.joined() + "\""
    }
}
