import Experiments
import Foundation
import Testing

@Suite("Benchmark score: AlgoPerf's performance profiles and their integral")
struct BenchmarkTests {
    /// Two workloads: on A, x takes 10 s, y 20 s and z never reaches the target; on B, x 30, y 15 and z 45.
    static let bench = Benchmark(workloads: [
        .init(name: "A", times: ["x": 10, "y": 20, "z": nil]),
        .init(name: "B", times: ["x": 30, "y": 15, "z": 45]),
    ], rMax: 4)

    @Test("ratios to the best, the profile's steps, and the score by hand: ((4 − 1) + (4 − 2)) / 3 / 2 for x")
    func byHand() {
        let b = Self.bench
        #expect(b.ratio("x", b.workloads[0]) == 1 && b.ratio("y", b.workloads[0]) == 2 && b.ratio("z", b.workloads[0]) == .infinity)
        #expect(b.ratio("z", b.workloads[1]) == 3)
        #expect(b.profile("x", at: 1) == 0.5 && b.profile("x", at: 1.99) == 0.5 && b.profile("x", at: 2) == 1)
        #expect(abs(b.score("x") - 5.0 / 6) < 1e-15 && abs(b.score("y") - 5.0 / 6) < 1e-15 && abs(b.score("z") - 1.0 / 6) < 1e-15)
        #expect(b.ranking.map(\.rule) == ["x", "y", "z"])
    }

    @Test("the score is the profile's integral: a midpoint sum over τ agrees")
    func integral() {
        let b = Self.bench, n = 30_000
        for rule in b.rules {
            let sum = (0..<n).reduce(0.0) { $0 + b.profile(rule, at: 1 + 3 * (Double($1) + 0.5) / Double(n)) } / Double(n)
            #expect(abs(sum - b.score(rule)) < 1e-4, "\(rule): \(sum) vs \(b.score(rule))")
        }
    }

    @Test("a rule beyond r_max on every workload scores 0; the CSV leaves its unreached cells empty")
    func beyond() {
        let b = Benchmark(workloads: [.init(name: "A", times: ["fast": 1, "slow": 5])], rMax: 4)
        #expect(b.score("slow") == 0 && b.score("fast") == 1)
        #expect(Self.bench.csv.split(separator: "\n")[3] == "z,0.166667,,,45,3")
        #expect(Self.bench.chart.contains("<svg") && Self.bench.findings.first!.hasPrefix("x ranks first"))
    }
}
