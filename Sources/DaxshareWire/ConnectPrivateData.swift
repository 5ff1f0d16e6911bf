/// The private data carried by rdma_cm's connect, accept and reject (PROTOCOL.md §2.2).
///
/// It lets each side refuse a peer that is not speaking daxshare before any queue pair
/// resources are committed, and lets a server say *why* it rejected a connection.
/// Negotiation of sizes and credits happens afterwards, in-band (``TransportNegotiateRequest``).
public struct ConnectPrivateData: Sendable, Hashable {
    /// The four bytes "DXSD" every daxshare private data starts with.
    public static let magic: [UInt8] = [0x44, 0x58, 0x53, 0x44]
    /// Encoded size. rdma_cm may deliver more (zero padding); the rest is ignored.
    public static let size = 16

    public enum Kind: UInt16, Sendable, Hashable {
        case connect = 1
        case accept = 2
        case reject = 3
    }

    /// Why a server rejected a connection request.
    public struct RejectReason: RawRepresentable, Sendable, Hashable {
        public var rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        public static let none = RejectReason(rawValue: 0)
        public static let badPrivateData = RejectReason(rawValue: 1)
        public static let versionNotSupported = RejectReason(rawValue: 2)
        public static let tooManyConnections = RejectReason(rawValue: 3)
        public static let shuttingDown = RejectReason(rawValue: 4)
        static let known: ClosedRange<UInt16> = 0...4
    }

    public var kind: Kind
    /// Only meaningful for `.reject`; zero otherwise.
    public var reason: RejectReason
    /// Lowest and highest transport versions the sender supports.
    public var minVersion: UInt16
    public var maxVersion: UInt16

    public init(kind: Kind, reason: RejectReason = .none,
                minVersion: UInt16 = Limits.version1, maxVersion: UInt16 = Limits.version1) {
        self.kind = kind
        self.reason = reason
        self.minVersion = minVersion
        self.maxVersion = maxVersion
    }

    func validate() throws(WireError) {
        if minVersion > maxVersion { throw .outOfRange(field: "minVersion") }
        if !RejectReason.known.contains(reason.rawValue) { throw .outOfRange(field: "reason") }
        if kind != .reject && reason != .none { throw .reservedNotZero(field: "reason") }
        if kind == .reject && reason == .none { throw .outOfRange(field: "reason") }
    }

    public func encode() throws(WireError) -> [UInt8] {
        try validate()
        var w = ByteWriter(capacity: Self.size)
        w.append(Self.magic)
        w.u16(kind.rawValue)
        w.u16(reason.rawValue)
        w.u16(minVersion)
        w.u16(maxVersion)
        w.u32(0)
        return w.bytes
    }

    /// Decodes private data; bytes after the first 16 are ignored (rdma_cm pads with zeros).
    public static func decode(_ buffer: UnsafeRawBufferPointer) throws(WireError) -> ConnectPrivateData {
        var r = ByteReader(buffer)
        let m = try r.bytes(4, "privateData.magic")
        if m != magic { throw .badMagic(field: "privateData.magic") }
        guard let kind = Kind(rawValue: try r.u16("kind")) else { throw .outOfRange(field: "kind") }
        let reason = RejectReason(rawValue: try r.u16("reason"))
        let minV = try r.u16("minVersion")
        let maxV = try r.u16("maxVersion")
        try r.reserved(4, "reserved")
        let pd = ConnectPrivateData(kind: kind, reason: reason, minVersion: minV, maxVersion: maxV)
        try pd.validate()
        return pd
    }

    public static func decode(_ bytes: [UInt8]) throws(WireError) -> ConnectPrivateData {
        try withBytes(bytes) { b throws(WireError) in try decode(b) }
    }
}

/// Runs a typed-throwing decoder over an array's storage.
@inline(__always)
func withBytes<T>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(WireError) -> T) throws(WireError) -> T {
    let result: Result<T, WireError> = bytes.withUnsafeBytes { raw in
        Result { () throws(WireError) -> T in try body(raw) }
    }
    return try result.get()
}
