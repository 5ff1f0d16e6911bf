import DaxshareMount
import Testing

@Suite struct NodeTableTests {
    @Test func aPathKeepsItsNodeWhileTheKernelCountsIt() {
        let table = NodeTable()
        #expect(table.path(of: NodeTable.rootId) == "")
        let a = table.lookedUp("a")
        #expect(table.lookedUp("a") == a)
        #expect(table.childPath(NodeTable.rootId, "a") == "a")
        #expect(table.childPath(a, "b") == "a/b")
        table.forget(a, 1)
        #expect(table.path(of: a) == "a")
        table.forget(a, 1)
        #expect(table.path(of: a) == nil)
        // A new lookup makes a new id: ids are never reused.
        #expect(table.lookedUp("a") != a)
    }

    @Test func theRootIsNeverForgotten() {
        let table = NodeTable(rootPath: "sub/dir")
        table.forget(NodeTable.rootId, 100)
        #expect(table.path(of: NodeTable.rootId) == "sub/dir")
        #expect(table.childPath(NodeTable.rootId, "x") == "sub/dir/x")
    }

    @Test func renameMovesTheNodeAndEverythingBelowIt() {
        let table = NodeTable()
        let dir = table.lookedUp("d")
        let file = table.lookedUp("d/f")
        let deep = table.lookedUp("d/e/g")
        let other = table.lookedUp("dx")
        table.renamed(from: "d", to: "n")
        #expect(table.path(of: dir) == "n")
        #expect(table.path(of: file) == "n/f")
        #expect(table.path(of: deep) == "n/e/g")
        #expect(table.path(of: other) == "dx", "a sibling sharing the prefix stays")
        #expect(table.existing("d/f") == nil)
        #expect(table.existing("n/f") == file)
    }

    @Test func aReplacedTargetIsDetached() {
        let table = NodeTable()
        let source = table.lookedUp("a")
        let target = table.lookedUp("b")
        let below = table.lookedUp("b/c")
        table.renamed(from: "a", to: "b")
        #expect(table.path(of: source) == "b")
        #expect(table.path(of: target) == nil)
        #expect(table.path(of: below) == nil)
        #expect(table.existing("b") == source)
        // Forgetting a detached node does not disturb the path's new owner.
        table.forget(target, 1)
        #expect(table.existing("b") == source)
    }

    @Test func removeDetachesButTheNodeLivesUntilForgotten() {
        let table = NodeTable()
        let f = table.lookedUp("f")
        table.removed("f")
        #expect(table.path(of: f) == nil)
        #expect(table.count == 2)
        let again = table.lookedUp("f")
        #expect(again != f)
        table.forget(f, 1)
        #expect(table.count == 2)
        #expect(table.existing("f") == again)
    }
}
