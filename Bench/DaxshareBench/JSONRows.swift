import Foundation

/// `--json`: a JSON array with one row object per line (valid JSON, and easy to grep).
public enum JSONRows {
    public static func render<Row: Encodable>(_ rows: [Row]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let lines = rows.map { row in
            (try? encoder.encode(row)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
        return "[\n" + lines.joined(separator: ",\n") + (lines.isEmpty ? "" : "\n") + "]\n"
    }

    public static func parse(_ text: String) throws -> [BenchRow] {
        try JSONDecoder().decode([BenchRow].self, from: Data(text.utf8))
    }
}
