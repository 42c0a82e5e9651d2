// Who updates what: the ownership plan's cuts, and the exchange's bits through shared memory and through messages,
// whatever the plan.
import Collectives
import Foundation
import CollectivesTesting
import Numerics
import Testing

@Suite("Ownership and shared memory")
struct OwnershipTests {
    @Test("a tensor plan gives each rank whole tensors, contiguous and in order, of about equal cost")
    func tensorPlan() {
        let sizes = [784 * 1000, 1000, 1000 * 500, 500, 500 * 100, 100, 100 * 10, 10]
        for ranks in 1...5 {
            let plan = OwnershipPlan(.tensors(sizes: sizes, costs: sizes.map(Double.init)), parameterCount: sizes.reduce(0, +),
                                     extra: 2, ranks: ranks)
            let starts = Set(Pieces<Void>.endToEnd(sizes) + [sizes.reduce(0, +)])
            #expect(plan.parts.count == ranks && plan.parts.first?.lowerBound == 0 && plan.parts.last?.upperBound == sizes.reduce(0, +))
            for (a, b) in zip(plan.parts, plan.parts.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            // Every cut falls between two tensors.
            for part in plan.parts { #expect(starts.contains(part.lowerBound) && starts.contains(part.upperBound)) }
            #expect(plan.slices.last?.upperBound == sizes.reduce(0, +) + 2)
            // No part exceeds an equal share by more than the largest tensor.
            let share = Double(sizes.reduce(0, +)) / Double(ranks)
            for part in plan.parts { #expect(Double(part.count) <= share + Double(sizes.max()!)) }
        }
        // The cut follows the costs, not the sizes: one costly small tensor gets a rank to itself.
        let plan = OwnershipPlan(.tensors(sizes: [10, 10, 10], costs: [1, 100, 1]), parameterCount: 30, ranks: 3)
        #expect(plan.parts == [0..<10, 10..<20, 20..<30])
        #expect(OwnershipPlan(.elements, parameterCount: 10, extra: 2, ranks: 3).parts == [0..<4, 4..<8, 8..<10])
        #expect(OwnershipPlan(.elements, parameterCount: 10, ranks: 1).unit == .everything)
    }

    /// Three steps of a toy rule (θ ← θ − g/8) on sums that depend on the order of the additions, with batches of
    /// 70, 30 and 70 samples (the layout changes twice): the parameters and the last whole gradient.
    static func steps(ranks: Int, sharing: Bool, ownership: OwnershipPlan.Unit, p: Int) throws -> [([Float], [Float])] {
        try InProcessGroup.run(ranks: ranks, sharing: sharing) { comm -> ([Float], [Float]) in
            let exchange = GradientExchange(parameterCount: p, ranks: comm.size, rank: comm.rank, reduction: .deterministic,
                                            chunk: 4, ownership: ownership)
            var theta = (0..<p).map { Float($0) / 7 }
            var whole: [Float] = []
            for (step, count) in [70, 30, 70].enumerated() {
                _ = try exchange.exchange(count: count, measureNoise: false, requestStop: false, wholeGradient: step == 2,
                                          over: comm) { _, positions, g in
                    for i in 0..<p { g[i] = positions.reduce(Float(0)) { $0 + Float(sin(Double($1 * 31 + i + step))) * 1e4 } }
                    return 1
                }
                if step == 2 { whole = exchange.withGradient { Array($0) } }
                _ = try theta.withUnsafeMutableBufferPointer { θ in
                    try exchange.update(θ, over: comm) { θ, g in for i in θ.indices { θ[i] -= g[i] / 8 } }
                }
            }
            return (theta, whole)
        }
    }

    @Test("shared memory and messages give the same bits for every plan and any rank count, as one rank alone")
    func sameBits() throws {
        let p = 37, sizes = [12, 3, 20, 2]
        let alone = try Self.steps(ranks: 1, sharing: false, ownership: .everything, p: p)[0]
        for ranks in 2...4 {
            for sharing in [true, false] {
                for unit in [OwnershipPlan.Unit.everything, .elements, .tensors(sizes: sizes, costs: sizes.map(Double.init))] {
                    for (theta, whole) in try Self.steps(ranks: ranks, sharing: sharing, ownership: unit, p: p) {
                        #expect(theta.map(\.bitPattern) == alone.0.map(\.bitPattern), "\(ranks) ranks, sharing \(sharing), \(unit)")
                        #expect(whole.map(\.bitPattern) == alone.1.map(\.bitPattern), "\(ranks) ranks, sharing \(sharing), \(unit)")
                    }
                }
            }
        }
    }
}
