// `descent hessian --run DIR`: the spectrum of a saved model's Hessian (top eigenvalues, trace, spectral density,
// top eigenvector), data-parallel under mpirun with the same bits at any number of ranks.
import ArgumentParser
import Config
import Foundation
import Numerics
import Training

struct HessianCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessian",
        abstract: "The Hessian of a run's saved model: top eigenvalues, trace, spectral density and top eigenvector.",
        discussion: "Over curvature.subset training samples of the run's config (drawn from its seed; --set curvature.subset=N "
            + "changes it), from exact Hessian-vector products. Writes hessian.json, density.svg and "
            + "top_eigenvector.safetensors to DIR/hessian/ unless --out says otherwise. See docs/curvature.md."
    )

    @Option(name: .customLong("run"), help: ArgumentHelp("The run folder, holding model.safetensors and config.yaml.", valueName: "dir"))
    var folder: String

    @OptionGroup var set: OverrideOptions

    @Option(help: "How many of the largest eigenvalues to print.")
    var top = 5

    @Option(help: "Lanczos iterations for the top eigenvalues (one Hessian-vector product each).")
    var iterations = 60

    @Option(help: "Hutchinson probes for the trace (after deflating the converged top eigenvalues); 0 leaves the trace out.")
    var probes = 100

    @Option(name: .customLong("density-probes"), help: "Lanczos runs of stochastic Lanczos quadrature for the density; 0 leaves it out.")
    var densityProbes = 5

    @Option(help: "The seed of the Lanczos start and the probes (the samples follow the run's seed).")
    var seed: UInt64 = 1

    @Flag(name: .customLong("gauss-newton"), help: "The Gauss–Newton matrix Jᵀ·H_L·J instead of the Hessian.")
    var gaussNewton = false

    @Option(help: ArgumentHelp("Where to write the results (default: <run>/hessian).", valueName: "dir"))
    var out: String?

    func validate() throws {
        guard top >= 1, iterations >= top, probes >= 0, densityProbes >= 0 else {
            throw ValidationError("expected --top ≥ 1, --iterations ≥ --top, --probes ≥ 0 and --density-probes ≥ 0, found "
                                  + "\(top), \(iterations), \(probes) and \(densityProbes)")
        }
    }

    func run() throws {
        let file = folder + "/config.yaml"
        let load = { () throws -> RunConfig in
            var c = try RunConfig.load(yaml: readConfigFile(file), fileName: file, overrides: set.overrides)
            c.model.initFrom = folder + "/model.safetensors"
            return c
        }
        try distributed(config: load) { communicator, _, c in
            let inputs = try RunInputs.load(c, on: communicator)
            let trainer = try Trainer(inputs, output: .none, options: TrainerOptions(console: Console(enabled: false, interactive: false)))
            var o = SpectrumOptions()
            (o.top, o.iterations, o.traceProbes, o.densityProbes, o.seed, o.gaussNewton) = (top, iterations, probes, densityProbes, seed, gaussNewton)
            o.densityIterations = iterations
            let s = try trainer.hessianSpectrum(o)
            let directory = out ?? folder + "/hessian"
            try communicator.collectively {
                if communicator.rank == 0 { try s.write(to: directory, model: inputs.model, title: c.name) }
            }
            guard communicator.rank == 0 else { return }
            let matrix = gaussNewton ? "Gauss–Newton matrix" : "Hessian"
            print("\(matrix) of \(c.name) over \(s.samples) training samples (\(s.products) products, \(fixed(s.seconds, 1)) s):")
            for (k, (value, residual)) in zip(s.top, s.residuals).enumerated() {
                print("  λ\(k + 1) = \(significant(value, 6))  (residual \(significant(residual, 2)))")
            }
            print("  λ_min ≈ \(significant(s.lambdaMin, 4)) (the smallest Ritz value)")
            if probes > 0 {
                print("  trace = \(significant(s.trace, 6)) ± \(significant(s.traceError, 2)) (\(s.deflated) eigenvalues deflated, \(probes) probes)")
            }
            print("results in \(directory)/ (hessian.json, " + (densityProbes > 0 ? "density.svg, " : "") + "top_eigenvector.safetensors)")
        }
    }
}
