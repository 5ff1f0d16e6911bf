#!/usr/bin/env python3
"""Generates the daxshare protocol test vectors from the tables in ../PROTOCOL.md.

This is a second, independent encoder (it shares no code with the Swift codec): every field is
written here straight from the spec's offset tables, one annotated line per field. The Swift
tests decode each vector and re-encode it byte for byte, so a disagreement between the spec (as
transcribed here) and the codec shows up as a failing test.

Run from anywhere:  python3 Protocol/vectors/gen_vectors.py
It rewrites every *.vec file in this directory and in invalid/, and prints the auth proofs.
"""
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- field helpers
# A "struct" is a list of (bytes, annotation) pairs, concatenated in order.

def u8(v, name):
    return [(struct.pack("<B", v), f"{name} = {v}")]


def u16(v, name):
    return [(struct.pack("<H", v), f"{name} = {v} (0x{v:04x})")]


def u32(v, name):
    return [(struct.pack("<I", v), f"{name} = {v} (0x{v:x})")]


def u64(v, name):
    return [(struct.pack("<Q", v), f"{name} = {v} (0x{v:x})")]


def i64(v, name):
    return [(struct.pack("<q", v), f"{name} = {v}")]


def raw(b, name):
    return [(bytes(b), name)]


def zeros(n, name="reserved"):
    return [(bytes(n), f"{name} ({n} zero bytes)")]


def text(s, name):
    b = s.encode("utf-8")
    return [(b, f'{name} = "{s}"')] if b else []


def join(fields):
    return b"".join(b for b, _ in fields)


# ---------------------------------------------------------------- transport (§2)

MAGIC_PD = b"DXSD"
V1 = 0x0100


def private_data(kind, reason=0, minv=V1, maxv=V1):
    kinds = {1: "CONNECT", 2: "ACCEPT", 3: "REJECT"}
    return (raw(MAGIC_PD, 'magic "DXSD"') + [(struct.pack("<H", kind), f"kind = {kind} ({kinds[kind]})")]
            + u16(reason, "reason") + u16(minv, "minVersion") + u16(maxv, "maxVersion") + zeros(4))


def negotiate_request(credits=64, pss=8192, mrs=8192, mfs=1 << 20):
    return (u16(1, "type NEGOTIATE_REQUEST") + zeros(2) + u16(V1, "minVersion") + u16(V1, "maxVersion")
            + u16(credits, "creditsRequested") + zeros(2, "reserved2") + u32(pss, "preferredSendSize")
            + u32(mrs, "maxReceiveSize") + u32(mfs, "maxFragmentedSize"))


def negotiate_response(status=0, nv=V1, cr=64, cg=64, mrw=8 << 20, pss=8192, mrs=8192, mfs=1 << 20):
    return (u16(2, "type NEGOTIATE_RESPONSE") + zeros(2) + u16(V1, "minVersion") + u16(V1, "maxVersion")
            + u16(nv, "negotiatedVersion") + zeros(2, "reserved2") + u16(cr, "creditsRequested")
            + u16(cg, "creditsGranted") + u32(status, "status") + u32(mrw, "maxReadWriteSize")
            + u32(pss, "preferredSendSize") + u32(mrs, "maxReceiveSize") + u32(mfs, "maxFragmentedSize")
            + zeros(4, "reserved3"))


def data_transfer(payload=b"", flags=0, cr=64, cg=0, remaining=0, offset=None):
    if offset is None:
        offset = 24 if payload else 0
    f = (u16(3, "type DATA_TRANSFER") + u16(flags, "flags") + u16(cr, "creditsRequested")
         + u16(cg, "creditsGranted") + u32(remaining, "remainingDataLength") + u32(offset, "dataOffset")
         + u32(len(payload), "dataLength") + zeros(4, "padding"))
    if payload:
        if offset > 24:
            f += zeros(offset - 24, "padding to dataOffset")
        f += raw(payload, f"data ({len(payload)} bytes)")
    return f


# ---------------------------------------------------------------- upper layer (§3)

MAGIC_MSG = bytes([0xFD, 0x44, 0x58, 0x53])
CMD = dict(NEGOTIATE=0x01, SESSION_SETUP=0x02, LOGOFF=0x03, TREE_CONNECT=0x04, TREE_DISCONNECT=0x05,
           ECHO=0x06, SERVER_STATS=0x07, SERVER_CLIENTS=0x08, OPEN=0x10, CLOSE=0x11, STAT=0x12, LIST=0x13, SET_SIZE=0x14,
           PUNCH_HOLE=0x15, UNLINK=0x16, RENAME=0x17, FLUSH=0x18, MKDIR=0x19, SET_ATTRIBUTES=0x1A, STATFS=0x1B,
           ALLOCATE=0x1C, READ=0x20, WRITE=0x21, LAYOUTGET=0x30,
           LAYOUTCOMMIT=0x31, LAYOUTRETURN=0x32, CB_LAYOUTRECALL=0x40)
RESPONSE, CALLBACK = 0x1, 0x2
SESSION = 0x42


def header(cmd, body, mid, flags=0, status=0, sid=SESSION, cmd_code=None):
    code = CMD[cmd] if cmd_code is None else cmd_code
    fl = {0: "0 (request)", 1: "RESPONSE", 2: "CALLBACK", 3: "CALLBACK|RESPONSE"}.get(flags, str(flags))
    return (raw(MAGIC_MSG, 'magic FD "DXS"') + u16(40, "headerSize")
            + [(struct.pack("<H", code), f"command = 0x{code:04x} ({cmd})")]
            + u32(status, "status") + [(struct.pack("<I", flags), f"flags = {fl}")]
            + u64(mid, "messageId") + u64(sid, "sessionId") + u32(len(join(body)), "bodyLength") + zeros(4))


def msg(cmd, body, mid, **kw):
    return header(cmd, body, mid, **kw) + body


def error_body(retry=0):
    return u32(retry, "retryAfterMs") + zeros(4)


def attributes(size, alloc, mtime, ctime, idx, mode, nlink, ftype, flags=0):
    types = {1: "REGULAR", 2: "DIRECTORY", 3: "SYMLINK", 4: "OTHER"}
    return (u64(size, "attr.size") + u64(alloc, "attr.allocatedSize") + i64(mtime, "attr.mtimeNs")
            + i64(ctime, "attr.ctimeNs") + u64(idx, "attr.fileIndex") + [(struct.pack("<I", mode), f"attr.mode = 0o{mode:o}")]
            + u32(nlink, "attr.nlink") + [(struct.pack("<H", ftype), f"attr.type = {ftype} ({types[ftype]})")]
            + u16(flags, "attr.attributeFlags") + zeros(4, "attr.reserved"))


FILE_ATTR = attributes(131072, 131072, 1764000000123456789, 1764000000123456789, 5001, 0o644, 1, 1, 1)
DIR_ATTR = attributes(4096, 4096, 1764000000000000000, 1764000000000000000, 2, 0o755, 3, 2, 0)


