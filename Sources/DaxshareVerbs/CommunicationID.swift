import CRDMA
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// An rdma_cm identifier (`rdma_create_id`) with an event channel of its own,
/// so every connection receives only its own events.
// @unchecked: immutable; its events reach tasks through the mailbox, and librdmacm calls on one id are thread-safe.
final class CommunicationID: @unchecked Sendable {
    let id: UnsafeMutablePointer<rdma_cm_id>
    let channel: CMEventChannel
    let mailbox = CMEventMailbox()
    let loop: EventLoop

    /// A new identifier for an active connection or a listener.
    init(loop: EventLoop) throws(VerbsError) {
        let channel = try CMEventChannel()
        var id: UnsafeMutablePointer<rdma_cm_id>?
        if rdma_create_id(channel.channel, &id, nil, RDMA_PS_TCP) != 0 || id == nil {
            let e = Errno(rawValue: errno)
            channel.destroy()
            throw .call("rdma_create_id", e)
        }
        self.id = id!
        self.channel = channel
        self.loop = loop
        try watch()
    }

    /// Takes over the identifier of an incoming connection request, moving it
    /// off the listener's channel (`rdma_migrate_id`).
    init(migrating id: UnsafeMutablePointer<rdma_cm_id>, loop: EventLoop) throws(VerbsError) {
        let channel = try CMEventChannel()
        if rdma_migrate_id(id, channel.channel) != 0 {
            let e = Errno(rawValue: errno)
            channel.destroy()
            throw .call("rdma_migrate_id", e)
        }
        self.id = id
        self.channel = channel
        self.loop = loop
        try watch()
    }

    private func watch() throws(VerbsError) {
        let channel = self.channel, mailbox = self.mailbox, loop = self.loop
        try loop.register(fd: channel.fd) {
            loop.assertInLoop("reading a CM event channel")
            while let event = channel.next() { mailbox.post(event) }
        }
    }

    /// The verbs context rdma_cm chose for the bound or resolved address.
    var context: UnsafeMutablePointer<ibv_context>? { id.pointee.verbs }

    /// Destroys the identifier and its channel on the loop thread, after any
    /// handler that may be reading the channel. The QP must be destroyed first.
    func destroy() {
        let loop = self.loop
        loop.executeAndWait { [self] in
            loop.unregister(fd: channel.fd)
            rdma_destroy_id(id)
            channel.destroy()
        }
        mailbox.close()
    }
}
