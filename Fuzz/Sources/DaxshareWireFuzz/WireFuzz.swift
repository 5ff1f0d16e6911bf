// libFuzzer entry point for the DaxshareWire codec (Protocol/PROTOCOL.md).
//
// Every input is offered to every decoder. The properties checked:
//   1. no decoder traps, whatever the bytes (the sanitizers catch memory errors, Swift traps
//      catch overflow and bounds violations);
//   2. whatever decodes re-encodes without error, and the re-encoding decodes to the same value
//      (the encoders and decoders enforce the same rules);
//   3. the transport state machines (CreditWindow, Reassembler) driven by the input as a script
//      never trap and keep their invariants.
// A broken property calls fatalError, which libFuzzer reports as a crash with the input saved.
import CLibFuzzer
import DaxshareWire

/// SwiftPM links an executable with `main` aliased to `<Module>_main`; libFuzzer's own main()
/// is therefore not used, and this hands control to its driver directly.
@_cdecl("DaxshareWireFuzz_main")
public func daxshareWireFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, daxshareWireFuzz)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func daxshareWireFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    codecProperties(input)
    stateMachines(input)
    return 0
}

private func require(_ condition: Bool, _ what: @autoclosure () -> String) {
    if !condition { fatalError("property violated: \(what())") }
}

private func codecProperties(_ input: UnsafeRawBufferPointer) {
    if let pd = try? ConnectPrivateData.decode(input) {
        let again = try? pd.encode()
        require(again != nil, "private data re-encodes")
        require((try? ConnectPrivateData.decode(again ?? [])) == pd, "private data round-trips")
    }
    if let t = try? TransportMessage.decode(input) {
        let again = try? t.encode()
        require(again != nil, "transport message re-encodes")
        require((try? TransportMessage.decode(again ?? [])) == t, "transport message round-trips")
        if case .dataTransfer = t {
            require(again?.count == input.count, "data transfer message keeps its size")
        }
    }
    if let h = try? DataTransferHeader.decode(input) {
        require(h.messageSize == input.count, "data transfer header accounts for every byte")
    }
    if let h = try? MessageHeader.decode(input) {
        // A server answers any decodable header, even when the body is bad.
        require((try? Message.error(.badMessage, to: h).encode()) != nil, "error reply encodes")
    }
    if let m = try? Message.decode(input) {
        let again = try? m.encode()
        require(again != nil, "message re-encodes: \(m.command)")
        require(again.map { Array($0) } == Array(input), "message re-encodes byte for byte: \(m.command)")
        require((try? Message.decode(again ?? [])) == m, "message round-trips: \(m.command)")
    }
}

/// Reads the input as a script of transport events for one side of a connection.
private func stateMachines(_ input: UnsafeRawBufferPointer) {
    var bytes = input.makeIterator()
    func next() -> UInt8? { bytes.next() }
    func u16() -> UInt16 { UInt16(next() ?? 0) | UInt16(next() ?? 0) << 8 }
    func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }

    var w = CreditWindow(sendCredits: u16() & 0x1FF, maxSendCredits: u16() | 1, postedReceives: Int(u16() & 0x1FF),
                         peerCredits: 0, peerTarget: 1, peerMaxTarget: u16() | 1)
    var r = Reassembler(maxMessageSize: Int(u32() & 0xFFFFF))
    while let op = next() {
        switch op % 5 {
        case 0:
            w.receivesPosted(Int(next() ?? 0) % 8)
        case 1:
            _ = try? w.prepareSend(requestResponse: op & 0x80 != 0)
        case 2:
            let h = DataTransferHeader(flags: DataTransferFlags(rawValue: u16() & 1), creditsRequested: u16(),
                                       creditsGranted: u16(), dataOffset: 0, dataLength: 0)
            _ = try? w.received(h)
        case 3:
            let len = Int(next() ?? 0)
            let remaining = u32()
            let payload = [UInt8](repeating: op, count: len)
            let h = DataTransferHeader(creditsRequested: 1, creditsGranted: 0, remainingDataLength: remaining,
                                       dataOffset: len == 0 ? 0 : 24, dataLength: UInt32(len))
            if let whole = try? r.append(DataTransferMessage(header: h, payload: payload)) {
                require(whole.count <= r.maxMessageSize, "reassembled message within limit")
            }
        default:
            _ = try? Fragmenter.fragments(of: [UInt8](repeating: op, count: Int(u16() & 0x3FFF)),
                                          maxSendSize: Int(u16()), maxMessageSize: Int(u16()) << 4)
        }
        require(w.sendCredits <= max(w.maxSendCredits, 0x1FF), "credits bounded")
        require(Int(w.peerCredits) <= w.postedReceives, "peer credits backed by posted receives")
        require(r.bytesOutstanding <= UInt32(r.maxMessageSize), "reassembly bounded")
    }
}
