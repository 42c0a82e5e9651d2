// `descent time-optimizers`: one update of every optimizer on flat buffers, timed.
import ArgumentParser
import Collectives
import Config
import Experiments
import Foundation
import MPICollectives
import Optimizers
import Training

struct TimeOptimizers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "time-optimizers",
        abstract: "Time one update of every optimizer on flat buffers (no data, no MPI); prints medians."
    )

    @Option(help: "Parameters per update (default: the default MLP, 784-100-100-100-100-10).") var parameters = 109_386
    @Option(help: "Updates per timed round.") var updates = 50
    @Option(help: "Timed rounds; the median is reported.") var repeats = 7

    func validate() throws {
        guard parameters > 0, updates > 0, repeats > 0 else {
            throw ValidationError("--parameters, --updates and --repeats must be positive")
        }
    }

    func run() throws {
        print("optimizer                 µs/update  ns/parameter  (min..max µs)")
        // The Newton family's cost is its Hessian-vector products, which need a model: `descent hessian` and the
        // curvature docs measure those.
        var cases: [(String, OptimizerSettings)] = OptimizerKind.allCases.filter { !$0.needsProducts }.map { ($0.rawValue, OptimizerSettings($0)) }
        // A flat buffer is one vector to Shampoo, cut into blocks of max_preconditioner_dim: at 1,024, 107 factors of
        // 1,024² whose eigendecompositions (at updates 100, 200 and 300) would take many minutes. Blocks of 128 keep
        // its row under a minute (133 ms an update on a Zen 4), and the row says so.
        if let k = cases.firstIndex(where: { $0.1.kind == .shampoo }) {
            cases[k].0 = "shampoo (blocks of 128)"
            cases[k].1.maxPreconditionerDim = 128
        }
        var amsgrad = OptimizerSettings(.adam)
        amsgrad.amsgrad = true
        cases.insert(("adam amsgrad", amsgrad), at: cases.firstIndex { $0.0 == "adamw" }!)
        for (label, settings) in cases {
            let rounds = OptimizerTiming.measure(settings, parameterCount: parameters, updates: updates, repeats: repeats)
                .sorted()
            let median = rounds[rounds.count / 2]
            print(label.padding(toLength: 24, withPad: " ", startingAt: 0)
                  + String(format: "%10.1f  %12.2f  (%.1f..%.1f)", median * 1e6, median * 1e9 / Double(parameters),
                           rounds.first! * 1e6, rounds.last! * 1e6))
        }
    }
}
