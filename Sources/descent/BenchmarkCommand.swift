// `descent benchmark STUDY…`: AlgoPerf's score over studies, one study per workload: each rule's fastest trial to the
// workload's target, the performance profiles, and their integral up to r_max. One process, no MPI.
import ArgumentParser
import Experiments
import Foundation
import Training

struct BenchmarkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark",
        abstract: "Score the rules of several studies (one per workload) AlgoPerf's way: profiles and their integral up to r_max.",
        discussion: """
            Each STUDY is a study folder (with study.csv), one workload each, every rule a variant of it. A rule's time on \
            a workload is its fastest trial that reached the study's target (AlgoPerf's external tuning keeps the fastest \
            of its trials); r = time / the best rule's time, ∞ when not reached. ρ(τ) is the fraction of workloads with \
            r ≤ τ, and the score the integral of ρ from 1 to r_max over r_max − 1. Writes benchmark.csv and profiles.svg \
            into --output and prints the ranking. configs/benchmark/ holds the workloads; launch/benchmark runs them all.
            """
    )

    @Argument(help: "Study folders, one per workload.") var studies: [String]
    @Option(help: "The largest ratio to the best time that counts (AlgoPerf: 4).") var rMax = 4.0
    @Option(help: "What a trial's time is: seconds (AlgoPerf's, wall time) or steps (the same on any machine).") var measure = "seconds"
    @Option(help: "The folder to write benchmark.csv and profiles.svg into (created if needed).") var output = "runs/benchmark"

    func validate() throws {
        guard rMax > 1 else { throw ValidationError("--r-max: expected a number > 1, found \(rMax)") }
        guard ["seconds", "steps"].contains(measure) else { throw ValidationError("--measure: expected seconds or steps, found '\(measure)'") }
        guard !studies.isEmpty else { throw ValidationError("expected at least one study folder") }
    }

    func run() throws {
        try singleProcess {
            var workloads: [Benchmark.Workload] = []
            for folder in studies {
                let file = (folder as NSString).appendingPathComponent("study.csv")
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ValidationError("\(file): expected a study's results (study.csv), found no readable file")
                }
                let records = TrialRecord.parse(text).values
                guard !records.isEmpty else { throw ValidationError("\(file): expected trials with the study.csv header, found none") }
                workloads.append(Benchmark.workload(name: (folder as NSString).lastPathComponent, records, steps: measure == "steps"))
            }
            let b = Benchmark(workloads: workloads, rMax: rMax)
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            try writeAtomically(b.csv, to: (output as NSString).appendingPathComponent("benchmark.csv"))
            try writeAtomically(b.chart, to: (output as NSString).appendingPathComponent("profiles.svg"))
            print("benchmark over \(workloads.count) workloads (\(measure) to target, r_max \(rMax)): score per rule")
            for (k, r) in b.ranking.enumerated() {
                let ratios = workloads.map { w in b.ratio(r.rule, w).isFinite ? String(format: "%.2f", b.ratio(r.rule, w)) : "∞" }
                print(String(format: "%3d  %-20@ %.3f   ", k + 1, r.rule as NSString, r.score) + "r: " + ratios.joined(separator: " "))
            }
            for line in b.findings { print(line) }
            print("wrote \(output)/benchmark.csv and \(output)/profiles.svg")
        }
    }
}
