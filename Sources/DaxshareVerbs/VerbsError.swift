import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A failure of a verbs or rdma_cm call, or of a work request.
///
/// Calls that fail with an errno surface it unchanged, so callers can match on
/// `Errno.notSupported` (the kernel's answer to a pinned registration of fsdax
/// memory) and the like.
public enum VerbsError: Error, Equatable, CustomStringConvertible {
    /// A verbs or rdma_cm call returned an error; `call` names the C function.
    case call(String, Errno)
    /// A work request completed with a status other than success.
    case workCompletion(WorkCompletionStatus, opcode: WorkCompletionOpcode, vendorError: UInt32)
    /// No RDMA device by that name (or none at all).
    case noSuchDevice(String)
    /// rdma_cm reported an event other than the one the operation waits for.
    case unexpectedEvent(expected: String, got: String, status: Int32)
    /// The peer rejected the connection; `privateData` is what it sent with the reject.
    case rejected(privateData: [UInt8], status: Int32)
    /// The connection is closed or disconnected; no further work requests can run.
    case disconnected
    /// An address that could not be parsed or resolved.
    case badAddress(String)
    /// An argument outside what the call accepts (e.g. a range outside a memory region).
    case invalidArgument(String)
    /// The device's port is down (link lost): no connection can be made until it is active.
    case portDown(String)
    /// An rdma_cm step did not finish in time.
    case timedOut(String)

    public var description: String {
        switch self {
        case let .call(name, errno): return "\(name): \(errno) (errno \(errno.rawValue))"
        case let .workCompletion(status, opcode, vendor):
            return "work request \(opcode) completed with \(status) (vendor error \(vendor))"
        case let .noSuchDevice(name): return "no RDMA device named '\(name)'"
        case let .unexpectedEvent(expected, got, status):
            return "rdma_cm: expected \(expected), got \(got) (status \(status))"
        case let .rejected(_, status): return "connection rejected by peer (status \(status))"
        case .disconnected: return "connection is disconnected"
        case let .badAddress(a): return "bad address: \(a)"
        case let .invalidArgument(s): return "invalid argument: \(s)"
        case let .portDown(device): return "the port of \(device) is down (no link)"
        case let .timedOut(what): return "timed out waiting for \(what)"
        }
    }

    /// True when the error is the remote side refusing access (bad rkey, range
    /// outside the MR, write to a read-only MR, or memory gone after truncate).
    public var isRemoteAccessError: Bool {
        if case .workCompletion(.remoteAccessError, _, _) = self { return true }
        return false
    }
}

/// Runs a verbs call that returns 0 or an errno value (the ibv_* convention).
@inline(__always)
func check(_ name: @autoclosure () -> String, _ rc: Int32) throws(VerbsError) {
    if rc != 0 { throw .call(name(), Errno(rawValue: rc)) }
}

/// Runs a call that returns -1 and sets errno (the rdma_* convention).
@inline(__always)
func checkErrno(_ name: @autoclosure () -> String, _ rc: Int32) throws(VerbsError) {
    if rc != 0 { throw .call(name(), Errno(rawValue: errno == 0 ? -rc : errno)) }
}
