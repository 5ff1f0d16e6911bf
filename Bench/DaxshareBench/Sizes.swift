/// I/O sizes as people write them: `4K`, `64KiB`, `1M`, `4MiB`, `512` (bytes). Binary units.
public enum ByteSize {
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public let text: String
        public var description: String { "cannot read '\(text)' as a size (examples: 4K, 64KiB, 1M, 4096)" }
    }

    /// One size. Suffixes K, M, G (optionally followed by "iB" or "B"), case-insensitive.
    public static func parse(_ text: String) throws(ParseError) -> Int {
        var s = Substring(text.benchTrimmed())
        let lower = s.lowercased()
        var shift = 0
        for (suffixes, bits) in [(["kib", "kb", "k"], 10), (["mib", "mb", "m"], 20), (["gib", "gb", "g"], 30)] {
            if let suffix = suffixes.first(where: { lower.hasSuffix($0) }) {
                s = s.dropLast(suffix.count)
                shift = bits
                break
            }
        }
        if shift == 0, lower.hasSuffix("b") { s = s.dropLast() }
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(s), n > 0,
              n <= (Int.max >> shift) else { throw ParseError(text: text) }
        return n << shift
    }

    /// A comma-separated list, in the order given, duplicates dropped.
    public static func parseList(_ text: String) throws(ParseError) -> [Int] {
        var out: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let n = try parse(String(part))
            if !out.contains(n) { out.append(n) }
        }
        guard !out.isEmpty else { throw ParseError(text: text) }
        return out
    }

    /// The shortest exact spelling: 4096 -> "4K", 1048576 -> "1M", 1000 -> "1000".
    public static func format(_ bytes: Int) -> String {
        for (unit, bits) in [("G", 30), ("M", 20), ("K", 10)] where bytes >= 1 << bits && bytes % (1 << bits) == 0 {
            return "\(bytes >> bits)\(unit)"
        }
        return "\(bytes)"
    }
}

extension String {
    func benchTrimmed(_ set: String = " \t") -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
