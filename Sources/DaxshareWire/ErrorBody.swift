/// The body of every response whose status is not OK (PROTOCOL.md §3.6). One shape for all
/// commands, so a client can decode any failure without knowing the command's success body.
public struct ErrorBody: WireBody {
    public static let size = 8
    /// With TRY_LATER: milliseconds after which a retry is likely to succeed. Otherwise 0.
    public var retryAfterMs: UInt32
    public init(retryAfterMs: UInt32 = 0) { self.retryAfterMs = retryAfterMs }

    func encode(into w: inout ByteWriter) throws(WireError) {
        w.u32(retryAfterMs)
        w.u32(0)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> ErrorBody {
        let ms = try r.u32("retryAfterMs")
        try r.reserved(4, "reserved")
        return ErrorBody(retryAfterMs: ms)
    }
}
