// One fixed order of floating-point additions over the chunks of a global batch, whoever computes them: the
// summation tree of the deterministic reduction.
import Numerics

/// The binary tree over `leaves` leaves (chunks) whose shape depends on the number of leaves only.
///
/// Node (level L, index i) covers the leaves [i·2^L, (i+1)·2^L) ∩ [0, leaves). Its value is the sum of its two
/// children, left + right, or its left child alone when the right one covers no leaf; a leaf's value is its
/// chunk's vector. Float addition is commutative but not associative, so this definition fixes the bits of the
/// root: any set of ranks that computes disjoint subtrees and combines them along the same tree gets the same
/// root, bit for bit, as one process doing it all.
///
/// A rank owns a contiguous run of leaves. `blocks(of:)` cuts that run into the largest nodes that lie wholly
/// inside it (at most about 2·log₂ leaves of them); the rank computes those, and the tree above them is
/// finished from the blocks of all ranks.
public struct FixedTree: Sendable {
    public struct Node: Hashable, Sendable {
        public var level: Int
        public var index: Int
        public init(level: Int, index: Int) {
            self.level = level
            self.index = index
        }
        /// The first leaf this node covers.
        public var firstLeaf: Int { index << level }
        public var left: Node { Node(level: level - 1, index: 2 * index) }
        public var right: Node { Node(level: level - 1, index: 2 * index + 1) }
    }

    public let leaves: Int
    public let root: Node

    public init(leaves: Int) {
        precondition(leaves >= 1)
        self.leaves = leaves
        var height = 0
        while 1 << height < leaves { height += 1 }
        root = Node(level: height, index: 0)
    }

    /// The largest nodes lying wholly inside `range` (a run of leaves), left to right.
    public static func blocks(of range: Range<Int>) -> [Node] {
        var out: [Node] = []
        var a = range.lowerBound
        while a < range.upperBound {
            var level = 0
            while a & ((1 << (level + 1)) - 1) == 0 && a + (1 << (level + 1)) <= range.upperBound { level += 1 }
            out.append(Node(level: level, index: a >> level))
            a += 1 << level
        }
        return out
    }

    /// Computes node values over vectors of `length` floats, with one scratch vector per level.
    ///
    /// A node's value is built in its destination: its left child is computed there, its right child in the
    /// scratch vector of the node's level, and then added in place. A right child's own left child reuses that
    /// scratch vector and its right child the level below, so no vector still needed is overwritten.
    public final class Evaluator {
        public let length: Int
        private var scratch: [UnsafeMutablePointer<Float>] = []

        public init(length: Int) { self.length = length }

        deinit { scratch.forEach { $0.deallocate() } }

        private func slot(_ level: Int) -> UnsafeMutablePointer<Float> {
            while scratch.count <= level {
                let p = UnsafeMutablePointer<Float>.allocate(capacity: max(length, 1))
                p.initialize(repeating: 0, count: max(length, 1))
                scratch.append(p)
            }
            return scratch[level]
        }

        /// The value of `node` in `tree`, written to `destination`.
        ///
        /// - Parameters:
        ///   - scaling: multiplies the first `prefix` floats of the value by `factor`, in the same pass as the last
        ///     addition when there is one. Each float is rounded after the addition and again after the product,
        ///     exactly as two separate passes would round it.
        ///   - known: the value of a node that is already computed (a block received from a rank), or nil to
        ///     compute it from its children.
        ///   - leaf: writes leaf i's vector into the given buffer (of `length` floats, contents undefined).
        public func value(
            of node: FixedTree.Node, in tree: FixedTree, into destination: UnsafeMutablePointer<Float>,
            scaling: (prefix: Int, factor: Float)? = nil,
            known: (FixedTree.Node) -> UnsafePointer<Float>? = { _ in nil },
            leaf: (Int, UnsafeMutablePointer<Float>) throws -> Void = { _, _ in preconditionFailure("no leaf source") }
        ) rethrows {
            let result = try value(node, tree, destination, known, leaf, scaling: scaling)!
            guard result != UnsafePointer(destination) else { return }
            destination.update(from: result, count: length)
            if let scaling { Kernels.scale(destination, count: scaling.prefix, by: scaling.factor) }
        }

        /// The node's value: a known block, or computed in `destination`, or its lone left child's value; nil
        /// when the node covers no leaf. `scaling` applies to a value computed in `destination` only.
        private func value(
            _ node: FixedTree.Node, _ tree: FixedTree, _ destination: UnsafeMutablePointer<Float>,
            _ known: (FixedTree.Node) -> UnsafePointer<Float>?, _ leaf: (Int, UnsafeMutablePointer<Float>) throws -> Void,
            scaling: (prefix: Int, factor: Float)? = nil
        ) rethrows -> UnsafePointer<Float>? {
            guard node.firstLeaf < tree.leaves else { return nil }
            if let given = known(node) { return given }
            if node.level == 0 {
                try leaf(node.index, destination)
                if let scaling { Kernels.scale(destination, count: scaling.prefix, by: scaling.factor) }
                return UnsafePointer(destination)
            }
            let l = try value(node.left, tree, destination, known, leaf)!
            guard let r = try value(node.right, tree, slot(node.level), known, leaf) else {
                // A lone left child computed in place still needs its scaling; a known one is copied by the caller.
                if let scaling, l == UnsafePointer(destination) { Kernels.scale(destination, count: scaling.prefix, by: scaling.factor) }
                return l
            }
            if let (prefix, factor) = scaling {
                Kernels.addThenScale(l, r, into: destination, count: prefix, by: factor)
                Kernels.add(l + prefix, r + prefix, into: destination + prefix, count: length - prefix)
            } else {
                Kernels.add(l, r, into: destination, count: length)
            }
            return UnsafePointer(destination)
        }
    }
}