def stateid(i, seq):
    return u64(i, "stateid.id") + u32(seq, "stateid.seqid") + zeros(4, "stateid.reserved")


def path_fields(p, name="path"):
    return text(p, name)


CLIENT_NONCE = bytes(range(0x00, 0x20))
SERVER_NONCE = bytes(range(0x20, 0x40))
KEY = b"correct horse battery staple"
IDENTITY = "alice"


def transcript(label):
    ident = IDENTITY.encode()
    return (raw(label.encode(), f'label "{label}"') + u64(SESSION, "sessionId") + raw(SERVER_NONCE, "serverNonce")
            + raw(CLIENT_NONCE, "clientNonce") + u16(len(ident), "identityLength") + text(IDENTITY, "identity"))


CLIENT_TRANSCRIPT = transcript("daxshare client proof v1")
SERVER_TRANSCRIPT = transcript("daxshare server proof v1")
CLIENT_PROOF = hmac.new(KEY, join(CLIENT_TRANSCRIPT), hashlib.sha256).digest()
SERVER_PROOF = hmac.new(KEY, join(SERVER_TRANSCRIPT), hashlib.sha256).digest()


def mkdir_request(tree, mode, path, path_length=None, raw_path=None):
    """MKDIR request body (§4.21)."""
    b = path.encode() if raw_path is None else raw_path
    return (u32(tree, "treeId") + [(struct.pack("<I", mode), f"mode = 0o{mode:o}")]
            + u16(len(b) if path_length is None else path_length, "pathLength") + zeros(6)
            + (path_fields(path) if raw_path is None else raw(raw_path, "path")))


SETATTR_FLAGS = {0x1: "MODE", 0x2: "ATIME", 0x4: "MTIME", 0x8: "ATIME_NOW", 0x10: "MTIME_NOW"}


def set_attributes_request(kind, tree, fid, which, mode, atime, mtime, path="", path_length=None, raw_path=None):
    """SET_ATTRIBUTES request body (§4.22): kind 1 BY_FILE_ID, 2 BY_PATH."""
    b = path.encode() if raw_path is None else raw_path
    names = "|".join(n for bit, n in SETATTR_FLAGS.items() if which & bit) or "0"
    kinds = {1: "BY_FILE_ID", 2: "BY_PATH"}
    return ([(struct.pack("<H", kind), f"kind = {kind} ({kinds.get(kind, '?')})")]
            + u16(len(b) if path_length is None else path_length, "pathLength") + u32(tree, "treeId") + u64(fid, "fileId")
            + [(struct.pack("<I", which), f"which = 0x{which:x} ({names})")]
            + [(struct.pack("<I", mode), f"mode = 0o{mode:o}")] + i64(atime, "atimeNs") + i64(mtime, "mtimeNs")
            + (path_fields(path) if raw_path is None else raw(raw_path, "path")))


def statfs_response(bsize, namemax, blocks, bfree, bavail, files, ffree):
    """STATFS response body (§4.23)."""
    return (u32(bsize, "blockSize") + u32(namemax, "maxNameLength") + u64(blocks, "totalBlocks")
            + u64(bfree, "freeBlocks") + u64(bavail, "availableBlocks") + u64(files, "totalFiles") + u64(ffree, "freeFiles"))


def allocate_request(fid, off, n, flags=0):
    """ALLOCATE request body (§4.24)."""
    fl = {0: "0", 1: "KEEP_SIZE"}.get(flags, f"0x{flags:x}")
    return (u64(fid, "fileId") + u64(off, "offset") + u64(n, "length")
            + [(struct.pack("<I", flags), f"allocateFlags = {fl}")] + zeros(4))


def descriptors(ds):
    out = []
    for i, (a, k, n) in enumerate(ds):
        out += u64(a, f"descriptor[{i}].address") + u32(k, f"descriptor[{i}].rkey") + u32(n, f"descriptor[{i}].length")
    return out


def io_request(fid, off, ds, flags=0):
    total = sum(n for _, _, n in ds)
    return (u64(fid, "fileId") + u64(off, "offset") + u32(total, "length") + u16(flags, "ioFlags")
            + u16(len(ds), "descriptorCount") + descriptors(ds))


def extent(i, off, n, addr, rkey, flags):
    return (u64(off, f"extent[{i}].fileOffset") + u64(n, f"extent[{i}].length") + u64(addr, f"extent[{i}].remoteAddress")
            + u32(rkey, f"extent[{i}].rkey") + u32(flags, f"extent[{i}].flags"))


def list_entry(i, attrs, name):
    return attrs + u16(len(name.encode()), f"entry[{i}].nameLength") + text(name, f"entry[{i}].name")


def client_layout(p, off, n, flags, file, file_length=None):
    """A SERVER_CLIENTS layout entry (§4.9.1); p is the annotation prefix."""
    fl = {0: "0 (READ)", 1: "READ_WRITE"}.get(flags, f"0x{flags:x}")
    b = file.encode()
    return (u64(off, f"{p}.offset") + u64(n, f"{p}.length") + [(struct.pack("<B", flags), f"{p}.layoutFlags = {fl}")]
            + zeros(1, f"{p}.reserved") + u16(len(b) if file_length is None else file_length, f"{p}.fileLength")
            + text(file, f"{p}.file"))


def client_entry(i, sid, age, open_files, rd, wr, granted, committed, address, identity, layouts, held=None,
                 layout_count=None):
    """A SERVER_CLIENTS client entry (§4.9.1); layouts are already encoded client_layout() fields."""
    p = f"client[{i}]"
    n = len(layouts) if layout_count is None else layout_count
    f = (u64(sid, f"{p}.sessionId") + u32(age, f"{p}.ageSeconds") + u32(open_files, f"{p}.openFiles")
         + u64(rd, f"{p}.bytesReadTwoSided") + u64(wr, f"{p}.bytesWrittenTwoSided")
         + u64(granted, f"{p}.bytesLayoutGranted") + u64(committed, f"{p}.bytesCommittedOneSided")
         + u32(n if held is None else held, f"{p}.layoutsHeld") + u16(n, f"{p}.layoutCount")
         + u8(len(address.encode()), f"{p}.addressLength") + u8(len(identity.encode()), f"{p}.identityLength")
         + text(address, f"{p}.address") + text(identity, f"{p}.identity"))
    for layout in layouts:
        f += layout
    return f


def server_clients(clients, total=None):
    return u16(len(clients), "count") + zeros(2) + u32(len(clients) if total is None else total, "total") + sum(clients, [])


# ---------------------------------------------------------------- the vectors

