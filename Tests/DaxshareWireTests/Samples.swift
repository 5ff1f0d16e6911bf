import DaxshareWire

/// One value of every message the protocol defines, built in Swift (not from vectors), for
/// round-trip tests. Kept apart from the vectors on purpose: this exercises the encoders first.
enum Samples {
    static let attrs = FileAttributes(size: 1 << 20, allocatedSize: 1 << 20, mtimeNs: -5, ctimeNs: 1_764_000_000_000_000_000,
                                      fileIndex: 77, mode: 0o640, nlink: 2, type: .regular, flags: .dax)
    static let sid = LayoutStateid(id: 9, seqid: 4)
    static let nonce = (0..<32).map { UInt8(255 - $0) }
    static let guid = (0..<16).map { UInt8($0 * 3) }

    /// A SERVER_CLIENTS layout entry, valid unless told otherwise.
    static func layout(file: String = "pmem:data/f") -> ClientLayoutEntry {
        ClientLayoutEntry(offset: 0, length: 4096, readWrite: true, file: file)
    }

    /// A SERVER_CLIENTS client entry, valid unless told otherwise (layoutsHeld defaults to the layouts listed).
    static func client(held: UInt32? = nil, layouts: [ClientLayoutEntry] = [], address: String = "10.0.0.2",
                       identity: String = "alice") -> ClientEntry {
        ClientEntry(sessionId: 7, ageSeconds: 60, openFiles: 1, bytesReadTwoSided: 0, bytesWrittenTwoSided: 0,
                    bytesLayoutGranted: 0, bytesCommittedOneSided: 0, layoutsHeld: held ?? UInt32(layouts.count),
                    layouts: layouts, address: address, identity: identity)
    }

    static let requests: [Request] = [
        .negotiate(NegotiateRequest(capabilities: [.layouts, .callbacks, Capabilities(rawValue: 1 << 40)], clientId: guid)),
        .sessionSetup(.begin(identity: "bob", clientNonce: nonce)),
        .sessionSetup(.begin(identity: "", clientNonce: nonce)),
        .sessionSetup(.proof(clientProof: nonce)),
        .logoff,
        .treeConnect(TreeConnectRequest(exportName: "pmem-ü")),
        .treeDisconnect(TreeDisconnectRequest(treeId: 3)),
        .echo(EchoMessage(data: [1, 2, 3])),
        .echo(EchoMessage(data: Array(repeating: 0xAB, count: Limits.maxEchoLength))),
        .serverStats,
        .serverClients,
        .open(OpenRequest(treeId: 1, flags: [.read, .write, .create, .exclusive, .truncate, .writeThrough],
                          mode: 0o7777, path: String(repeating: "a", count: Limits.maxPathLength))),
        .open(OpenRequest(treeId: 1, flags: [.read], path: "x/y")),
        .close(CloseRequest(fileId: 5)),
        .stat(.fileId(5)),
        .stat(.path(treeId: 1, path: "")),
        .stat(.path(treeId: 1, path: "d/e")),
        .list(ListRequest(treeId: 1, maxEntries: 1024, cookie: 99, path: "")),
        .setSize(SetSizeRequest(fileId: 5, size: UInt64(Int64.max))),
        .punchHole(PunchHoleRequest(fileId: 5, range: ByteRange(offset: 4096, length: 4096))),
        .unlink(UnlinkRequest(treeId: 1, flags: .directory, path: "d")),
        .rename(RenameRequest(treeId: 1, flags: .noReplace, from: "a", to: "b/c")),
        .flush(FlushRequest(fileId: 5)),
        .flush(FlushRequest(fileId: 5, offset: 10, length: 20)),
        .mkdir(MkdirRequest(treeId: 1, mode: 0o7777, path: String(repeating: "m", count: Limits.maxPathLength))),
        .mkdir(MkdirRequest(treeId: .max, path: "d/é")),
        .setAttributes(SetAttributesRequest(.fileId(5), AttributeChange())),
        .setAttributes(SetAttributesRequest(.fileId(.max), AttributeChange(
            mode: 0o7777, accessTime: .at(nanosecondsSinceEpoch: .min), modificationTime: .at(nanosecondsSinceEpoch: .max)))),
        .setAttributes(SetAttributesRequest(.path(treeId: 1, path: ""), AttributeChange(accessTime: .now, modificationTime: .now))),
        .setAttributes(SetAttributesRequest(.path(treeId: 1, path: "a/b"), AttributeChange(
            mode: 0, modificationTime: .at(nanosecondsSinceEpoch: 0)))),
        .statfs(StatfsRequest(treeId: 7)),
        .allocate(AllocateRequest(fileId: 5, range: ByteRange(offset: 0, length: .max))),
        .allocate(AllocateRequest(fileId: 5, range: ByteRange(offset: 1 << 40, length: 1), flags: .keepSize)),
        .read(ReadRequest(fileId: 5, offset: 0, descriptors: (0..<64).map {
            BufferDescriptor(address: UInt64($0) << 20, rkey: UInt32($0), length: 1)
        })),
        .write(WriteRequest(fileId: 5, offset: 1 << 40, flags: .writeThrough,
                            descriptors: [BufferDescriptor(address: 0x1000, rkey: 7, length: .max)])),
        .layoutGet(LayoutGetRequest(fileId: 5, offset: 0, length: .max, minLength: .max, iomode: .readWrite)),
        .layoutCommit(LayoutCommitRequest(stateid: sid, newSize: 8192, ranges: [ByteRange(offset: 0, length: 8192)])),
        .layoutCommit(LayoutCommitRequest(stateid: sid, newSize: 0, ranges: [])),
        .layoutCommit(LayoutCommitRequest(stateid: sid, ranges: (0..<64).map { ByteRange(offset: UInt64($0) * 10, length: 5) })),
        .layoutReturn(LayoutReturnRequest(stateid: sid, range: nil, recallId: 3)),
        .layoutReturn(LayoutReturnRequest(stateid: sid, range: ByteRange(offset: 1, length: 2))),
    ]

