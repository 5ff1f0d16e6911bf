import DaxsharePmem
import Glibc
import SystemPackage
import Testing

/// `FileLease.takeWrite(on:preferring:)` on the host kernel: a delegation where
/// the kernel has F_SETDELEG (Linux 6.19), else a lease. The breaks themselves
/// (unlink, rename) are checked in the testbed (IntegrationTests.DelegationTests).
@Suite(.serialized) struct DelegationTests {
    @Test(.enabled(if: !FileLease.kernelHasDelegations,
                   "this kernel has F_SETDELEG; delegationIsTakenWhereTheKernelHasIt covers it"))
    func withoutDelegationsTheFallbackIsALease() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        // The kernel's answer to an unknown fcntl command, which the fallback keys on.
        #expect(throws: PmemError.system(call: "fcntl(F_SETDELEG)", errno: .invalidArgument)) {
            try FileLease(file.descriptor, mechanism: .delegation).set(.write)
        }
        let held = try FileLease.takeWrite(on: file.descriptor, preferring: .delegation)
        #expect(held.mechanism == .lease)
        #expect(try held.current() == .write)
        #expect(try FileLease(file.descriptor).current() == .write)  // a real F_SETLEASE lease
        try held.set(.none)
        #expect(try held.current() == .none)
    }

    @Test(.enabled(if: FileLease.kernelHasDelegations,
                   "this kernel has no F_SETDELEG (Linux 6.19+): only the lease fallback can be checked here"))
    func delegationIsTakenWhereTheKernelHasIt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        let held = try FileLease.takeWrite(on: file.descriptor, preferring: .delegation)
        #expect(held.mechanism == .delegation)
        #expect(try held.current() == .write)
        #expect(try FileLease(file.descriptor).current() == .none)  // F_GETLEASE sees no lease
        try held.set(.none)
        #expect(try held.current() == .none)
    }

    @Test func preferringALeaseTakesALease() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        let held = try FileLease.takeWrite(on: file.descriptor, preferring: .lease)
        #expect(held.mechanism == .lease)
        #expect(try held.current() == .write)
        try held.set(.none)
    }

    /// EAGAIN (the file is open elsewhere) is not a reason to fall back: it is thrown.
    @Test func aConflictingOpenIsThrownNotFallenBackFrom() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = try PmemFile.open(dir.file("f"), .readWrite, options: [.create], permissions: .ownerReadWrite)
        let other = try PmemFile.open(dir.file("f"), .readOnly)
        defer { try? other.close() }
        #expect(throws: PmemError.self) {
            try FileLease.takeWrite(on: file.descriptor, preferring: .delegation)
        }
        #expect(try FileLease(file.descriptor).current() == .none)
    }
}
