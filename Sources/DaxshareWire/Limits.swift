/// Protocol constants and absolute limits (PROTOCOL.md, "Limits").
///
/// The codec enforces the *absolute* limits below on every message, so a decoded value can be
/// trusted to be small enough to allocate for. The smaller, per-server limits that a server
/// advertises in its NEGOTIATE response are enforced by the server with a status reply.
public enum Limits {
    /// TCP-style port the server listens on with rdma_cm (the SMB Direct iWARP port).
    public static let defaultPort: UInt16 = 5445
    /// The only transport version and upper-layer dialect defined: 1.0.
    public static let version1: UInt16 = 0x0100

    /// Size of the transport data transfer header; payloads start at this offset (8-aligned).
    public static let dataTransferHeaderSize = 24
    /// Size of the upper-layer request/response header.
    public static let headerSize = 40

    /// A receive buffer must hold at least this many bytes (negotiated `maxReceiveSize`).
    public static let minReceiveSize: UInt32 = 256
    /// Every peer must reassemble messages of at least this size (`maxFragmentedSize`), which
    /// is enough for the largest request v1 defines.
    public static let minFragmentedSize: UInt32 = 128 * 1024
    /// The largest upper-layer message (header + body) any v1 peer may send, whatever is negotiated.
    public static let maxMessageSize: UInt32 = 16 * 1024 * 1024

    /// Longest path, in UTF-8 bytes (Linux PATH_MAX less the terminating NUL).
    public static let maxPathLength = 4095
    /// Longest single name (directory entry), in UTF-8 bytes.
    public static let maxNameLength = 255
    /// Longest export name, in UTF-8 bytes.
    public static let maxExportNameLength = 255
    /// Longest authentication identity, in UTF-8 bytes.
    public static let maxIdentityLength = 255
    /// Buffer descriptors in one READ or WRITE request.
    public static let maxBufferDescriptors = 64
    /// Extents in one LAYOUTGET reply.
    public static let maxExtentsPerLayout = 64
    /// Ranges in one LAYOUTCOMMIT request.
    public static let maxCommitRanges = 64
    /// Entries in one LIST page.
    public static let maxListEntries = 1024
    /// Bytes of ECHO payload.
    public static let maxEchoLength = 65536
    /// Counters in one SERVER_STATS reply.
    public static let maxCounters = 256
    /// Longest counter name, in bytes.
    public static let maxCounterNameLength = 64
    /// Clients in one SERVER_CLIENTS reply.
    public static let maxClientsListed = 256
    /// Layouts listed for one client in a SERVER_CLIENTS reply.
    public static let maxLayoutsListed = 16
    /// Longest file ("EXPORT:PATH") of a layout in a SERVER_CLIENTS reply, in bytes.
    public static let maxClientFileLength = 1024
    /// Size of nonces and HMAC-SHA256 proofs in SESSION_SETUP.
    public static let nonceLength = 32
    /// Size of client and server identifiers in NEGOTIATE.
    public static let guidLength = 16
}
