import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A protection domain (`ibv_alloc_pd`). Memory regions and queue pairs in
/// different domains cannot be used together, which is how the server keeps
/// one client from using an rkey granted to another: one domain per connection.
// @unchecked: an immutable pointer; verbs calls that take a PD are thread-safe.
public final class ProtectionDomain: @unchecked Sendable {
    let pd: UnsafeMutablePointer<ibv_pd>
    /// The device this domain lives on; kept so the context outlives the domain.
    public let device: Device

    init(device: Device) throws(VerbsError) {
        guard let pd = ibv_alloc_pd(device.context) else {
            throw .call("ibv_alloc_pd(\(device.name))", Errno(rawValue: errno))
        }
        self.pd = pd
        self.device = device
    }

    /// Memory regions keep their domain alive, so this runs after the last one
    /// is deregistered and `ibv_dealloc_pd` cannot fail with EBUSY for them.
    deinit {
        ibv_dealloc_pd(pd)
    }
}