def valid_vectors():
    V = []

    def add(name, codec, desc, fields):
        V.append((name, codec, desc, fields))

    # Private data (§2.2)
    add("pd-connect", "private-data", "Connect private data sent with rdma_connect: versions 1.0 to 1.0.", private_data(1))
    add("pd-accept", "private-data", "Accept private data sent with rdma_accept.", private_data(2))
    add("pd-reject-too-many", "private-data", "Reject private data: TOO_MANY_CONNECTIONS (3).", private_data(3, 3))

    # Transport (§2.4-2.7)
    add("transport-negotiate-request", "transport",
        "Transport negotiate request: 64 credits, 8 KiB sends and receives, 1 MiB reassembly.", negotiate_request())
    add("transport-negotiate-response", "transport",
        "Transport negotiate response: SUCCESS, 64 credits granted, 8 MiB max read/write.", negotiate_response())
    add("transport-negotiate-response-version", "transport",
        "Failed negotiate response: VERSION_NOT_SUPPORTED; everything but the versions and status is 0.",
        negotiate_response(status=1, nv=0, cr=0, cg=0, mrw=0, pss=0, mrs=0, mfs=0))
    add("dt-credit-grant", "transport", "Empty data transfer message granting 16 credits.", data_transfer(cg=16))
    add("dt-keepalive", "transport", "Keepalive: empty data transfer message with RESPONSE_REQUESTED.",
        data_transfer(flags=1, cg=1))
    echo_small = msg("ECHO", raw(b"ping", 'data "ping"'), 7)
    add("dt-echo-request", "transport",
        "Data transfer message carrying a whole upper-layer message (ECHO request \"ping\"), granting 2 credits.",
        data_transfer(join(echo_small), cg=2))
    add("dt-padded-offset", "transport",
        "Data transfer message whose payload starts at offset 32 (8 zero padding bytes); receivers must accept it.",
        data_transfer(join(echo_small), cg=0, offset=32))
    big = msg("ECHO", raw(bytes(i % 251 for i in range(300)), "data (300 bytes: i % 251)"), 8)
    big_bytes = join(big)  # 340 bytes; with a 256-byte send size each fragment carries up to 232
    add("dt-fragment-1", "transport",
        "First of two fragments of a 340-byte ECHO request sent with a 256-byte send size: 232 bytes, 108 remaining.",
        data_transfer(big_bytes[:232], cg=1, remaining=108))
    add("dt-fragment-2", "transport",
        "Second and last fragment of the same ECHO request: 108 bytes, 0 remaining.",
        data_transfer(big_bytes[232:], cg=0, remaining=0))

    # NEGOTIATE (§4.3)
    add("negotiate-request", "message", "NEGOTIATE request: dialect 1.0, capabilities LAYOUTS|ODP|CALLBACKS.",
        msg("NEGOTIATE", u16(V1, "minDialect") + u16(V1, "maxDialect") + zeros(4) + u64(0x7, "capabilities")
            + raw(bytes(range(0xA0, 0xB0)), "clientId (16 bytes)"), 1, sid=0))
    add("negotiate-response", "message",
        "NEGOTIATE response: all six v1 capabilities, 32 outstanding requests, 5 s recall deadline.",
        msg("NEGOTIATE", u16(V1, "dialect") + u16(32, "maxOutstandingRequests") + u32(5000, "defaultRecallDeadlineMs")
            + u64(0x3F, "capabilities") + raw(bytes(range(0xC0, 0xD0)), "serverId (16 bytes)")
            + u16(16, "maxBufferDescriptors") + u16(64, "maxExtentsPerLayout") + u16(4095, "maxPathLength")
            + u16(1024, "maxListEntries") + u32(1024, "maxOpenFiles") + u32(256, "maxLayouts"),
            1, flags=RESPONSE, sid=0))

    # SESSION_SETUP (§4.4)
    ident = IDENTITY.encode()
    add("session-setup-begin", "message", "SESSION_SETUP round 1 request: identity \"alice\", client nonce 00..1f.",
        msg("SESSION_SETUP", u8(1, "phase") + zeros(1) + u16(len(ident), "identityLength") + zeros(4, "reserved2")
            + raw(CLIENT_NONCE, "clientNonce") + text(IDENTITY, "identity"), 2, sid=0))
    add("session-setup-challenge", "message",
        "SESSION_SETUP round 1 response: assigns session 0x42, server nonce 20..3f.",
        msg("SESSION_SETUP", u8(1, "phase") + zeros(7) + raw(SERVER_NONCE, "serverNonce"), 2, flags=RESPONSE))
    add("session-setup-proof", "message",
        "SESSION_SETUP round 2 request: clientProof = HMAC-SHA256(key, clientProofInput) for PROTOCOL.md §9.",
        msg("SESSION_SETUP", u8(2, "phase") + zeros(7) + raw(CLIENT_PROOF, "clientProof"), 3))
    add("session-setup-confirmed", "message",
        "SESSION_SETUP round 2 response: serverProof = HMAC-SHA256(key, serverProofInput) for PROTOCOL.md §9.",
        msg("SESSION_SETUP", u8(2, "phase") + zeros(7) + raw(SERVER_PROOF, "serverProof"), 3, flags=RESPONSE))
    add("session-setup-auth-failed", "message", "SESSION_SETUP round 2 failure: status AUTH_FAILED, error body.",
        msg("SESSION_SETUP", error_body(), 3, flags=RESPONSE, status=0x0A))
    add("auth-client-transcript", "auth-client-transcript",
        "The bytes the client MACs for PROTOCOL.md §9 (key \"correct horse battery staple\").", CLIENT_TRANSCRIPT)
    add("auth-server-transcript", "auth-server-transcript",
        "The bytes the server MACs for PROTOCOL.md §9.", SERVER_TRANSCRIPT)

    add("logoff-request", "message", "LOGOFF request (empty body).", msg("LOGOFF", [], 90))
    add("logoff-response", "message", "LOGOFF response (empty body).", msg("LOGOFF", [], 90, flags=RESPONSE))

    # Trees (§4.6-4.7)
    add("tree-connect-request", "message", "TREE_CONNECT request for export \"pmem\".",
        msg("TREE_CONNECT", u16(4, "nameLength") + zeros(6) + text("pmem", "exportName"), 4))
    add("tree-connect-response", "message", "TREE_CONNECT response: tree 1, DAX.",
        msg("TREE_CONNECT", u32(1, "treeId") + u32(2, "treeFlags DAX"), 4, flags=RESPONSE))
    add("tree-connect-response-ro", "message", "TREE_CONNECT response: tree 2, READ_ONLY|DAX.",
        msg("TREE_CONNECT", u32(2, "treeId") + u32(3, "treeFlags READ_ONLY|DAX"), 5, flags=RESPONSE))
    add("tree-disconnect-request", "message", "TREE_DISCONNECT request for tree 1.",
        msg("TREE_DISCONNECT", u32(1, "treeId") + zeros(4), 89))
    add("tree-disconnect-response", "message", "TREE_DISCONNECT response (empty body).",
        msg("TREE_DISCONNECT", [], 89, flags=RESPONSE))

    # ECHO, SERVER_STATS (§4.8-4.9)
    add("echo-request", "message", "ECHO request with 4 bytes \"ping\".", echo_small)
    add("echo-response", "message", "ECHO response returning \"ping\".",
        msg("ECHO", raw(b"ping", 'data "ping"'), 7, flags=RESPONSE))
    add("echo-request-empty", "message", "ECHO request with no payload.", msg("ECHO", [], 6))
    add("server-stats-request", "message", "SERVER_STATS request (empty body).", msg("SERVER_STATS", [], 60))
    counters = [("bytes_read_two_sided", 0), ("bytes_committed_one_sided", 67108864), ("layouts_granted", 3),
                ("mrs_live", 1)]
    cbody = u16(len(counters), "count") + zeros(6)
    for i, (n, v) in enumerate(counters):
        cbody += u64(v, f"counter[{i}].value") + u16(len(n), f"counter[{i}].nameLength") + text(n, f"counter[{i}].name")
    add("server-stats-response", "message", "SERVER_STATS response with four counters.",
        msg("SERVER_STATS", cbody, 60, flags=RESPONSE))
    add("server-clients-request", "message", "SERVER_CLIENTS request (empty body).", msg("SERVER_CLIENTS", [], 61))
    alice = client_entry(0, 0x42, 3600, 2, 4096, 8192, 1179648, 1048576, "192.168.10.2", "alice", [
        client_layout("client[0].layout[0]", 0, 1048576, 1, "pmem:data/f"),
        client_layout("client[0].layout[1]", 0, 131072, 0, "pmem:logs/app.log"),
    ])
    anon = client_entry(1, 0x43, 5, 0, 0, 0, 0, 0, "fe80::2%rxe0", "", [])
    add("server-clients-response", "message",
        "SERVER_CLIENTS response: two of two clients, \"alice\" with a READ_WRITE and a READ layout, "
        "and one with an empty identity and no layouts.",
        msg("SERVER_CLIENTS", server_clients([alice, anon]), 61, flags=RESPONSE))

    # OPEN, CLOSE, STAT (§4.10-4.12)
    add("open-request", "message", "OPEN request: tree 1, READ|WRITE|CREATE, mode 0644, path \"data/f\".",
        msg("OPEN", u32(1, "treeId") + u32(0x7, "openFlags READ|WRITE|CREATE") + [(struct.pack("<I", 0o644), "mode = 0o644")]
            + u16(6, "pathLength") + zeros(2) + path_fields("data/f"), 10))
    add("open-request-trunc-wt", "message",
        "OPEN request: WRITE|CREATE|EXCLUSIVE|TRUNCATE|WRITE_THROUGH, mode 0600, path \"log\".",
        msg("OPEN", u32(1, "treeId") + u32(0x3E, "openFlags WRITE|CREATE|EXCLUSIVE|TRUNCATE|WRITE_THROUGH")
            + [(struct.pack("<I", 0o600), "mode = 0o600")] + u16(3, "pathLength") + zeros(2) + path_fields("log"), 11))
    add("open-response", "message", "OPEN response: file id 0x100, a 128 KiB DAX regular file.",
        msg("OPEN", u64(0x100, "fileId") + FILE_ATTR, 10, flags=RESPONSE))
    add("close-request", "message", "CLOSE request for file 0x100.", msg("CLOSE", u64(0x100, "fileId"), 80))
    add("close-response", "message", "CLOSE response (empty body).", msg("CLOSE", [], 80, flags=RESPONSE))
    add("stat-by-id-request", "message", "STAT request by file id 0x100.",
        msg("STAT", u16(1, "kind BY_FILE_ID") + u16(0, "pathLength") + u32(0, "treeId") + u64(0x100, "fileId"), 12))
    add("stat-by-path-request", "message", "STAT request by path \"data\" in tree 1.",
        msg("STAT", u16(2, "kind BY_PATH") + u16(4, "pathLength") + u32(1, "treeId") + u64(0, "fileId")
            + path_fields("data"), 13))
    add("stat-root-request", "message", "STAT request for the export root (empty path).",
        msg("STAT", u16(2, "kind BY_PATH") + u16(0, "pathLength") + u32(1, "treeId") + u64(0, "fileId"), 14))
    add("stat-response", "message", "STAT response: a directory.", msg("STAT", DIR_ATTR, 13, flags=RESPONSE))

    # LIST (§4.13)
    add("list-request", "message", "LIST request: first page of \"data\", up to 100 entries.",
        msg("LIST", u32(1, "treeId") + u16(100, "maxEntries") + u16(4, "pathLength") + u64(0, "cookie")
            + path_fields("data"), 15))
    add("list-response", "message", "LIST response: two entries, more to come (cookie 0x2a).",
        msg("LIST", u16(2, "count") + u16(0, "listFlags") + zeros(4) + u64(0x2A, "nextCookie")
            + list_entry(0, FILE_ATTR, "f") + list_entry(1, DIR_ATTR, "sub dir é"), 15, flags=RESPONSE))
    add("list-response-end", "message", "LIST response: last page, no entries, END.",
        msg("LIST", u16(0, "count") + u16(1, "listFlags END") + zeros(4) + u64(0, "nextCookie"), 16, flags=RESPONSE))

    # SET_SIZE, PUNCH_HOLE, UNLINK, RENAME, FLUSH (§4.14-4.18)
    add("set-size-request", "message", "SET_SIZE request: file 0x100 to 4096 bytes.",
        msg("SET_SIZE", u64(0x100, "fileId") + u64(4096, "size"), 20))
    add("set-size-response", "message", "SET_SIZE response: the attributes after the change.",
        msg("SET_SIZE", attributes(4096, 4096, 1764000001000000000, 1764000001000000000, 5001, 0o644, 1, 1, 1),
            20, flags=RESPONSE))
    add("punch-hole-request", "message", "PUNCH_HOLE request: file 0x100, [8192, 8192+65536).",
        msg("PUNCH_HOLE", u64(0x100, "fileId") + u64(8192, "offset") + u64(65536, "length"), 21))
    add("punch-hole-response", "message", "PUNCH_HOLE response (empty body).",
        msg("PUNCH_HOLE", [], 21, flags=RESPONSE))
    add("unlink-request", "message", "UNLINK request: file \"data/old\".",
        msg("UNLINK", u32(1, "treeId") + u16(0, "unlinkFlags") + u16(8, "pathLength") + path_fields("data/old"), 22))
    add("unlink-dir-request", "message", "UNLINK request with DIRECTORY: \"data/empty\".",
        msg("UNLINK", u32(1, "treeId") + u16(1, "unlinkFlags DIRECTORY") + u16(10, "pathLength")
            + path_fields("data/empty"), 23))
    add("unlink-response", "message", "UNLINK response (empty body).", msg("UNLINK", [], 22, flags=RESPONSE))
    add("rename-request", "message", "RENAME request: \"data/a\" to \"data/b\", NO_REPLACE.",
        msg("RENAME", u32(1, "treeId") + u32(1, "renameFlags NO_REPLACE") + u16(6, "fromLength") + u16(6, "toLength")
            + zeros(4) + path_fields("data/a", "from") + path_fields("data/b", "to"), 24))
    add("rename-response", "message", "RENAME response (empty body).", msg("RENAME", [], 24, flags=RESPONSE))
    add("flush-request", "message", "FLUSH request: whole file 0x100 (length 0 = to end).",
        msg("FLUSH", u64(0x100, "fileId") + u64(0, "offset") + u64(0, "length"), 25))
    add("flush-response", "message", "FLUSH response (empty body).", msg("FLUSH", [], 25, flags=RESPONSE))

    # MKDIR, SET_ATTRIBUTES, STATFS, ALLOCATE (§4.21-4.24)
    add("mkdir-request", "message", "MKDIR request: tree 1, mode 0750, path \"data/new\".",
        msg("MKDIR", mkdir_request(1, 0o750, "data/new"), 26))
    add("mkdir-response", "message", "MKDIR response: the new directory's attributes.",
        msg("MKDIR", attributes(4096, 4096, 1764000002000000000, 1764000002000000000, 5002, 0o750, 2, 2, 0),
            26, flags=RESPONSE))
    add("set-attributes-by-path-request", "message",
        "SET_ATTRIBUTES request by path \"data/f\" in tree 1: mode 0640, mtime given, atime now.",
        msg("SET_ATTRIBUTES", set_attributes_request(2, 1, 0, 0x1 | 0x4 | 0x8, 0o640, 0, 1700000000123456789, "data/f"), 27))
    add("set-attributes-by-id-request", "message",
        "SET_ATTRIBUTES request by file id 0x100: atime one second before the epoch, mtime now.",
        msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x2 | 0x10, 0, -1000000000, 0), 28))
    add("set-attributes-response", "message", "SET_ATTRIBUTES response: the attributes after the change.",
        msg("SET_ATTRIBUTES", attributes(131072, 131072, 1700000000123456789, 1764000003000000000, 5001, 0o640, 1, 1, 0),
            27, flags=RESPONSE))
    add("statfs-request", "message", "STATFS request for tree 1.", msg("STATFS", u32(1, "treeId") + zeros(4), 29))
    add("statfs-response", "message",
        "STATFS response: 4 KiB blocks, 16 GiB of which 12 GiB free (11 GiB for unprivileged users), 1 Mi inodes.",
        msg("STATFS", statfs_response(4096, 255, 4194304, 3145728, 2883584, 1048576, 1048000), 29, flags=RESPONSE))
    add("allocate-request", "message", "ALLOCATE request: file 0x100, [128 KiB, 128 KiB + 1 MiB), growing the file.",
        msg("ALLOCATE", allocate_request(0x100, 131072, 1 << 20), 32))
    add("allocate-request-keep-size", "message", "ALLOCATE request with KEEP_SIZE: file 0x100, [0, 4 MiB).",
        msg("ALLOCATE", allocate_request(0x100, 0, 4 << 20, 1), 33))
    add("allocate-response", "message", "ALLOCATE response: the file grew to 1152 KiB.",
        msg("ALLOCATE", attributes(1179648, 1179648, 1764000004000000000, 1764000004000000000, 5001, 0o644, 1, 1, 1),
            32, flags=RESPONSE))

    # READ, WRITE (§4.19-4.20)
    add("read-request", "message", "Two-sided READ: 96 KiB at offset 65536 into two client buffers.",
        msg("READ", io_request(0x100, 65536, [(0x7F0000001000, 0x1234, 65536), (0x7F0000020000, 0x1235, 32768)]), 30))
    add("read-response", "message", "READ response: 40960 bytes placed, END_OF_FILE.",
        msg("READ", u32(40960, "bytesRead") + u32(1, "readFlags END_OF_FILE"), 30, flags=RESPONSE))
    add("write-request", "message", "Two-sided WRITE with WRITE_THROUGH: 4096 bytes at 0 from one buffer.",
        msg("WRITE", io_request(0x100, 0, [(0x7F0000001000, 0xABCD, 4096)], flags=1), 31))
    add("write-response", "message", "WRITE response: 4096 bytes written.",
        msg("WRITE", u32(4096, "bytesWritten") + zeros(4), 31, flags=RESPONSE))

    # Layouts (§5)
    add("layoutget-request", "message", "LAYOUTGET request: file 0x100, [0, 1 MiB), at least 64 KiB, RW.",
        msg("LAYOUTGET", u64(0x100, "fileId") + u64(0, "offset") + u64(1 << 20, "length") + u64(65536, "minLength")
            + u32(2, "iomode RW") + zeros(4), 40))
    add("layoutget-response-rw", "message",
        "LAYOUTGET response: RW layout {id 0x5000, seqid 1}, two extents, the second past EOF, 5 s deadline.",
        msg("LAYOUTGET", stateid(0x5000, 1) + u32(2, "iomode RW") + u32(5000, "recallDeadlineMs")
            + u16(2, "extentCount") + zeros(6) + extent(0, 0, 131072, 0x7F1200000000, 0x0101, 0)
            + extent(1, 131072, 917504, 0x7F1200020000, 0x0102, 2), 40, flags=RESPONSE))
    add("layoutget-request-read", "message", "LAYOUTGET request: READ, [0, 128 KiB), minLength 0.",
        msg("LAYOUTGET", u64(0x100, "fileId") + u64(0, "offset") + u64(131072, "length") + u64(0, "minLength")
            + u32(1, "iomode READ") + zeros(4), 41))
    add("layoutget-response-read", "message", "LAYOUTGET response: READ layout, one READ_ONLY extent.",
        msg("LAYOUTGET", stateid(0x5001, 1) + u32(1, "iomode READ") + u32(5000, "recallDeadlineMs")
            + u16(1, "extentCount") + zeros(6) + extent(0, 0, 131072, 0x7F1300000000, 0x0201, 1), 41, flags=RESPONSE))
    add("layoutget-try-later", "message", "LAYOUTGET failure during a recall: TRY_LATER, retry after 250 ms.",
        msg("LAYOUTGET", error_body(250), 42, flags=RESPONSE, status=0x01))
    add("layoutcommit-request", "message",
        "LAYOUTCOMMIT request: layout {0x5000, 1}, ranges [0,64K) and [64K,128K), NEW_SIZE 131072.",
        msg("LAYOUTCOMMIT", stateid(0x5000, 1) + u64(131072, "newSize") + u32(1, "commitFlags NEW_SIZE")
            + u16(2, "rangeCount") + zeros(2) + u64(0, "range[0].offset") + u64(65536, "range[0].length")
            + u64(65536, "range[1].offset") + u64(65536, "range[1].length"), 43))
    add("layoutcommit-request-no-size", "message", "LAYOUTCOMMIT request: one range, no new size.",
        msg("LAYOUTCOMMIT", stateid(0x5000, 2) + u64(0, "newSize") + u32(0, "commitFlags")
            + u16(1, "rangeCount") + zeros(2) + u64(4096, "range[0].offset") + u64(4096, "range[0].length"), 44))
    add("layoutcommit-response", "message", "LAYOUTCOMMIT response: {0x5000, 2}, durable size 131072.",
        msg("LAYOUTCOMMIT", stateid(0x5000, 2) + u64(131072, "size"), 43, flags=RESPONSE))
    add("layoutcommit-revoked", "message", "LAYOUTCOMMIT failure: LAYOUT_REVOKED.",
        msg("LAYOUTCOMMIT", error_body(), 45, flags=RESPONSE, status=0x02))
    add("layoutreturn-request-all", "message", "LAYOUTRETURN request: whole layout {0x5000, 3}, answering recall 9.",
        msg("LAYOUTRETURN", stateid(0x5000, 3) + u64(0, "offset") + u64(0, "length") + u32(1, "returnFlags ALL")
            + u32(9, "recallId"), 46))
    add("layoutreturn-request-range", "message", "LAYOUTRETURN request: voluntary return of [128K, 1M).",
        msg("LAYOUTRETURN", stateid(0x5000, 2) + u64(131072, "offset") + u64(917504, "length")
            + u32(0, "returnFlags") + u32(0, "recallId"), 47))
    add("layoutreturn-response", "message", "LAYOUTRETURN response (empty body).",
        msg("LAYOUTRETURN", [], 46, flags=RESPONSE))
    add("cb-layoutrecall", "message",
        "CB_LAYOUTRECALL callback: layout {0x5000, 3}, file 0x100, [0, 1 MiB), recall 9, 5000 ms, LEASE_BREAK.",
        msg("CB_LAYOUTRECALL", stateid(0x5000, 3) + u64(0x100, "fileId") + u64(0, "offset") + u64(1 << 20, "length")
            + u32(9, "recallId") + u32(5000, "deadlineMs") + u16(1, "reason LEASE_BREAK") + zeros(2) + zeros(4, "reserved2"),
            1, flags=CALLBACK))
    add("cb-layoutrecall-reply", "message", "CB_LAYOUTRECALL reply from the client: OK, recall 9.",
        msg("CB_LAYOUTRECALL", u32(9, "recallId") + zeros(4), 1, flags=CALLBACK | RESPONSE))
    add("cb-layoutrecall-reply-bad-stateid", "message",
        "CB_LAYOUTRECALL reply: BAD_STATEID (the client no longer holds the layout).",
        msg("CB_LAYOUTRECALL", u32(10, "recallId") + zeros(4), 2, flags=CALLBACK | RESPONSE, status=0x12))
    add("error-not-supported", "message",
        "Response NOT_SUPPORTED to a request with unknown command 0x00ff (error responses accept any command).",
        msg("UNKNOWN", error_body(), 99, flags=RESPONSE, status=0x10, cmd_code=0xFF))
    return V


