import Testing
@testable import DaxshareVerbs

@Suite struct RemoteMemoryTests {
    let base = RemoteMemory(address: 0x1000, rkey: 42, length: 4096)

    @Test func slicesInsideTheRange() {
        #expect(base.slice(offset: 0, length: 4096) == base)
        #expect(base.slice(offset: 100, length: 10) == RemoteMemory(address: 0x1000 + 100, rkey: 42, length: 10))
        #expect(base.slice(offset: 4096, length: 0) == RemoteMemory(address: 0x2000, rkey: 42, length: 0))
    }

    @Test func refusesSlicesOutsideTheRange() {
        #expect(base.slice(offset: 4097, length: 0) == nil)
        #expect(base.slice(offset: 1, length: 4096) == nil)
        // Offsets and lengths near 2^64 must not wrap into a valid-looking range.
        #expect(base.slice(offset: 10, length: UInt64.max - 5) == nil)
    }

    @Test func accessFlagsMatchVerbs() {
        // The values are ABI: ibv_access_flags.
        #expect(MemoryAccess.localWrite.rawValue == 1)
        #expect(MemoryAccess.remoteWrite.rawValue == 2)
        #expect(MemoryAccess.remoteRead.rawValue == 4)
        #expect(MemoryAccess.onDemand.rawValue == 64)
    }
}

@Suite struct WorkCompletionTests {
    @Test func statusNamesComeFromVerbs() {
        #expect(WorkCompletionStatus.remoteAccessError.rawValue == 10)
        #expect(WorkCompletionStatus.remoteAccessError.description == "remote access error")
        #expect(WorkCompletionStatus.rnrRetryExceeded.rawValue == 13)
        #expect(WorkCompletionStatus(rawValue: 21) == .general)
    }

    @Test func remoteAccessErrorsAreRecognised() {
        let e = VerbsError.workCompletion(.remoteAccessError, opcode: .rdmaRead, vendorError: 0)
        #expect(e.isRemoteAccessError)
        #expect(!VerbsError.disconnected.isRemoteAccessError)
        #expect(!VerbsError.workCompletion(.flushed, opcode: .rdmaRead, vendorError: 0).isRemoteAccessError)
    }

    @Test func odpCapsDecode() {
        // rxe on kernel 7.2 reports general 0x1 and RC 0xff.
        let caps = OnDemandPagingCaps(general: 0x1, rc: 0xff)
        #expect(caps.supported && caps.rcRead && caps.rcWrite && caps.supportsOneSidedRC)
        #expect(!OnDemandPagingCaps(general: 0x1, rc: 0x3).supportsOneSidedRC)
        #expect(!OnDemandPagingCaps(general: 0, rc: 0xff).supportsOneSidedRC)
    }
}