    static let responses: [Response] = [
        .negotiate(NegotiateResponse(maxOutstandingRequests: 1, defaultRecallDeadlineMs: 1, capabilities: .allV1,
                                     serverId: guid, maxBufferDescriptors: 64, maxExtentsPerLayout: 1,
                                     maxPathLength: 4095, maxListEntries: 1, maxOpenFiles: 0, maxLayouts: .max)),
        .sessionSetup(.challenge(serverNonce: nonce)),
        .sessionSetup(.confirmed(serverProof: nonce)),
        .logoff,
        .treeConnect(TreeConnectResponse(treeId: .max, flags: [.readOnly, .dax])),
        .treeDisconnect,
        .echo(EchoMessage()),
        .serverStats(ServerStatsResponse(counters: ServerCounter.all.enumerated().map {
            Counter(name: $0.element, value: UInt64($0.offset) << 50)
        })),
        .serverStats(ServerStatsResponse(counters: [])),
        .serverClients(ServerClientsResponse(clients: [
            ClientEntry(sessionId: .max, ageSeconds: .max, openFiles: 3, bytesReadTwoSided: 1, bytesWrittenTwoSided: 2,
                        bytesLayoutGranted: 3, bytesCommittedOneSided: .max, layoutsHeld: .max,
                        layouts: (0..<Limits.maxLayoutsListed).map {
                            ClientLayoutEntry(offset: UInt64($0) << 30, length: 1 << 30, readWrite: $0 % 2 == 0,
                                              file: $0 == 0 ? String(repeating: "f", count: Limits.maxClientFileLength) : "pmem:ä/\($0)")
                        },
                        address: String(repeating: "a", count: 255), identity: String(repeating: "i", count: 255)),
            ClientEntry(sessionId: 1, ageSeconds: 0, openFiles: 0, bytesReadTwoSided: 0, bytesWrittenTwoSided: 0,
                        bytesLayoutGranted: 0, bytesCommittedOneSided: 0, layoutsHeld: 0, layouts: [],
                        address: "x", identity: ""),
        ], total: 1000)),
        .serverClients(ServerClientsResponse(clients: (0..<Limits.maxClientsListed).map {
            ClientEntry(sessionId: UInt64($0), ageSeconds: 1, openFiles: 0, bytesReadTwoSided: 0, bytesWrittenTwoSided: 0,
                        bytesLayoutGranted: 0, bytesCommittedOneSided: 0, layoutsHeld: 1,
                        layouts: [ClientLayoutEntry(offset: 0, length: 1, readWrite: false, file: "e:p")],
                        address: "10.0.0.\($0 % 250)", identity: "u")
        }, total: UInt32(Limits.maxClientsListed))),
        .serverClients(ServerClientsResponse(clients: [], total: 0)),
        .open(OpenResponse(fileId: .max, attributes: attrs)),
        .close,
        .stat(FileAttributes(size: 0, allocatedSize: 0, mtimeNs: .min, ctimeNs: .max, fileIndex: 0, mode: 0,
                             nlink: 0, type: .symlink)),
        .list(ListResponse(entries: [ListEntry(attributes: attrs, name: "ä"),
                                     ListEntry(attributes: attrs, name: String(repeating: "n", count: 255))],
                           nextCookie: 1, isEnd: false)),
        .list(ListResponse(entries: [], nextCookie: 0, isEnd: true)),
        .setSize(attrs),
        .punchHole,
        .unlink,
        .rename,
        .flush,
        .mkdir(FileAttributes(size: 4096, allocatedSize: 4096, mtimeNs: 1, ctimeNs: 2, fileIndex: 3, mode: 0o1777,
                              nlink: 2, type: .directory)),
        .setAttributes(attrs),
        .statfs(FileSystemStatistics(blockSize: 1, maxNameLength: 0, totalBlocks: .max, freeBlocks: 0, availableBlocks: .max,
                                     totalFiles: 0, freeFiles: .max)),
        .statfs(FileSystemStatistics(blockSize: .max, maxNameLength: 255, totalBlocks: 1, freeBlocks: 1, availableBlocks: 1,
                                     totalFiles: 1, freeFiles: 1)),
        .allocate(attrs),
        .read(ReadResponse(bytesRead: 0, flags: .endOfFile)),
        .write(WriteResponse(bytesWritten: 12)),
        .layoutGet(LayoutGetResponse(stateid: sid, iomode: .read, recallDeadlineMs: 100, extents: (0..<64).map {
            LayoutExtent(fileOffset: UInt64($0) * 4096, length: 4096, remoteAddress: 0x10000 + UInt64($0) * 4096,
                         rkey: 1, flags: .readOnly)
        })),
        .layoutCommit(LayoutCommitResponse(stateid: LayoutStateid(id: 9, seqid: 5), size: 8192)),
        .layoutReturn,
    ]

