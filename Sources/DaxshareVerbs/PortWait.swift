import CRDMA
#if canImport(Glibc)
import Glibc
#endif

/// rdma_cm identifiers whose last CM message waits for their port to come back.
///
/// Disconnecting or destroying an identifier that sent a connect or accept sends a CM message
/// (DREQ, DREP or REJ) on the device's GSI queue pair. On soft-RoCE (measured on Linux 7.2), a
/// CM message sent while the port is down moves that queue pair to the error state for good:
/// no connection on the device can be made or ended cleanly again until the device is
/// re-created. So a connection torn down while its port is down destroys its queue pair at
/// once (its memory regions can go), and its identifier is parked here, to be disconnected and
/// destroyed when the port is active again. On hardware this only delays a DREQ that could not
/// have arrived.
// @unchecked: `parked` and `polling` only under `lock`.
final class PortWait: @unchecked Sendable {
    static let shared = PortWait()

    private struct Parked { let cm: CommunicationID; let device: Device; let port: UInt8 }
    private let lock = PthreadLock()
    private var parked: [Parked] = []
    private var polling = false

    func park(_ cm: CommunicationID, device: Device, port: UInt8) {
        let start = lock.withLock { () -> Bool in
            parked.append(Parked(cm: cm, device: device, port: port))
            defer { polling = true }
            return !polling
        }
        if start { Task.detached { await self.poll() } }
    }

    private func poll() async {
        while true {
            try? await Task.sleep(for: .milliseconds(200))
            let (ready, done) = lock.withLock { () -> ([Parked], Bool) in
                let ready = parked.filter { Self.isActive($0.device, $0.port) }
                parked.removeAll { p in ready.contains { $0.cm === p.cm } }
                if parked.isEmpty { polling = false }
                return (ready, parked.isEmpty)
            }
            for p in ready {
                _ = rdma_disconnect(p.cm.id)
                p.cm.destroy()
            }
            if done { return }
        }
    }

    /// Whether `port` is active; a port that cannot be queried counts as active (nothing to
    /// wait for then).
    static func isActive(_ device: Device, _ port: UInt8) -> Bool {
        (try? device.port(port).isActive) ?? true
    }
}
