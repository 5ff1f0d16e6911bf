import DaxshareVerbs
import DaxshareWire

/// Client memory the server may RDMA WRITE into (two-sided READ) and RDMA READ from
/// (two-sided WRITE): registered on the connection's protection domain with local-write,
/// remote-read and remote-write access.
public protocol RegisteredMemory: AnyObject, Sendable {
    var bytes: UnsafeMutableRawBufferPointer { get }
    /// The descriptor a READ or WRITE request carries for `[offset, offset + length)`.
    func descriptor(offset: Int, length: Int) -> BufferDescriptor
}

/// Makes `RegisteredMemory`. Registration is expensive (pinning, NIC tables), so callers
/// register once and reuse (see `BouncePool`).
public protocol BufferRegistrar: Sendable {
    func register(length: Int) throws(ClientError) -> any RegisteredMemory
    /// Registers the caller's memory as it is (`CallerBuffers`): nothing is allocated.
    func register(existing buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> any RegisteredMemory
    /// Registers the caller's memory for the server to read only (two-sided WRITE) and the NIC
    /// to send from (one-sided WRITE): no write access, so a read-only file mapping can be
    /// registered (`MappedWindow`). Nothing may be read into it.
    func register(readOnly buffer: UnsafeRawBufferPointer) throws(ClientError) -> any RegisteredMemory
}

extension BufferRegistrar {
    /// Registrars that do not tell access apart register read-only memory as any other.
    public func register(readOnly buffer: UnsafeRawBufferPointer) throws(ClientError) -> any RegisteredMemory {
        try register(existing: UnsafeMutableRawBufferPointer(mutating: buffer))
    }
}

/// Registration in a verbs protection domain: the connection's own, since memory registered
/// anywhere else is unreachable through that connection.
public struct VerbsBufferRegistrar: BufferRegistrar {
    public let domain: ProtectionDomain
    public init(domain: ProtectionDomain) { self.domain = domain }

    public func register(length: Int) throws(ClientError) -> any RegisteredMemory {
        do {
            return VerbsRegisteredMemory(
                try RegisteredBuffer(domain: domain, length: length, access: [.localWrite, .remoteRead, .remoteWrite]))
        } catch {
            throw .transport("cannot register \(length) bytes of buffer memory: \(error)")
        }
    }

    public func register(existing buffer: UnsafeMutableRawBufferPointer) throws(ClientError) -> any RegisteredMemory {
        do {
            return VerbsRegisteredMemory(try MemoryRegion(domain: domain, address: buffer.baseAddress!, length: buffer.count,
                                                          access: [.localWrite, .remoteRead, .remoteWrite]))
        } catch {
            throw .transport("cannot register the caller's \(buffer.count) bytes: \(error)")
        }
    }

    public func register(readOnly buffer: UnsafeRawBufferPointer) throws(ClientError) -> any RegisteredMemory {
        do {
            return VerbsRegisteredMemory(try MemoryRegion(domain: domain, address: UnsafeMutableRawPointer(mutating: buffer.baseAddress!),
                                                          length: buffer.count, access: [.remoteRead]))
        } catch {
            throw .transport("cannot register the caller's \(buffer.count) bytes for reading: \(error)")
        }
    }
}

final class VerbsRegisteredMemory: RegisteredMemory {
    let region: MemoryRegion
    init(_ buffer: RegisteredBuffer) { region = buffer.region }
    init(_ region: MemoryRegion) { self.region = region }
    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: region.address, count: region.length) }
    func descriptor(offset: Int, length: Int) -> BufferDescriptor {
        let r = region.remote(offset: offset, length: length)
        return BufferDescriptor(address: r.address, rkey: r.rkey, length: UInt32(length))
    }
}
