/// Sizes as people type and read them: `truncate URL 64M`, progress in MiB.
public enum ByteCount {
    /// Parses a byte count: digits, then optionally K, M, G or T (also KiB, MiB, GiB, TiB;
    /// any case), all powers of 1024. At most 2^63 − 1, the protocol's largest size.
    public static func parse(_ text: String) throws(ClientError) -> UInt64 {
        let s = text.trimmingSpaces
        let digits = s.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty else {
            throw .invalidArgument("bad size '\(text)': expected a number of bytes, optionally followed by K, M, G or T")
        }
        let suffix = s.dropFirst(digits.count).uppercased()
        let shift: UInt64
        switch suffix {
        case "": shift = 0
        case "K", "KIB": shift = 10
        case "M", "MIB": shift = 20
        case "G", "GIB": shift = 30
        case "T", "TIB": shift = 40
        default:
            throw .invalidArgument("bad size '\(text)': unknown suffix '\(s.dropFirst(digits.count))' (use K, M, G or T: powers of 1024)")
        }
        guard let value = UInt64(digits), value <= UInt64(Int64.max) >> shift else {
            throw .invalidArgument("bad size '\(text)': larger than the largest file size (2^63 - 1 bytes)")
        }
        return value << shift
    }

    /// "512 B", "4.0 KiB", "64.0 MiB", "1.5 GiB": one decimal above a KiB.
    public static func format(_ bytes: UInt64) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        if bytes < 1024 { return "\(bytes) B" }
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = self[...]
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return s
    }
}
