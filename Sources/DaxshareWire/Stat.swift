/// STAT request: attributes of an open file, or of a path (lstat semantics; the empty path is
/// the export root).
public enum StatRequest: WireBody {
    case fileId(UInt64)
    case path(treeId: UInt32, path: String)

    func encode(into w: inout ByteWriter) throws(WireError) {
        switch self {
        case .fileId(let id):
            try checkNonzero(id, "fileId")
            w.u16(1)
            w.u16(0)
            w.u32(0)
            w.u64(id)
        case .path(let tree, let path):
            try checkNonzero(tree, "treeId")
            let n = try utf8Length(path, max: Limits.maxPathLength, "path")
            w.u16(2)
            w.u16(n)
            w.u32(tree)
            w.u64(0)
            w.append(path.utf8)
        }
    }

    static func decode(from r: inout ByteReader) throws(WireError) -> StatRequest {
        let kind = try r.u16("kind")
        let n = Int(try r.u16("pathLength"))
        let tree = try r.u32("treeId")
        let id = try r.u64("fileId")
        switch kind {
        case 1:
            if n != 0 { throw .reservedNotZero(field: "pathLength") }
            if tree != 0 { throw .reservedNotZero(field: "treeId") }
            try checkNonzero(id, "fileId")
            return .fileId(id)
        case 2:
            if id != 0 { throw .reservedNotZero(field: "fileId") }
            try checkNonzero(tree, "treeId")
            if n > Limits.maxPathLength { throw .oversized(field: "path") }
            return .path(treeId: tree, path: try r.utf8(n, "path"))
        default:
            throw .outOfRange(field: "kind")
        }
    }
}
