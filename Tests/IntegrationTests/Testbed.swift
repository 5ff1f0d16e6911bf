import DaxshareVerbs
import Foundation
import Testing

/// What the testbed VM provides: an rxe address and an fsdax mount. The suite
/// fails outright elsewhere: these tests mean nothing without real RDMA and pmem.
enum Testbed {
    static var address: String {
        get throws {
            guard let a = ProcessInfo.processInfo.environment["DAXSHARE_TEST_ADDR"], !a.isEmpty else {
                throw TestbedError.missing("DAXSHARE_TEST_ADDR (run through `make test-vm`)")
            }
            return a
        }
    }

    static var pmemDirectory: String {
        get throws {
            guard let p = ProcessInfo.processInfo.environment["DAXSHARE_PMEM"], !p.isEmpty else {
                throw TestbedError.missing("DAXSHARE_PMEM (run through `make test-vm`)")
            }
            return p
        }
    }

    /// A fresh path on the fsdax mount.
    static func pmemPath(_ name: String) throws -> String {
        let dir = try pmemDirectory + "/it-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/" + name
    }

    /// A listener on the testbed address and a client connected to it, both in
    /// this process, over rxe's loopback through rdma_cm.
    static func connectedPair(
        options: ConnectionOptions = .init()
    ) async throws -> (listener: Listener, server: Connection, client: Connection) {
        let address = try address
        let listener = try Listener(host: address, port: 0)
        async let accepted: Connection = {
            var requests = listener.requests.makeAsyncIterator()
            guard let request = await requests.next() else { throw TestbedError.missing("connection request") }
            guard request.privateData.starts(with: Array("hello server".utf8)) else {
                throw TestbedError.missing("the client's private data, got \(request.privateData.prefix(16))")
            }
            return try await request.accept(privateData: Array("hello client".utf8), options: options)
        }()
        let client = try await Connection.connect(
            host: address, port: listener.address.port, privateData: Array("hello server".utf8), options: options)
        let server = try await accepted
        return (listener, server, client)
    }
}

enum TestbedError: Error, CustomStringConvertible {
    case missing(String)
    var description: String {
        switch self { case let .missing(what): "testbed: missing \(what)" }
    }
}

/// A deterministic byte pattern, different for every seed; bytes a page apart differ, so a
/// transfer misplaced by any offset shows. Written through the buffer: a closure per byte
/// took seconds per MiB in the debug test bundle under emulation.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { bytes, initialized in
        for i in 0..<count { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ Int(seed) &* 7 &+ (i >> 8)) }
        initialized = count
    }
}

/// A temporary file of `size` random bytes from the kernel's generator (a byte loop in the
/// debug test bundle took most of a minute for 64 MiB under emulation).
func randomTestFile(_ size: Int, prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID())"
    let random = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
    defer { try? random.close() }
    var data = Data()
    while data.count < size { data += try random.read(upToCount: min(size - data.count, 1 << 20)) ?? Data() }
    FileManager.default.createFile(atPath: path, contents: data)
    return path
}

/// A file's SHA-256, in hex, from coreutils' `sha256sum`: the debug test bundle's own
/// (swift-crypto built without optimisation) takes seconds per 64 MiB under emulation.
func sha256Hex(ofFile path: String) throws -> String {
    let r = try run("/usr/bin/sha256sum", [path])
    guard r.status == 0, let digest = r.out.split(separator: " ").first else {
        throw TestbedError.missing("sha256sum \(path): \(r.err)")
    }
    return String(digest)
}
