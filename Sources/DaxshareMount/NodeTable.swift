import Synchronization

/// The kernel's node ids (FUSE `fuse_ino_t`) and the export paths they stand for.
///
/// FUSE's low-level API names files by node id; the protocol names them by path. Each reply
/// that hands the kernel an entry (lookup, create, mkdir, readdirplus) counts one lookup, and
/// `forget` takes them back; a node lives while the kernel counts it. Ids are never reused,
/// so the generation is always 0. The root is node 1 (the export root "", or the directory
/// mounted), never forgotten.
///
/// A rename moves the node and everything below it; an unlink or a rename onto a node
/// detaches that node from its path (it stays valid for the kernel until forgotten, and its
/// open files keep working by file id, but a path lookup through it finds nothing).
public final class NodeTable: Sendable {
    public static let rootId: UInt64 = 1

    struct Node {
        /// Relative to the export root; nil once detached.
        var path: String?
        var lookups: UInt64
    }

    private struct State {
        var nodes: [UInt64: Node] = [NodeTable.rootId: Node(path: "", lookups: 1)]
        var byPath: [String: UInt64] = ["": NodeTable.rootId]
        var nextId: UInt64 = NodeTable.rootId + 1
    }

    private let state: Mutex<State>

    /// `rootPath`: what node 1 stands for (a mount of a directory inside the export).
    public init(rootPath: String = "") {
        var s = State()
        s.nodes = [Self.rootId: Node(path: rootPath, lookups: 1)]
        s.byPath = [rootPath: Self.rootId]
        state = Mutex(s)
    }

    /// The path of a child of `parent`: nil when the parent is unknown or detached.
    public func childPath(_ parent: UInt64, _ name: String) -> String? {
        guard let base = path(of: parent) else { return nil }
        return Self.join(base, name)
    }

    /// The path node `id` stands for, if it still has one.
    public func path(of id: UInt64) -> String? {
        state.withLock { $0.nodes[id]?.path }
    }

    /// The node for `path` after the kernel was handed an entry for it: one more lookup.
    public func lookedUp(_ path: String) -> UInt64 {
        state.withLock { s in
            if let id = s.byPath[path] {
                s.nodes[id]!.lookups += 1
                return id
            }
            let id = s.nextId
            s.nextId += 1
            s.nodes[id] = Node(path: path, lookups: 1)
            s.byPath[path] = id
            return id
        }
    }

    /// The node for `path` if one exists now (no lookup counted).
    public func existing(_ path: String) -> UInt64? {
        state.withLock { $0.byPath[path] }
    }

    /// The kernel forgot `count` lookups of `id`; the node goes at zero (never the root).
    public func forget(_ id: UInt64, _ count: UInt64) {
        guard id != Self.rootId else { return }
        state.withLock { s in
            guard var node = s.nodes[id] else { return }
            node.lookups = node.lookups > count ? node.lookups - count : 0
            if node.lookups == 0 {
                s.nodes[id] = nil
                if let p = node.path, s.byPath[p] == id { s.byPath[p] = nil }
            } else {
                s.nodes[id] = node
            }
        }
    }

    /// `path` was removed (unlink, rmdir): its node, if any, is detached.
    public func removed(_ path: String) {
        state.withLock { s in Self.detach(path, in: &s) }
    }

    /// `from` was renamed to `to`: the node at `to` is detached (replaced), and the node at
    /// `from` with every node below it moves.
    public func renamed(from: String, to: String) {
        guard from != to else { return }
        state.withLock { s in
            Self.detach(to, in: &s)
            let prefix = from + "/"
            let moving = s.byPath.filter { $0.key == from || $0.key.hasPrefix(prefix) }
            for (old, id) in moving {
                let new = to + old.dropFirst(from.count)
                s.byPath[old] = nil
                s.byPath[new] = id
                s.nodes[id]?.path = new
            }
        }
    }

    /// How many nodes the kernel holds (the root included): for tests and stats.
    public var count: Int { state.withLock { $0.nodes.count } }

    static func join(_ base: String, _ name: String) -> String {
        base.isEmpty ? name : base + "/" + name
    }

    private static func detach(_ path: String, in s: inout State) {
        guard let id = s.byPath.removeValue(forKey: path) else { return }
        s.nodes[id]?.path = nil
        // Whatever was below a replaced directory is gone with it.
        let prefix = path + "/"
        for (p, child) in s.byPath where p.hasPrefix(prefix) {
            s.byPath[p] = nil
            s.nodes[child]?.path = nil
        }
    }
}
