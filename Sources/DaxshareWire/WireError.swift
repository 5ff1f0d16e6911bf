/// Why a buffer could not be decoded, or a value could not be encoded.
///
/// Every malformed input maps to exactly one of these cases; the codec never traps. The
/// `field` strings are the field names used in `Protocol/PROTOCOL.md`, so a log line such as
/// `closing connection: outOfRange(iomode)` points straight at the table that was violated.
///
/// A peer that receives a message that fails to decode treats it as a protocol violation
/// (PROTOCOL.md, "Protocol violations").
public enum WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The input ended before `field` could be read.
    case truncated(field: String)
    /// A length or count in `field` is above the protocol's absolute limit for it.
    case oversized(field: String)
    /// A magic number (`field`: "magic" or "privateData.magic") does not match.
    case badMagic(field: String)
    /// An upper-layer command code this dialect does not define (in a request, response or callback).
    case unknownCommand(UInt16)
    /// A transport message type this version does not define.
    case unknownMessageType(UInt16)
    /// A length field disagrees with the bytes present or with another field
    /// (for example `bodyLength` vs. the buffer, or `length` vs. the descriptor sum).
    case inconsistentLength(field: String)
    /// A value is outside the set or range the specification allows for `field`.
    case outOfRange(field: String)
    /// A reserved field, or a field that must be zero in this context, is not zero.
    case reservedNotZero(field: String)
    /// A flags field has bits set that this dialect does not define.
    case unknownFlags(field: String, bits: UInt64)
    /// A string field is not valid UTF-8.
    case invalidUTF8(field: String)
    /// An offset that must be a multiple of 8 is not.
    case misaligned(field: String)

    /// The case without its payload, for matching and counting.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case truncated, oversized, badMagic, unknownCommand, unknownMessageType
        case inconsistentLength, outOfRange, reservedNotZero, unknownFlags, invalidUTF8, misaligned
    }

    public var kind: Kind {
        switch self {
        case .truncated: .truncated
        case .oversized: .oversized
        case .badMagic: .badMagic
        case .unknownCommand: .unknownCommand
        case .unknownMessageType: .unknownMessageType
        case .inconsistentLength: .inconsistentLength
        case .outOfRange: .outOfRange
        case .reservedNotZero: .reservedNotZero
        case .unknownFlags: .unknownFlags
        case .invalidUTF8: .invalidUTF8
        case .misaligned: .misaligned
        }
    }

    /// The field the error is about, if it names one.
    public var field: String? {
        switch self {
        case .truncated(let f), .oversized(let f), .badMagic(let f), .inconsistentLength(let f),
             .outOfRange(let f), .reservedNotZero(let f), .invalidUTF8(let f), .misaligned(let f):
            f
        case .unknownFlags(let f, _):
            f
        case .unknownCommand, .unknownMessageType:
            nil
        }
    }

    public var description: String {
        switch self {
        case .unknownCommand(let c): "unknownCommand(0x\(hex4(c)))"
        case .unknownMessageType(let t): "unknownMessageType(0x\(hex4(t)))"
        case .unknownFlags(let f, let bits): "unknownFlags(\(f), 0x\(String(bits, radix: 16)))"
        default: "\(kind.rawValue)(\(field ?? ""))"
        }
    }
}

@inline(__always)
func hex4(_ v: UInt16) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 4 - s.count)) + s
}
