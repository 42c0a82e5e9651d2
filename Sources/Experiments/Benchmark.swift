// A benchmark score over studies, AlgoPerf's way (Dahl et al. 2023): each workload is a study with its target; a
// rule's time on a workload is its fastest trial to the target; performance profiles and their integral rank the rules.
import Foundation
import Reports

/// The scores of every rule over a set of workloads.
public struct Benchmark: Sendable {
    /// One workload: its name and, per rule (a study variant), the fastest trial's time to the target (nil: none
    /// reached it).
    public struct Workload: Sendable {
        public var name: String
        public var times: [String: Double?]
        public init(name: String, times: [String: Double?]) { (self.name, self.times) = (name, times) }
    }

    /// A workload from a study's trials: per variant, its fastest trial that reached the target (seconds, or steps).
    public static func workload<S: Sequence>(name: String, _ trials: S, steps: Bool) -> Workload where S.Element == TrialRecord {
        var times: [String: Double?] = [:]
        for t in trials {
            let time = t.reached ? (steps ? t.steps.map(Double.init) : t.seconds) : nil
            let best = [times[t.variant] ?? nil, time].compactMap { $0 }.min()
            times[t.variant] = .some(best)
        }
        return Workload(name: name, times: times)
    }

    public let workloads: [Workload]
    /// The rules, in the order of their first appearance.
    public let rules: [String]
    /// The largest ratio to the best time the profile counts (AlgoPerf's r_max, 4).
    public let rMax: Double

    public init(workloads: [Workload], rMax: Double = 4) {
        self.workloads = workloads
        var rules: [String] = []
        for w in workloads { for r in w.times.keys.sorted() where !rules.contains(r) { rules.append(r) } }
        self.rules = rules
        self.rMax = rMax
    }

    /// A rule's time on a workload over the best rule's there: ∞ when it did not reach the target (or no rule did).
    public func ratio(_ rule: String, _ w: Workload) -> Double {
        let best = w.times.values.compactMap { $0 }.min()
        guard let best, let t = w.times[rule] ?? nil else { return .infinity }
        return t / best
    }

    /// ρ(τ): the fraction of workloads on which the rule is within τ × the best.
    public func profile(_ rule: String, at τ: Double) -> Double {
        guard !workloads.isEmpty else { return 0 }
        return Double(workloads.filter { ratio(rule, $0) <= τ }.count) / Double(workloads.count)
    }

    /// ∫₁^rMax ρ(τ) dτ / (rMax − 1), exactly: ρ is a step function that rises at each finite ratio.
    public func score(_ rule: String) -> Double {
        guard !workloads.isEmpty, rMax > 1 else { return 0 }
        let area = workloads.map { w -> Double in
            let r = ratio(rule, w)
            return r <= rMax ? rMax - max(r, 1) : 0
        }.reduce(0, +)
        return area / (rMax - 1) / Double(workloads.count)
    }

    /// The rules from the best score down (ties by name).
    public var ranking: [(rule: String, score: Double)] {
        rules.map { ($0, score($0)) }.sorted { $0.score > $1.score || ($0.score == $1.score && $0.rule < $1.rule) }
    }

    /// `benchmark.csv`: per rule its score, then its time and ratio on every workload (empty: not reached).
    public var csv: String {
        var lines = ["rule,score," + workloads.map { "\($0.name)_seconds,\($0.name)_ratio" }.joined(separator: ",")]
        for (rule, score) in ranking {
            let cells = workloads.map { w -> String in
                guard let t = w.times[rule] ?? nil else { return "," }
                return String(format: "%.6g,%.6g", t, ratio(rule, w))
            }
            lines.append("\(rule),\(String(format: "%.6f", score))," + cells.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The performance profiles as step lines from τ = 1 to rMax, and the scores as a second chart.
    public var chart: String {
        var profiles = Chart(title: "performance profiles: fraction of workloads within τ × the best time",
                             subtitle: "\(workloads.count) workloads: " + workloads.map(\.name).joined(separator: ", "),
                             x: Axis("τ (time / best time)", domain: 1...rMax), y: Axis("ρ(τ)", domain: 0...1))
        for (k, (rule, score)) in ranking.enumerated() {
            var points = [SIMD2(1.0, profile(rule, at: 1))]
            for r in workloads.map({ ratio(rule, $0) }).filter({ $0 > 1 && $0 <= rMax }).sorted() {
                points.append(SIMD2(r, points.last!.y))
                points.append(SIMD2(r, profile(rule, at: r)))
            }
            points.append(SIMD2(rMax, profile(rule, at: rMax)))
            profiles.series.append(Series(label: "\(rule) \(String(format: "%.3f", score))", points: points, style: Palette.style(k)))
        }
        return profiles.svg(id: "profiles")
    }

    /// One sentence per finding: the winner, the rules that reached no target, and where the seed articles' SGD
    /// and Adam stand.
    public var findings: [String] {
        let ranked = ranking
        guard let top = ranked.first else { return ["No workload has a result."] }
        var lines = ["\(top.rule) ranks first with a score of \(String(format: "%.3f", top.score)) over \(workloads.count) workloads."]
        let none = rules.filter { r in workloads.allSatisfy { ratio(r, $0) == .infinity } }
        if !none.isEmpty { lines.append("No target reached by: \(none.joined(separator: ", ")).") }
        for seed in ["sgd", "momentum", "adam"] where rules.contains(seed) {
            let place = ranked.firstIndex { $0.rule == seed }! + 1
            lines.append("\(seed) ranks \(place) of \(ranked.count) with \(String(format: "%.3f", score(seed))) (\(top.rule): \(String(format: "%.3f", top.score))).")
        }
        return lines
    }
}
