import CRDMA

/// The status of a completed work request (`enum ibv_wc_status`).
public enum WorkCompletionStatus: UInt32, Sendable, CustomStringConvertible {
    case success = 0
    case localLengthError, localQPOperationError, localEEContextOperationError
    case localProtectionError, flushed, memoryWindowBindError, badResponse
    case localAccessError, remoteInvalidRequest, remoteAccessError, remoteOperationError
    case retryExceeded, rnrRetryExceeded, localRDDViolation, remoteInvalidRDRequest
    case remoteAborted, invalidEEContextNumber, invalidEEContextState, fatal
    case responseTimeout, general
    case unknown = 0xFFFF_FFFF

    init(_ status: ibv_wc_status) {
        self = WorkCompletionStatus(rawValue: status.rawValue) ?? .unknown
    }

    public var description: String {
        guard self != .unknown, let s = ibv_wc_status_str(ibv_wc_status(rawValue: rawValue)) else {
            return "unknown status \(rawValue)"
        }
        return String(cString: s)
    }
}

/// What a completed work request was (`enum ibv_wc_opcode`).
public enum WorkCompletionOpcode: Sendable, Equatable, CustomStringConvertible {
    case send, rdmaWrite, rdmaRead, receive, receiveWithImmediate, other(UInt32)

    init(_ op: ibv_wc_opcode) {
        switch op {
        case IBV_WC_SEND: self = .send
        case IBV_WC_RDMA_WRITE: self = .rdmaWrite
        case IBV_WC_RDMA_READ: self = .rdmaRead
        case IBV_WC_RECV: self = .receive
        case IBV_WC_RECV_RDMA_WITH_IMM: self = .receiveWithImmediate
        default: self = .other(op.rawValue)
        }
    }

    public var description: String {
        switch self {
        case .send: "SEND"
        case .rdmaWrite: "RDMA_WRITE"
        case .rdmaRead: "RDMA_READ"
        case .receive: "RECV"
        case .receiveWithImmediate: "RECV_RDMA_WITH_IMM"
        case let .other(v): "opcode \(v)"
        }
    }
}

/// One entry polled from a completion queue (`struct ibv_wc`), copied out so it
/// can travel to async code.
public struct WorkCompletion: Sendable {
    public var id: UInt64
    public var status: WorkCompletionStatus
    public var opcode: WorkCompletionOpcode
    public var byteCount: Int
    public var vendorError: UInt32

    init(_ wc: ibv_wc) {
        id = wc.wr_id
        status = WorkCompletionStatus(wc.status)
        // The opcode is only defined for successful completions.
        opcode = wc.status == IBV_WC_SUCCESS ? WorkCompletionOpcode(wc.opcode) : .other(wc.opcode.rawValue)
        byteCount = Int(wc.byte_len)
        vendorError = wc.vendor_err
    }

    /// The completion as a typed error, or nil when it succeeded.
    public var error: VerbsError? {
        status == .success ? nil : .workCompletion(status, opcode: opcode, vendorError: vendorError)
    }
}
