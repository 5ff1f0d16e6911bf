import Foundation
import Testing
@testable import DaxshareService

#if canImport(Glibc)
import Glibc
#endif

/// Serialized: the end-to-end test sets `$NOTIFY_SOCKET`, which is process-wide.
@Suite(.serialized) struct SystemdNotifierTests {
    @Test func buildsTheMessage() {
        #expect(SystemdNotifier.message([("READY", "1"), ("STATUS", "serving 2 exports on 10.0.0.1:5445")])
            == "READY=1\nSTATUS=serving 2 exports on 10.0.0.1:5445\n")
        // A newline in a value would start a new assignment.
        #expect(SystemdNotifier.message([("STATUS", "a\nREADY=1")]) == "STATUS=a READY=1\n")
    }

    @Test func parsesPathAndAbstractAddresses() throws {
        let path = try #require(NotifySocket(environmentValue: "/run/systemd/notify"))
        #expect(path.pathBytes == Array("/run/systemd/notify".utf8) + [0])
        #expect(Int(path.length) == 2 + "/run/systemd/notify".utf8.count + 1)
        let abstract = try #require(NotifySocket(environmentValue: "@daxshare/notify"))
        #expect(abstract.pathBytes == [0] + Array("daxshare/notify".utf8))
        // No terminator: the length ends exactly at the name.
        #expect(Int(abstract.length) == 2 + 1 + "daxshare/notify".utf8.count)
        let sa = abstract.socketAddress
        #expect(sa.sun_family == sa_family_t(AF_UNIX))
        #expect(withUnsafeBytes(of: sa.sun_path) { Array($0.prefix(4)) } == [0, UInt8(ascii: "d"), UInt8(ascii: "a"), UInt8(ascii: "x")])
    }

    @Test(arguments: ["", "@", "relative/notify", "vsock:2:1234", "/" + String(repeating: "x", count: 200)])
    func rejectsUnsupportedAddresses(_ value: String) {
        #expect(NotifySocket(environmentValue: value) == nil)
    }

    @Test func monotonicClockIsMicroseconds() {
        let a = SystemdNotifier.monotonicMicroseconds()
        usleep(2_000)
        let b = SystemdNotifier.monotonicMicroseconds()
        #expect(b - a >= 2_000 && b - a < 2_000_000)
    }

    @Test func sendsToAPathSocket() throws {
        let dir = NSTemporaryDirectory() + "daxshare-notify-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let receiver = try DatagramReceiver(environmentValue: dir + "/notify")
        try SystemdNotifier.send("READY=1\nSTATUS=x\n", to: receiver.socket)
        #expect(try receiver.receive() == "READY=1\nSTATUS=x\n")
    }

    @Test func sendsToAnAbstractSocket() throws {
        let receiver = try DatagramReceiver(environmentValue: "@daxshare-test-\(getpid())-\(UUID().uuidString)")
        try SystemdNotifier.send("STOPPING=1\n", to: receiver.socket)
        #expect(try receiver.receive() == "STOPPING=1\n")
    }

    @Test func sendFailureIsAnErrorNotACrash() throws {
        let nobody = try #require(NotifySocket(environmentValue: "@daxshare-test-nobody-\(UUID().uuidString)"))
        #expect(throws: SystemdNotifier.Failure.send(ECONNREFUSED)) { try SystemdNotifier.send("READY=1\n", to: nobody) }
    }

    /// The public calls, through `$NOTIFY_SOCKET`, as daxshared makes them under systemd.
    @Test func publicCallsUseTheEnvironment() throws {
        let receiver = try DatagramReceiver(environmentValue: "@daxshare-test-env-\(getpid())-\(UUID().uuidString)")
        setenv(SystemdNotifier.environmentVariable, receiver.name, 1)
        defer { unsetenv(SystemdNotifier.environmentVariable) }

        SystemdNotifier.ready(status: "serving 1 export on 10.0.0.1:5445")
        #expect(try receiver.receive() == "READY=1\nSTATUS=serving 1 export on 10.0.0.1:5445\n")

        let before = SystemdNotifier.monotonicMicroseconds()
        SystemdNotifier.reloading()
        let lines = try receiver.receive().split(separator: "\n")
        #expect(lines.first == "RELOADING=1")
        let stamp = try #require(lines.first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst(15)) })
        #expect(stamp >= before && stamp <= SystemdNotifier.monotonicMicroseconds())

        SystemdNotifier.readyAfterReload(status: "serving 2 exports on 10.0.0.1:5445")
        #expect(try receiver.receive() == "READY=1\nSTATUS=serving 2 exports on 10.0.0.1:5445\n")
        SystemdNotifier.status("3 sessions")
        #expect(try receiver.receive() == "STATUS=3 sessions\n")
        SystemdNotifier.stopping()
        #expect(try receiver.receive() == "STOPPING=1\nSTATUS=stopping\n")
    }

    @Test func withoutTheEnvironmentNothingIsSent() {
        unsetenv(SystemdNotifier.environmentVariable)
        SystemdNotifier.ready(status: "no-op")  // returns, sends nowhere
        setenv(SystemdNotifier.environmentVariable, "not-a-socket", 1)
        defer { unsetenv(SystemdNotifier.environmentVariable) }
        SystemdNotifier.stopping()  // logged, not thrown
    }
}

/// A bound AF_UNIX datagram socket standing in for systemd's notify socket.
final class DatagramReceiver {
    let name: String
    let socket: NotifySocket
    private let fd: Int32

    struct SetupError: Error { let call: String; let code: Int32 }

    init(environmentValue: String) throws {
        name = environmentValue
        socket = try #require(NotifySocket(environmentValue: environmentValue))
        fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SetupError(call: "socket", code: errno) }
        var address = socket.socketAddress
        let length = socket.length
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0 else { close(fd); throw SetupError(call: "bind", code: errno) }
    }

    /// The next datagram; AF_UNIX delivers on sendto, so one is there already or never comes.
    func receive() throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        guard n >= 0 else { throw SetupError(call: "recv", code: errno) }
        return String(decoding: buffer.prefix(n), as: UTF8.self)
    }

    deinit {
        close(fd)
        if socket.pathBytes.first != 0 { unlink(String(decoding: socket.pathBytes.dropLast(), as: UTF8.self)) }
    }
}
