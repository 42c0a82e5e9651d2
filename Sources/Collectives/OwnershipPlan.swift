// Which rank updates which parameters: the plan the exchange cuts its reduction by, and its update follows.
import Numerics

/// Each rank's part of the parameter vector: the parameters whose mean gradient the exchange leaves with it, whose
/// optimizer state it keeps, and whose update it applies before the parts are gathered.
///
/// Parts are contiguous and in rank order, so one allgather completes the parameters. Who owns an element changes
/// only who adds its chunk sums along the fixed tree, never the additions themselves, so every plan gives the same
/// bits; and a checkpoint holds whole buffers, so it does not depend on the plan either.
public struct OwnershipPlan: Equatable, Sendable {
    public enum Unit: Equatable, Sendable {
        /// Every rank updates every parameter (one rank, several replicas, or the mpi reduction).
        case everything
        /// Equal slices of elements (ZeRO-1), for rules that update each element from its own state.
        case elements
        /// Whole tensors of the given sizes (in parameter order), cut into contiguous runs of about equal total
        /// cost, for rules that update a matrix at a time.
        case tensors(sizes: [Int], costs: [Double])
    }

    public let unit: Unit
    /// Rank q's part (every part is the whole vector with `.everything`).
    public let parts: [Range<Int>]
    /// The cut of the exchange's summed vector (`parameterCount` parameters, then `extra` slots, which the last
    /// rank's slice carries when the cut follows tensors): what each rank finishes the tree for.
    public let slices: [Range<Int>]

    /// - Parameters:
    ///   - extra: floats the exchange sums after the parameters (loss and |g|² slots), cut with them.
    public init(_ unit: Unit, parameterCount: Int, extra: Int = 0, ranks: Int) {
        precondition(ranks >= 1)
        let floats = parameterCount + extra
        let unit = ranks == 1 ? Unit.everything : unit
        self.unit = unit
        switch unit {
        case .everything, .elements:
            slices = (0..<ranks).map { shard(of: 0..<floats, rank: $0, size: ranks) }
        case let .tensors(sizes, costs):
            precondition(sizes.reduce(0, +) == parameterCount && costs.count == sizes.count)
            let bounds = Self.balancedCut(costs, parts: ranks)
            let starts = Pieces<Void>.endToEnd(sizes) + [parameterCount]
            slices = (0..<ranks).map { q in
                starts[bounds[q]]..<(q == ranks - 1 ? floats : starts[bounds[q + 1]])
            }
        }
        parts = unit == .everything
            ? [Range<Int>](repeating: 0..<parameterCount, count: ranks)
            : slices.map { $0.clamped(to: 0..<parameterCount) }
    }

    /// Whether each rank updates only its own part.
    public var sharded: Bool { unit != .everything }

    /// The parts as pieces of the parameter vector, for the allgather that completes it.
    public var pieces: (counts: [Int], offsets: [Int]) { (parts.map(\.count), parts.map(\.lowerBound)) }

    /// Boundaries b₀ = 0 ≤ b₁ ≤ … ≤ b_parts = costs.count: part q takes items b_q..<b_{q+1}. Each boundary is where the
    /// running total comes nearest q/parts of the whole (ties to the earlier item).
    static func balancedCut(_ costs: [Double], parts: Int) -> [Int] {
        var prefix = [0.0]
        for c in costs { prefix.append(prefix.last! + c) }
        let total = prefix.last!
        var bounds = [0]
        for q in 1..<parts {
            let goal = total * Double(q) / Double(parts)
            var best = bounds.last!
            for i in bounds.last!...costs.count where abs(prefix[i] - goal) < abs(prefix[best] - goal) { best = i }
            bounds.append(best)
        }
        return bounds + [costs.count]
    }
}
