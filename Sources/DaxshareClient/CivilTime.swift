/// Nanoseconds since the Unix epoch as UTC calendar time, without Foundation or the C
/// library's time zone state (so output is the same on every machine and in tests).
public struct CivilTime: Sendable, Hashable {
    public var year: Int64
    public var month: Int
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var second: Int
    public var nanosecond: Int

    public init(nanosecondsSinceEpoch ns: Int64) {
        let (secondsFloor, nanos) = Self.floorDivide(ns, 1_000_000_000)
        let (days, secs) = Self.floorDivide(secondsFloor, 86_400)
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (m <= 2 ? 1 : 0)
        month = Int(m)
        day = Int(d)
        hour = Int(secs / 3600)
        minute = Int(secs % 3600 / 60)
        second = Int(secs % 60)
        nanosecond = Int(nanos)
    }

    /// `2024-05-01 12:00` (UTC), as in a long listing.
    public var listingText: String {
        "\(year)-\(pad(month))-\(pad(day)) \(pad(hour)):\(pad(minute))"
    }

    /// `2024-05-01T12:00:00.123456789Z`.
    public var iso8601: String {
        let n = String(nanosecond)
        return "\(year)-\(pad(month))-\(pad(day))T\(pad(hour)):\(pad(minute)):\(pad(second))."
            + String(repeating: "0", count: 9 - n.count) + n + "Z"
    }

    private func pad(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        var q = a / b
        var r = a % b
        if r < 0 {
            q -= 1
            r += b
        }
        return (q, r)
    }
}
