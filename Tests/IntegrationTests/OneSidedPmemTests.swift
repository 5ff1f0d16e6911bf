import DaxsharePmem
import DaxshareVerbs
import Foundation
import SystemPackage
import Testing

/// The ground truth the product stands on, measured against real rxe and a
/// real fsdax mapping (see shared/TESTBED.md).
@Suite(.serialized) struct OneSidedPmemTests {
    static let fileSize = 2 << 20
    static let odpAccess: MemoryAccess = [.onDemand, .localWrite, .remoteRead, .remoteWrite]

    /// A file on the fsdax mount, allocated and mapped with MAP_SYNC.
    func mappedFile(_ name: String) throws -> (PmemFile, PmemMapping) {
        let file = try PmemFile.open(FilePath(try Testbed.pmemPath(name)), .readWrite, options: [.create, .truncate])
        try file.allocate(offset: 0, length: Self.fileSize)
        let mapping = try file.map(length: Self.fileSize)
        return (file, mapping)
    }

    @Test func deviceReportsOneSidedODP() throws {
        let names = Device.names()
        #expect(names.contains("rxe0"), "devices: \(names)")
        let rxe = try Device(name: "rxe0")
        #expect(try rxe.attributes().odp.supportsOneSidedRC)
        let port = try rxe.port()
        #expect(port.isActive)
        #expect(port.activeMTU == 4096)
    }

    @Test func connectionCarriesPrivateDataBothWays() async throws {
        let (listener, server, client) = try await Testbed.connectedPair()
        defer { client.close(); server.close(); listener.close() }
        // rdma_cm pads private data with zeros to the transport's maximum.
        #expect(client.peerPrivateData.starts(with: Array("hello client".utf8)))
        #expect(client.peerPrivateData.dropFirst(12).allSatisfy { $0 == 0 })
        #expect(server.isConnected && client.isConnected)
    }

    @Test func oneSidedWriteAndReadLandInTheMapSyncMapping() async throws {
        let (file, mapping) = try mappedFile("one-sided")
        #expect(mapping.isPmem, "MAP_SYNC refused: \(String(describing: mapping.fallbackReason))")
        let (listener, server, client) = try await Testbed.connectedPair()
        defer { client.close(); server.close(); listener.close() }

        let region = try MemoryRegion(
            domain: server.domain, address: try #require(mapping.baseAddress), length: Self.fileSize,
            access: Self.odpAccess, owner: mapping)
        try? region.prefetch(forWrite: true)  // best effort; correctness must not depend on it
        let target = try #require(region.remote().slice(offset: 12288, length: 65536))

        let bytes = pattern(65536, seed: 1)
        let out = try RegisteredBuffer(domain: client.domain, length: 65536, access: [.localWrite])
        out.bytes.copyBytes(from: bytes)
        try await client.write(from: [out.region.segment(length: 65536)], to: target)

        let back = try RegisteredBuffer(domain: client.domain, length: 65536, access: [.localWrite])
        try await client.read(into: [back.region.segment(length: 65536)], from: target)
        #expect(Array(back.bytes) == bytes)

        // The server's view of the file: the same bytes, durable after persist.
        try mapping.persist(offset: 12288, length: 65536)
        var onServer = [UInt8](repeating: 0, count: 65536)
        try onServer.withUnsafeMutableBytes { try mapping.copyOut(at: 12288, into: $0) }
        #expect(onServer == bytes)
        // And through the file descriptor, i.e. the file really holds them.
        var viaRead = [UInt8](repeating: 0, count: 65536)
        _ = try viaRead.withUnsafeMutableBytes { try file.descriptor.read(fromAbsoluteOffset: 12288, into: $0) }
        #expect(viaRead == bytes)
        _ = file
    }

    @Test func scatterListsGatherFromSeveralBuffers() async throws {
        let (_, mapping) = try mappedFile("sgl")
        let (listener, server, client) = try await Testbed.connectedPair()
        defer { client.close(); server.close(); listener.close() }
        let region = try MemoryRegion(
            domain: server.domain, address: try #require(mapping.baseAddress), length: Self.fileSize,
            access: Self.odpAccess, owner: mapping)
        let a = try RegisteredBuffer(domain: client.domain, length: 4096, access: [.localWrite])
        let b = try RegisteredBuffer(domain: client.domain, length: 4096, access: [.localWrite])
        a.bytes.copyBytes(from: pattern(4096, seed: 2))
        b.bytes.copyBytes(from: pattern(4096, seed: 3))
        try await client.write(
            from: [a.region.segment(length: 4096), b.region.segment(length: 4096)],
            to: region.remote(offset: 0, length: 8192))
        var onServer = [UInt8](repeating: 0, count: 8192)
        try onServer.withUnsafeMutableBytes { try mapping.copyOut(at: 0, into: $0) }
        #expect(onServer == pattern(4096, seed: 2) + pattern(4096, seed: 3))
    }

    @Test func pinnedRegistrationOfFsdaxIsRefusedWithEOPNOTSUPP() async throws {
        let (_, mapping) = try mappedFile("pinned")
        #expect(mapping.isPmem)
        let (listener, server, client) = try await Testbed.connectedPair()
        defer { client.close(); server.close(); listener.close() }
        let base = try #require(mapping.baseAddress)
        for access: MemoryAccess in [[.localWrite, .remoteRead, .remoteWrite], [.remoteRead]] {
            #expect {
                _ = try MemoryRegion(domain: server.domain, address: base, length: Self.fileSize, access: access)
            } throws: { error in
                guard case let .call(name, errno) = error as? VerbsError else { return false }
                return name.hasPrefix("ibv_reg_mr") && errno == .notSupported
            }
        }
    }

    @Test func truncateUnderALiveRegistrationFailsTheClientsRead() async throws {
        let (file, mapping) = try mappedFile("truncate")
        let (listener, server, client) = try await Testbed.connectedPair()
        defer { client.close(); server.close(); listener.close() }
        let region = try MemoryRegion(
            domain: server.domain, address: try #require(mapping.baseAddress), length: Self.fileSize,
            access: Self.odpAccess, owner: mapping)
        let buffer = try RegisteredBuffer(domain: client.domain, length: 4096, access: [.localWrite])
        let tail = try #require(region.remote().slice(offset: UInt64(Self.fileSize - 4096), length: 4096))
        try await client.read(into: [buffer.region.segment(length: 4096)], from: tail)  // works before

        try file.setSize(4096)  // no recall first: exactly what layouts exist to prevent

        await #expect {
            try await client.read(into: [buffer.region.segment(length: 4096)], from: tail)
        } throws: { error in
            (error as? VerbsError)?.isRemoteAccessError == true
        }
        // The process survives and the queue pair is dead: later requests fail, typed.
        await #expect(throws: VerbsError.self) {
            try await client.read(into: [buffer.region.segment(length: 4096)], from: tail)
        }
    }
}
