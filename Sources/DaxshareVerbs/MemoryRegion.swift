import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// Access rights of a memory region (`enum ibv_access_flags`).
public struct MemoryAccess: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let localWrite = MemoryAccess(rawValue: Int32(IBV_ACCESS_LOCAL_WRITE.rawValue))
    public static let remoteWrite = MemoryAccess(rawValue: Int32(IBV_ACCESS_REMOTE_WRITE.rawValue))
    public static let remoteRead = MemoryAccess(rawValue: Int32(IBV_ACCESS_REMOTE_READ.rawValue))
    /// On-demand paging: pages are faulted in by the NIC instead of pinned.
    /// The only way to register fsdax (MAP_SYNC) memory.
    public static let onDemand = MemoryAccess(rawValue: Int32(IBV_ACCESS_ON_DEMAND.rawValue))
    /// A peer's RDMA FLUSH with placement type PERSISTENT may target the region
    /// (IBV_ACCESS_FLUSH_PERSISTENT). Empty in a build without FLUSH (`Device.buildHasFlush`).
    public static let flushPersistent = MemoryAccess(rawValue: dxr_access_flush_persistent())
}

/// Where a peer's registered memory is: what a one-sided operation targets.
/// This triple is what a layout extent or a buffer descriptor carries.
public struct RemoteMemory: Sendable, Hashable {
    public var address: UInt64
    public var rkey: UInt32
    public var length: UInt64

    public init(address: UInt64, rkey: UInt32, length: UInt64) {
        self.address = address
        self.rkey = rkey
        self.length = length
    }

    /// The sub-range `[offset, offset + length)`, or nil when it does not fit.
    public func slice(offset: UInt64, length: UInt64) -> RemoteMemory? {
        guard offset <= self.length, length <= self.length - offset else { return nil }
        return RemoteMemory(address: address &+ offset, rkey: rkey, length: length)
    }
}

/// A registered memory region (`ibv_reg_mr`, `ibv_dereg_mr`).
///
/// The region keeps its protection domain alive, and optionally the object
/// that owns the memory (a file mapping, a buffer), so neither can go away
/// while the NIC may still touch it. Deregistration happens on `deregister()`
/// or when the last reference goes.
// @unchecked: `mr` changes only under `lock`; everything else is immutable.
public final class MemoryRegion: @unchecked Sendable {
    public let domain: ProtectionDomain
    public let address: UnsafeMutableRawPointer
    public let length: Int
    public let access: MemoryAccess
    public let lkey: UInt32
    public let rkey: UInt32
    private let lock = PthreadLock()
    private var mr: UnsafeMutablePointer<ibv_mr>?
    private let owner: AnyObject?

    /// Registers `[address, address + length)` in `domain`. `owner` is retained
    /// for the region's lifetime.
    public init(
        domain: ProtectionDomain, address: UnsafeMutableRawPointer, length: Int,
        access: MemoryAccess, owner: AnyObject? = nil
    ) throws(VerbsError) {
        guard length > 0 else { throw .invalidArgument("memory region length must be positive") }
        guard let mr = ibv_reg_mr(domain.pd, address, length, access.rawValue) else {
            throw .call("ibv_reg_mr(access 0x\(String(access.rawValue, radix: 16)))", Errno(rawValue: errno))
        }
        self.domain = domain
        self.address = address
        self.length = length
        self.access = access
        self.lkey = mr.pointee.lkey
        self.rkey = mr.pointee.rkey
        self.mr = mr
        self.owner = owner
    }

    deinit { deregister() }

    /// Whether the region is still registered.
    public var isRegistered: Bool { lock.withLock { mr != nil } }

    /// `ibv_dereg_mr`; idempotent. After it returns, the rkey is dead: a peer's
    /// operation on it completes with a remote access error.
    public func deregister() {
        lock.withLock {
            if let r = mr { ibv_dereg_mr(r) }
            mr = nil
        }
    }

    /// The descriptor a peer needs to target `[offset, offset + length)` of this region.
    public func remote(offset: Int = 0, length: Int? = nil) -> RemoteMemory {
        let len = length ?? (self.length - offset)
        return RemoteMemory(address: UInt64(UInt(bitPattern: address)) &+ UInt64(offset), rkey: rkey, length: UInt64(len))
    }

    /// Asks the NIC to fault in `[offset, offset + length)` of an on-demand
    /// region now (`ibv_advise_mr` with PREFETCH or PREFETCH_WRITE), so the
    /// first remote access does not pay for an RNR NAK and a page fault.
    /// Best effort: devices without support answer EOPNOTSUPP.
    public func prefetch(offset: Int = 0, length: Int? = nil, forWrite: Bool) throws(VerbsError) {
        let len = length ?? (self.length - offset)
        guard offset >= 0, len > 0, offset + len <= self.length else {
            throw .invalidArgument("prefetch range \(offset)+\(len) outside region of \(self.length)")
        }
        var sge = ibv_sge(addr: UInt64(UInt(bitPattern: address)) + UInt64(offset), length: UInt32(len), lkey: lkey)
        let advice = forWrite ? IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE : IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH
        try check("ibv_advise_mr", ibv_advise_mr(domain.pd, advice, UInt32(IB_UVERBS_ADVISE_MR_FLAG_FLUSH.rawValue), &sge, 1))
    }

    /// A scatter/gather element for `[offset, offset + length)` of this region.
    public func segment(offset: Int = 0, length: Int) -> ScatterGatherElement {
        precondition(offset >= 0 && length >= 0 && offset + length <= self.length, "segment outside region")
        return ScatterGatherElement(address: UInt64(UInt(bitPattern: address)) + UInt64(offset), length: UInt32(length), lkey: lkey)
    }
}

/// One piece of local memory in a work request (`struct ibv_sge`).
public struct ScatterGatherElement: Sendable, Hashable {
    public var address: UInt64
    public var length: UInt32
    public var lkey: UInt32

    public init(address: UInt64, length: UInt32, lkey: UInt32) {
        self.address = address
        self.length = length
        self.lkey = lkey
    }

    var c: ibv_sge { ibv_sge(addr: address, length: length, lkey: lkey) }
}

/// Page-aligned anonymous memory registered in a domain: the client-side and
/// message buffers. Freed after deregistration.
// @unchecked: immutable; its users own disjoint ranges of `bytes`.
public final class RegisteredBuffer: @unchecked Sendable {
    public let region: MemoryRegion
    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: region.address, count: region.length) }

    public init(domain: ProtectionDomain, length: Int, access: MemoryAccess) throws(VerbsError) {
        let memory = AlignedMemory(length: length)
        region = try MemoryRegion(domain: domain, address: memory.pointer, length: length, access: access, owner: memory)
    }
}

/// Page-aligned, zeroed heap memory that frees itself.
// @unchecked: an immutable pointer, freed once, in deinit.
final class AlignedMemory: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(length: Int) {
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(length, 1), alignment: 4096)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(length, 1))
    }
    deinit { pointer.deallocate() }
}