def invalid_vectors():
    V = []

    def add(name, codec, desc, error, data):
        V.append((name, codec, desc, error, data))

    good_open = join(msg("OPEN", u32(1, "treeId") + u32(0x1, "openFlags") + u32(0o644, "mode") + u16(1, "pathLength")
                         + zeros(2) + text("f", "path"), 10))
    layoutget = lambda iomode: msg("LAYOUTGET", u64(0x100, "fileId") + u64(0, "offset") + u64(4096, "length")
                                   + u64(0, "minLength") + u32(iomode, "iomode") + zeros(4), 40)
    add("header-bad-magic", "message", "Upper-layer header with magic FE 'S' 'M' 'B'.", "badMagic(magic)",
        b"\xfeSMB" + good_open[4:])
    add("header-size", "message", "headerSize 64 instead of 40.", "outOfRange(headerSize)",
        good_open[:4] + struct.pack("<H", 64) + good_open[6:])
    add("header-unknown-flag", "message", "Header flags with undefined bit 0x4.", "unknownFlags(flags, 0x4)",
        good_open[:12] + struct.pack("<I", 4) + good_open[16:])
    add("request-with-status", "message", "A request (flags 0) with status 3.", "reservedNotZero(status)",
        good_open[:8] + struct.pack("<I", 3) + good_open[12:])
    add("header-reserved", "message", "Header reserved field not zero.", "reservedNotZero(reserved)",
        good_open[:36] + b"\x01\x00\x00\x00" + good_open[40:])
    add("body-trailing-byte", "message", "One byte more than bodyLength says.", "inconsistentLength(bodyLength)",
        good_open + b"\x00")
    add("body-truncated", "message", "One byte fewer than bodyLength says.", "truncated(body)", good_open[:-1])
    add("header-truncated", "message", "Only 20 bytes of header.", "truncated(messageId)", good_open[:20])
    add("unknown-command", "message", "A request for command 0x00ff.", "unknownCommand(0x00ff)",
        join(msg("UNKNOWN", [], 5, cmd_code=0xFF)))
    add("callback-wrong-command", "message", "An OPEN with the CALLBACK flag.", "outOfRange(command)",
        good_open[:12] + struct.pack("<I", 2) + good_open[16:])
    add("recall-as-request", "message", "CB_LAYOUTRECALL sent as a request.", "outOfRange(command)",
        join(msg("CB_LAYOUTRECALL", u32(9, "recallId") + zeros(4), 1)))
    add("open-unknown-flag", "message", "OPEN with undefined open flag 0x40.", "unknownFlags(openFlags, 0x40)",
        join(msg("OPEN", u32(1, "treeId") + u32(0x41, "openFlags") + u32(0o644, "mode") + u16(1, "pathLength")
                 + zeros(2) + text("f", "path"), 10)))
    add("open-path-overlong", "message", "OPEN whose pathLength is 4096.", "oversized(path)",
        join(msg("OPEN", u32(1, "treeId") + u32(0x1, "openFlags") + u32(0o644, "mode") + u16(4096, "pathLength")
                 + zeros(2) + raw(b"a" * 4096, "path"), 10)))
    add("open-tree-zero", "message", "OPEN with tree id 0.", "outOfRange(treeId)",
        join(msg("OPEN", u32(0, "treeId") + u32(0x1, "openFlags") + u32(0o644, "mode") + u16(1, "pathLength")
                 + zeros(2) + text("f", "path"), 10)))
    add("layoutget-bad-iomode", "message", "LAYOUTGET with iomode 3.", "outOfRange(iomode)", join(layoutget(3)))
    add("layoutget-wrapping-range", "message", "LAYOUTGET whose offset + length wraps past 2^64.",
        "outOfRange(length)",
        join(msg("LAYOUTGET", u64(0x100, "fileId") + u64(2 ** 64 - 4096, "offset") + u64(8192, "length")
                 + u64(0, "minLength") + u32(1, "iomode") + zeros(4), 40)))
    add("read-length-mismatch", "message", "READ whose length (8192) is not the descriptor sum (4096).",
        "inconsistentLength(length)",
        join(msg("READ", u64(0x100, "fileId") + u64(0, "offset") + u32(8192, "length") + u16(0, "ioFlags")
                 + u16(1, "descriptorCount") + descriptors([(0x1000, 1, 4096)]), 30)))
    add("read-too-many-descriptors", "message", "READ with descriptorCount 65.", "oversized(descriptorCount)",
        join(msg("READ", io_request(0x100, 0, [(0x1000 * (i + 1), 1, 4096) for i in range(65)]), 30)))
    add("read-no-descriptors", "message", "READ with no descriptors.", "outOfRange(descriptorCount)",
        join(msg("READ", u64(0x100, "fileId") + u64(0, "offset") + u32(0, "length") + u16(0, "ioFlags")
                 + u16(0, "descriptorCount"), 30)))
    add("tree-connect-reserved", "message", "TREE_CONNECT with a non-zero reserved byte.", "reservedNotZero(reserved)",
        join(msg("TREE_CONNECT", u16(4, "nameLength") + raw(b"\x00\x00\x00\x01\x00\x00", "reserved") + text("pmem", "n"), 4)))
    add("session-setup-bad-utf8", "message", "SESSION_SETUP identity that is not UTF-8.", "invalidUTF8(identity)",
        join(msg("SESSION_SETUP", u8(1, "phase") + zeros(1) + u16(2, "identityLength") + zeros(4)
                 + raw(CLIENT_NONCE, "clientNonce") + raw(b"\xc3\x28", "identity"), 2, sid=0)))
    add("session-setup-bad-phase", "message", "SESSION_SETUP phase 3.", "outOfRange(phase)",
        join(msg("SESSION_SETUP", u8(3, "phase") + zeros(7) + raw(CLIENT_PROOF, "proof"), 3)))
    add("list-name-dotdot", "message", "LIST response containing an entry named \"..\".", "outOfRange(name)",
        join(msg("LIST", u16(1, "count") + u16(1, "listFlags") + zeros(4) + u64(0, "nextCookie")
                 + list_entry(0, DIR_ATTR, ".."), 15, flags=RESPONSE)))
    add("layoutcommit-size-without-flag", "message", "LAYOUTCOMMIT with newSize but no NEW_SIZE flag.",
        "reservedNotZero(newSize)",
        join(msg("LAYOUTCOMMIT", stateid(0x5000, 1) + u64(4096, "newSize") + u32(0, "commitFlags")
                 + u16(1, "rangeCount") + zeros(2) + u64(0, "o") + u64(4096, "l"), 43)))
    add("stateid-seqid-zero", "message", "LAYOUTRETURN with seqid 0.", "outOfRange(stateid.seqid)",
        join(msg("LAYOUTRETURN", stateid(0x5000, 0) + u64(0, "offset") + u64(0, "length") + u32(1, "ALL")
                 + u32(0, "recallId"), 46)))
    add("attributes-bad-type", "message", "STAT response with file type 9.", "outOfRange(type)",
        join(msg("STAT", FILE_ATTR[:-3] + [(struct.pack("<H", 9), "type 9")] + FILE_ATTR[-2:], 12, flags=RESPONSE)))
    add("read-extents-not-readonly", "message", "READ layout with an extent lacking READ_ONLY.",
        "outOfRange(extent.flags)",
        join(msg("LAYOUTGET", stateid(0x5001, 1) + u32(1, "iomode READ") + u32(5000, "deadline") + u16(1, "count")
                 + zeros(6) + extent(0, 0, 4096, 0x1000, 1, 0), 41, flags=RESPONSE)))
    add("server-clients-too-many-layouts", "message", "SERVER_CLIENTS response listing 17 layouts of one client.",
        "oversized(layoutCount)",
        join(msg("SERVER_CLIENTS", server_clients([client_entry(
            0, 0x42, 1, 1, 0, 0, 17 * 4096, 0, "10.0.0.2", "bob",
            [client_layout(f"client[0].layout[{i}]", i * 4096, 4096, 0, "pmem:f") for i in range(17)])]), 62,
            flags=RESPONSE)))
    add("server-clients-count-over-total", "message", "SERVER_CLIENTS response listing 1 client of a total of 0.",
        "outOfRange(total)",
        join(msg("SERVER_CLIENTS", server_clients([client_entry(0, 0x42, 1, 0, 0, 0, 0, 0, "10.0.0.2", "bob", [])],
                                                  total=0), 63, flags=RESPONSE)))
    add("server-clients-empty-file", "message", "SERVER_CLIENTS response with a layout whose fileLength is 0.",
        "outOfRange(file)",
        join(msg("SERVER_CLIENTS", server_clients([client_entry(
            0, 0x42, 1, 1, 0, 0, 4096, 0, "10.0.0.2", "bob", [client_layout("client[0].layout[0]", 0, 4096, 1, "")])]),
            64, flags=RESPONSE)))
    # MKDIR, SET_ATTRIBUTES, STATFS, ALLOCATE (§4.21-4.24): one vector per codec rule.
    add("mkdir-tree-zero", "message", "MKDIR with tree id 0.", "outOfRange(treeId)",
        join(msg("MKDIR", mkdir_request(0, 0o755, "d"), 26)))
    add("mkdir-mode-too-big", "message", "MKDIR with mode 0o10000 (beyond the permission bits).", "outOfRange(mode)",
        join(msg("MKDIR", mkdir_request(1, 0o10000, "d"), 26)))
    add("mkdir-path-overlong", "message", "MKDIR whose pathLength is 4096.", "oversized(path)",
        join(msg("MKDIR", mkdir_request(1, 0o755, "", path_length=4096, raw_path=b"a" * 4096), 26)))
    add("mkdir-path-bad-utf8", "message", "MKDIR whose path is not UTF-8.", "invalidUTF8(path)",
        join(msg("MKDIR", mkdir_request(1, 0o755, "", raw_path=b"\xc3\x28"), 26)))
    add("set-attributes-bad-kind", "message", "SET_ATTRIBUTES with kind 3.", "outOfRange(kind)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(3, 0, 0x100, 0x10, 0, 0, 0), 28)))
    add("set-attributes-by-id-path-length", "message", "SET_ATTRIBUTES BY_FILE_ID with a 1-byte path.",
        "reservedNotZero(pathLength)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x10, 0, 0, 0, path="f"), 28)))
    add("set-attributes-by-id-tree", "message", "SET_ATTRIBUTES BY_FILE_ID naming tree 1.", "reservedNotZero(treeId)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 1, 0x100, 0x10, 0, 0, 0), 28)))
    add("set-attributes-by-id-zero", "message", "SET_ATTRIBUTES BY_FILE_ID with file id 0.", "outOfRange(fileId)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0, 0x10, 0, 0, 0), 28)))
    add("set-attributes-by-path-file-id", "message", "SET_ATTRIBUTES BY_PATH naming file id 0x100.",
        "reservedNotZero(fileId)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(2, 1, 0x100, 0x10, 0, 0, 0, path="f"), 27)))
    add("set-attributes-by-path-tree-zero", "message", "SET_ATTRIBUTES BY_PATH with tree id 0.", "outOfRange(treeId)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(2, 0, 0, 0x10, 0, 0, 0, path="f"), 27)))
    add("set-attributes-path-overlong", "message", "SET_ATTRIBUTES BY_PATH whose pathLength is 4096.", "oversized(path)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(2, 1, 0, 0x10, 0, 0, 0, path_length=4096, raw_path=b"a" * 4096), 27)))
    add("set-attributes-path-bad-utf8", "message", "SET_ATTRIBUTES BY_PATH whose path is not UTF-8.", "invalidUTF8(path)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(2, 1, 0, 0x10, 0, 0, 0, raw_path=b"\xc3\x28"), 27)))
    add("set-attributes-unknown-flag", "message", "SET_ATTRIBUTES with undefined which bit 0x20.",
        "unknownFlags(which, 0x20)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x30, 0, 0, 0), 28)))
    add("set-attributes-atime-twice", "message", "SET_ATTRIBUTES with both ATIME and ATIME_NOW.", "outOfRange(which)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x2 | 0x8, 0, 5, 0), 28)))
    add("set-attributes-mtime-twice", "message", "SET_ATTRIBUTES with both MTIME and MTIME_NOW.", "outOfRange(which)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x4 | 0x10, 0, 0, 5), 28)))
    add("set-attributes-mode-too-big", "message", "SET_ATTRIBUTES MODE with mode 0o10000.", "outOfRange(mode)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x1, 0o10000, 0, 0), 28)))
    add("set-attributes-mode-without-flag", "message", "SET_ATTRIBUTES with mode 0644 but no MODE.",
        "reservedNotZero(mode)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x10, 0o644, 0, 0), 28)))
    add("set-attributes-atime-without-flag", "message", "SET_ATTRIBUTES with atimeNs set but ATIME_NOW, not ATIME.",
        "reservedNotZero(atimeNs)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x8, 0, 5, 0), 28)))
    add("set-attributes-mtime-without-flag", "message", "SET_ATTRIBUTES with mtimeNs set but no MTIME.",
        "reservedNotZero(mtimeNs)",
        join(msg("SET_ATTRIBUTES", set_attributes_request(1, 0, 0x100, 0x1, 0o644, 0, 5), 28)))
    add("statfs-tree-zero", "message", "STATFS with tree id 0.", "outOfRange(treeId)",
        join(msg("STATFS", u32(0, "treeId") + zeros(4), 29)))
    add("statfs-response-block-size-zero", "message", "STATFS response with blockSize 0.", "outOfRange(blockSize)",
        join(msg("STATFS", statfs_response(0, 255, 1, 1, 1, 1, 1), 29, flags=RESPONSE)))
    add("allocate-file-zero", "message", "ALLOCATE with file id 0.", "outOfRange(fileId)",
        join(msg("ALLOCATE", allocate_request(0, 0, 4096), 32)))
    add("allocate-empty", "message", "ALLOCATE of an empty range.", "outOfRange(length)",
        join(msg("ALLOCATE", allocate_request(0x100, 4096, 0), 32)))
    add("allocate-wrapping-range", "message", "ALLOCATE whose offset + length wraps past 2^64.", "outOfRange(length)",
        join(msg("ALLOCATE", allocate_request(0x100, 2 ** 64 - 4096, 8192), 32)))
    add("allocate-unknown-flag", "message", "ALLOCATE with undefined flag 0x2.", "unknownFlags(allocateFlags, 0x2)",
        join(msg("ALLOCATE", allocate_request(0x100, 0, 4096, 3), 32)))
    add("dt-unknown-type", "transport", "Transport message type 9.", "unknownMessageType(0x0009)",
        struct.pack("<H", 9) + bytes(22))
    add("dt-misaligned", "transport", "Data transfer message with dataOffset 28.", "misaligned(dataOffset)",
        join(data_transfer(b"abcd", offset=24))[:12] + struct.pack("<I", 28) + join(data_transfer(b"abcd"))[16:24]
        + b"\x00\x00\x00\x00abcd")
    add("dt-truncated", "transport", "Data transfer message whose payload is 2 bytes short.", "truncated(data)",
        join(data_transfer(b"abcdefgh"))[:-2])
    add("dt-empty-with-remaining", "transport", "Empty data transfer message claiming 10 bytes remaining.",
        "outOfRange(remainingDataLength)", join(data_transfer(remaining=10)))
    add("dt-unknown-flag", "transport", "Data transfer flags with undefined bit 0x8000.",
        "unknownFlags(flags, 0x8000)", join(data_transfer(flags=0x8000)))
    add("dt-oversized", "transport", "A fragment claiming a 32 MiB message.", "oversized(remainingDataLength)",
        join(data_transfer(b"abcdefgh", remaining=32 << 20)))
    add("negotiate-response-short", "transport", "Transport negotiate response cut at 30 bytes.",
        "truncated(maxReceiveSize)", join(negotiate_response())[:30])
    add("pd-bad-magic", "private-data", "Private data with magic \"SMBD\".", "badMagic(privateData.magic)",
        b"SMBD" + join(private_data(1))[4:])
    add("pd-reject-without-reason", "private-data", "REJECT private data with reason 0.", "outOfRange(reason)",
        join(private_data(3, 0)))
    return V


# ---------------------------------------------------------------- writing

def write_vec(path, codec, desc, fields=None, data=None, error=None):
    lines = [f"# {desc}", f"codec: {codec}"]
    if error:
        lines.append(f"error: {error}")
    if fields is not None:
        for b, note in fields:
            for i in range(0, max(len(b), 1), 16):
                chunk = b[i:i + 16]
                if not chunk:
                    continue
                hx = " ".join(f"{x:02x}" for x in chunk)
                lines.append(f"{hx:<47} | {note}" if i == 0 else hx)
    else:
        for i in range(0, len(data), 16):
            lines.append(" ".join(f"{x:02x}" for x in data[i:i + 16]))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    for name in os.listdir(HERE):
        if name.endswith(".vec"):
            os.remove(os.path.join(HERE, name))
    inv = os.path.join(HERE, "invalid")
    os.makedirs(inv, exist_ok=True)
    for name in os.listdir(inv):
        if name.endswith(".vec"):
            os.remove(os.path.join(inv, name))
    valid = valid_vectors()
    for name, codec, desc, fields in valid:
        write_vec(os.path.join(HERE, name + ".vec"), codec, desc, fields=fields)
    invalid = invalid_vectors()
    for name, codec, desc, error, data in invalid:
        write_vec(os.path.join(inv, name + ".vec"), codec, desc, data=data, error=error)
    print(f"{len(valid)} valid and {len(invalid)} invalid vectors written")
    print("clientProof", CLIENT_PROOF.hex())
    print("serverProof", SERVER_PROOF.hex())


if __name__ == "__main__":
    main()
