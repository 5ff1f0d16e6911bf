/// Any message received on a daxshare queue pair, decoded by its leading type field.
///
/// This is what a receive completion is handed to. Which kinds are *allowed* at a given moment
/// (negotiate first, data transfer afterwards) is the connection's business, not the codec's.
public enum TransportMessage: Sendable, Hashable {
    case negotiateRequest(TransportNegotiateRequest)
    case negotiateResponse(TransportNegotiateResponse)
    case dataTransfer(DataTransferMessage)

    public var type: TransportMessageType {
        switch self {
        case .negotiateRequest: .negotiateRequest
        case .negotiateResponse: .negotiateResponse
        case .dataTransfer: .dataTransfer
        }
    }

    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(WireError) -> TransportMessage {
        var r = ByteReader(buffer)
        let raw = try r.u16("type")
        guard let type = TransportMessageType(rawValue: raw) else { throw .unknownMessageType(raw) }
        switch type {
        case .negotiateRequest:
            return .negotiateRequest(try TransportNegotiateRequest.decodeBody(&r))
        case .negotiateResponse:
            return .negotiateResponse(try TransportNegotiateResponse.decodeBody(&r))
        case .dataTransfer:
            return .dataTransfer(try DataTransferMessage.decode(buffer))
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> TransportMessage {
        try withBytes(bytes) { b throws(WireError) in try decode(b) }
    }

    public func encode() throws(WireError) -> [UInt8] {
        switch self {
        case .negotiateRequest(let m): try m.encode()
        case .negotiateResponse(let m): try m.encode()
        case .dataTransfer(let m): try m.encode()
        }
    }
}
