import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// An open RDMA device (`struct ibv_context` from `ibv_open_device`).
///
/// Connections made through rdma_cm use the context rdma_cm opened for the
/// bound address; `Device` is for asking what a device can do (ODP caps,
/// limits, port state) before or apart from that.
// @unchecked: an immutable context pointer; ibv_query_* calls are thread-safe.
public final class Device: @unchecked Sendable {
    public let name: String
    let context: UnsafeMutablePointer<ibv_context>
    private let owned: Bool

    /// Names of the RDMA devices present (`ibv_get_device_list`). Empty on a
    /// machine without RDMA.
    public static func names() -> [String] {
        var count: Int32 = 0
        guard let list = ibv_get_device_list(&count) else { return [] }
        defer { ibv_free_device_list(list) }
        return (0..<Int(count)).compactMap { i in
            list[i].flatMap { ibv_get_device_name($0) }.map { String(cString: $0) }
        }
    }

    /// Opens the device called `name` (`ibv_open_device`).
    public init(name: String) throws(VerbsError) {
        var count: Int32 = 0
        guard let list = ibv_get_device_list(&count) else {
            throw .call("ibv_get_device_list", Errno(rawValue: errno))
        }
        defer { ibv_free_device_list(list) }
        for i in 0..<Int(count) {
            guard let dev = list[i], let cname = ibv_get_device_name(dev),
                  String(cString: cname) == name else { continue }
            guard let ctx = ibv_open_device(dev) else {
                throw .call("ibv_open_device(\(name))", Errno(rawValue: errno))
            }
            self.name = name
            self.context = ctx
            self.owned = true
            return
        }
        throw .noSuchDevice(name)
    }

    /// Wraps a context owned by someone else (rdma_cm's `cm_id->verbs`).
    init(borrowing context: UnsafeMutablePointer<ibv_context>) {
        self.context = context
        self.owned = false
        self.name = ibv_get_device_name(context.pointee.device).map { String(cString: $0) } ?? "?"
    }

    deinit {
        if owned { ibv_close_device(context) }
    }

    /// Device limits and capabilities (`ibv_query_device_ex`).
    public func attributes() throws(VerbsError) -> DeviceAttributes {
        var attr = ibv_device_attr_ex()
        try check("ibv_query_device_ex(\(name))", ibv_query_device_ex(context, nil, &attr))
        return DeviceAttributes(attr)
    }

    /// Whether this build can post and register for RDMA FLUSH: built against an rdma-core that
    /// has it (>= 45: `ibv_wr_flush`), as `scripts/build-rdma-core` makes; Debian 12's has not.
    public static var buildHasFlush: Bool { dxr_have_wr_flush() != 0 }

    /// What `--version` says of RDMA FLUSH in this build.
    public static var flushSupportDescription: String {
        buildHasFlush
            ? "RDMA FLUSH: built in (rdma-core with ibv_wr_flush)"
            : "RDMA FLUSH: not built in (this rdma-core has no ibv_wr_flush; see scripts/build-rdma-core)"
    }

    /// State of port `port` (`ibv_query_port`).
    public func port(_ port: UInt8 = 1) throws(VerbsError) -> PortAttributes {
        var attr = ibv_port_attr()
        try check("ibv_query_port(\(name), \(port))", ___ibv_query_port(context, port, &attr))
        return PortAttributes(attr)
    }
}

/// What a device can do, from `struct ibv_device_attr_ex`.
public struct DeviceAttributes: Sendable {
    public var maxMemoryRegionSize: UInt64
    public var maxQueuePairWorkRequests: Int
    public var maxScatterGatherElements: Int
    public var maxCompletionQueueEntries: Int
    public var maxMemoryRegions: Int
    /// Outstanding RDMA READs a QP may have as responder and initiator.
    public var maxQPReadAtomics: Int
    public var maxQPInitiatorReadAtomics: Int
    public var odp: OnDemandPagingCaps
    /// The device places RDMA FLUSH to persistence (the kernel's FLUSH_PERSISTENT capability).
    public var flushPersistent: Bool

    /// RDMA FLUSH to persistence on on-demand-paging memory over RC, as layouts need: the device
    /// has it, its ODP has it (rxe since Linux 6.16), and this build can use it.
    public var flushesOnDemandMemory: Bool { Device.buildHasFlush && flushPersistent && odp.rcFlush && odp.supportsOneSidedRC }

    init(_ a: ibv_device_attr_ex) {
        maxMemoryRegionSize = a.orig_attr.max_mr_size
        maxQueuePairWorkRequests = Int(a.orig_attr.max_qp_wr)
        maxScatterGatherElements = Int(a.orig_attr.max_sge)
        maxCompletionQueueEntries = Int(a.orig_attr.max_cqe)
        maxMemoryRegions = Int(a.orig_attr.max_mr)
        maxQPReadAtomics = Int(a.orig_attr.max_qp_rd_atom)
        maxQPInitiatorReadAtomics = Int(a.orig_attr.max_qp_init_rd_atom)
        odp = OnDemandPagingCaps(a.odp_caps)
        flushPersistent = dxr_device_flushes_persistent(a.device_cap_flags_ex) != 0
    }
}

/// On-demand paging support (`struct ibv_odp_caps`). fsdax memory can only be
/// registered on demand, so a server needs `supported` and `rc` to include
/// RDMA READ and WRITE.
public struct OnDemandPagingCaps: Sendable, Equatable {
    /// `general_caps` (bit 0: ODP supported, bit 1: implicit ODP).
    public var general: UInt64
    /// `per_transport_caps.rc_odp_caps`, a mask of `ibv_odp_transport_cap_bits`.
    public var rc: UInt32

    public init(general: UInt64, rc: UInt32) {
        self.general = general
        self.rc = rc
    }

    init(_ c: ibv_odp_caps) {
        self.init(general: c.general_caps, rc: c.per_transport_caps.rc_odp_caps)
    }

    public var supported: Bool { general & UInt64(IBV_ODP_SUPPORT.rawValue) != 0 }
    public var rcSend: Bool { rc & IBV_ODP_SUPPORT_SEND.rawValue != 0 }
    public var rcReceive: Bool { rc & IBV_ODP_SUPPORT_RECV.rawValue != 0 }
    public var rcWrite: Bool { rc & IBV_ODP_SUPPORT_WRITE.rawValue != 0 }
    public var rcRead: Bool { rc & IBV_ODP_SUPPORT_READ.rawValue != 0 }
    /// RDMA FLUSH on ODP memory (IB_ODP_SUPPORT_FLUSH, which rdma-core passes through unnamed).
    public var rcFlush: Bool { dxr_odp_flush(rc) != 0 }
    /// True when one-sided READ and WRITE may target ODP memory over RC.
    public var supportsOneSidedRC: Bool { supported && rcRead && rcWrite }
}

/// Port state from `struct ibv_port_attr`.
public struct PortAttributes: Sendable {
    public var isActive: Bool
    /// The active path MTU in bytes (rxe on a 9000-byte veth: 4096).
    public var activeMTU: Int

    init(_ a: ibv_port_attr) {
        isActive = a.state == IBV_PORT_ACTIVE
        activeMTU = 128 << Int(a.active_mtu.rawValue)
    }
}