    static var messages: [Message] {
        var out: [Message] = []
        for (i, r) in requests.enumerated() {
            out.append(.request(r, messageId: UInt64(i), sessionId: 0xDEAD_BEEF))
        }
        for (i, r) in responses.enumerated() {
            out.append(Message(messageId: UInt64(i), sessionId: 1, body: .response(r)))
        }
        for s in Status.all where s != .ok {
            out.append(Message(messageId: 1, sessionId: 1, body: .error(command: .open, status: s, ErrorBody(retryAfterMs: 7))))
        }
        out.append(Message(messageId: 1, sessionId: 1,
                           body: .error(command: Command(rawValue: 0x7777), status: Status(rawValue: 0xFFFF_FFFF), ErrorBody())))
        out.append(Message(messageId: .max, sessionId: .max, body: .callback(.layoutRecall(LayoutRecall(
            stateid: sid, fileId: 5, range: ByteRange(offset: 0, length: .max), recallId: 1, deadlineMs: 10,
            reason: .conflictingLayout)))))
        out.append(Message(messageId: 3, sessionId: 4, body: .callbackReply(status: .ok, .layoutRecall(LayoutRecallAck(recallId: 1)))))
        out.append(Message(messageId: 3, sessionId: 4, body: .callbackReply(status: .badStateid,
                                                                            .layoutRecall(LayoutRecallAck(recallId: 2)))))
        return out
    }
}
