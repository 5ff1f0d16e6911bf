/// ECHO request and response body: opaque bytes the server sends back unchanged. Useful as a
/// liveness check above the transport and to exercise fragmentation with a known payload.
public struct EchoMessage: WireBody {
    public var data: [UInt8]
    public init(data: [UInt8] = []) { self.data = data }

    func encode(into w: inout ByteWriter) throws(WireError) {
        if data.count > Limits.maxEchoLength { throw .oversized(field: "data") }
        w.append(data)
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> EchoMessage {
        if r.remaining > Limits.maxEchoLength { throw .oversized(field: "data") }
        return EchoMessage(data: try r.bytes(r.remaining, "data"))
    }
}
