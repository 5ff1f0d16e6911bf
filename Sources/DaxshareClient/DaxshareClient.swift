// DaxshareClient: the client library that the `daxshare` CLI and `daxshare-bench` share.
//
// Layers, bottom up (one concept per file):
//
//   DaxshareURL            daxshare://HOST[:PORT]/EXPORT/PATH, parsed and printed
//   SessionSecret          the pre-shared key, read from a secret file
//   SessionProof           the HMAC-SHA256 proofs of SESSION_SETUP (both directions)
//   MessageTransport       what a session needs from a transport (MessageChannel conforms)
//   BufferRegistrar        registered memory the server can RDMA into and out of
//   ResponseRouter         matches responses to waiting requests by message id (pure logic)
//   AsyncSemaphore         bounds requests in flight (the server's maxOutstandingRequests)
//   RequestDispatcher      sends requests, reads the channel, answers callbacks
//   ServerCallback         unsolicited server messages (CB_LAYOUTRECALL), published for layouts
//   ClientSession          connect, NEGOTIATE, SESSION_SETUP, TREE_CONNECT, and the namespace ops
//   RemoteFile             an open file: read, write, flush, set size, close
//   DataPath               the seam between a RemoteFile and how its bytes move
//   TwoSidedDataPath       SMB Direct-style READ/WRITE through bounce buffers (BouncePool)
//   LayoutDataPath         one-sided RDMA through layouts (LAYOUTGET/COMMIT/RETURN, recalls),
//                          falling back to two-sided per I/O; RemoteMemoryAccess posts the RDMA
//   LayoutPlan             its pure arithmetic: windows, extents to work requests, DirtyRanges,
//                          CommitPlan, LayoutRefusal (what a refused LAYOUTGET leads to)
//   ChunkPlan, Pipeline    splitting I/O by maxReadWriteSize; keeping several requests in flight
//   LocalFile, Transfer    streaming get/put between local files and the server, with SHA-256
//   ClientError, CommandExitCode, ByteCount, EntryFormat, JSONText, CivilTime
//                          errors, CLI exit codes, sizes, and output formatting shared by tools
//
// A typical use:
//
//     let secret = try SessionSecret(contentsOf: "/etc/daxshare/secret")
//     let session = try await ClientSession.connect(host: "10.0.0.1", export: "pmem", secret: secret)
//     let result = try await session.get("data/f", toPath: "f")   // result.sha256Hex
//     await session.close()
//
// Layouts (one-sided I/O, PROTOCOL.md §5) are used when both sides agree to LAYOUTS and
// CALLBACKS in NEGOTIATE and `ClientConfiguration.useLayouts` is set (the default; the CLI's
// `--two-sided` clears it). `TransferResult.dataPath` and `RemoteFile.usage` tell which path
// moved the bytes. The durability point of one-sided writes is the LAYOUTCOMMIT reply, sent by
// `RemoteFile.flush`/`commit`/`close` and at the end of `put`.
