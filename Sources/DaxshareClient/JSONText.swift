/// Minimal JSON writing for the CLI's `--json` output: objects of strings, integers and
/// booleans, keys in the order given (stable output that diffs and tests can rely on).
/// Written by hand so the client stays free of Foundation.
public enum JSONValue: Sendable, Hashable {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case bool(Bool)
    case null
    case object([(String, JSONValue)])
    case array([JSONValue])

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.text == b.text }
    public func hash(into h: inout Hasher) { h.combine(text) }

    /// Compact JSON text, no whitespace.
    public var text: String {
        switch self {
        case let .string(s): JSONValue.quote(s)
        case let .int(v): String(v)
        case let .uint(v): String(v)
        case let .bool(v): v ? "true" : "false"
        case .null: "null"
        case let .object(fields): "{" + fields.map { JSONValue.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        case let .array(items): "[" + items.map(\.text).joined(separator: ",") + "]"
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped; everything
    /// else (including non-ASCII) as UTF-8.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
