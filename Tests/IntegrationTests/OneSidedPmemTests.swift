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

    /// One-sided writes and reads of odd lengths land exactly where they were aimed: the model
    /// and the target agree byte for byte, and reads of other ranges return the model. On
    /// on-demand-paging regions (rxe in Linux 7.2) that holds only for transfers that start at a
    /// page boundary: ones that start inside a page were misplaced (tens of thousands of bytes
    /// wrong, plain regions exact), which is why the client's one-sided path starts every RDMA
    /// operation at a page (`LayoutSettings.remoteAlignment`).
    @Test(arguments: ["pmem-odp", "anonymous", "anonymous-odp"], ["pages", "page-offset"])
    func pageAlignedTransfersOfAnyLengthLandExactly(target kind: String, shape: String) async throws {
        try await transfersLandExactly(target: kind, shape: shape)
    }

    /// Transfers that start anywhere, on a plain (pinned) region: exact.
    @Test(arguments: ["any", "in-page"])
    func unalignedTransfersOnAPlainRegionLandExactly(shape: String) async throws {
        try await transfersLandExactly(target: "anonymous", shape: shape)
    }

    func transfersLandExactly(target kind: String, shape: String) async throws {
        let (_, mapping) = try mappedFile("unaligned-\(kind)")
        let (listener, server, client) = try await Testbed.connectedPair()
        defer { client.close(); server.close(); listener.close() }
        let span = 256 << 10
        var keep: [AnyObject] = []
        let remote: RemoteMemory
        let view: UnsafeMutableRawBufferPointer
        switch kind {
        case "pmem-odp":
            let region = try MemoryRegion(
                domain: server.domain, address: try #require(mapping.baseAddress), length: span,
                access: Self.odpAccess, owner: mapping)
            try? region.prefetch(forWrite: true)
            keep.append(region)
            remote = region.remote()
            view = UnsafeMutableRawBufferPointer(start: mapping.baseAddress, count: span)
        default:
            let access: MemoryAccess = kind == "anonymous" ? [.localWrite, .remoteRead, .remoteWrite] : Self.odpAccess
            let buffer = try RegisteredBuffer(domain: server.domain, length: span, access: access)
            keep.append(buffer)
            remote = buffer.region.remote()
            view = buffer.bytes
        }
        _ = keep
        var model = [UInt8](repeating: 0, count: span)
        view.copyBytes(from: model)
        let out = try RegisteredBuffer(domain: client.domain, length: 65536, access: [.localWrite])
        let back = try RegisteredBuffer(domain: client.domain, length: 16384, access: [.localWrite])
        var seed: UInt64 = 0x9E37
        func next() -> Int { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Int(truncatingIfNeeded: seed >> 33) }
        var mismatches: [String] = []
        for i in 0..<40 {
            var length = [512, 4096, 8192, 12_288, 65_536, 1, 777][next() % 7]
            var offset = next() % (span - length)
            switch shape {
            case "pages": offset -= offset % 4096; length = max(4096, length - length % 4096)
            case "page-offset": offset -= offset % 4096
            case "in-page": length = min(length, 4096 - offset % 4096)
            default: break
            }
            let data = pattern(length, seed: UInt8(truncatingIfNeeded: i + 1))
            out.bytes.copyBytes(from: data)
            try await client.write(from: [out.region.segment(length: length)], to: try #require(remote.slice(offset: UInt64(offset), length: UInt64(length))))
            model.replaceSubrange(offset..<(offset + length), with: data)
            var at = next() % (span - 16384)
            if shape == "pages" || shape == "page-offset" { at -= at % 4096 }
            try await client.read(into: [back.region.segment(length: 16384)], from: try #require(remote.slice(offset: UInt64(at), length: 16384)))
            if Array(back.bytes) != Array(model[at..<(at + 16384)]) { mismatches.append("read \(at)+16384 after write \(i) at \(offset)+\(length)") }
        }
        let onServer = Array(view)
        let differ = zip(onServer, model).filter { $0 != $1 }.count
        #expect(mismatches.isEmpty, "\(mismatches.count) reads differ from the model: \(mismatches.prefix(5))")
        #expect(differ == 0, "\(differ) bytes of the file differ from what was written")
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
