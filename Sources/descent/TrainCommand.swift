// `descent train --config FILE [--set key=value ...]`, run on every rank under mpirun.
import ArgumentParser
import Collectives
import Config
import Experiments
import Foundation
import MPICollectives
import Optimizers
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model as the config file says; results go to <output.dir>/<name>/."
    )

    @OptionGroup var file: ConfigFileOption
    @OptionGroup var set: OverrideOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Continue from the newest committed checkpoint of the run folder (start at step 0 when there is none). Same as --set checkpoint.resume=auto.")
    var resume = false

    @Option(help: ArgumentHelp("Continue from this checkpoint file (e.g. an older one after a corrupt newest one).", valueName: "file"))
    var resumeFrom: String?

    func run() throws {
        try distributed(stopSignals: true, config: loadConfig) { communicator, faults, runConfig in
            let console = Console(enabled: communicator.rank == 0, style: output.progress)
            if !runConfig.seeds.isEmpty {
                // Repeats over seeds: one run folder per seed and the spread across them, as `descent compare` writes.
                try Comparison(config: .seeds(of: runConfig), communicator: communicator, overwrite: output.overwrite, console: console).run()
                return
            }
            let inputs = try RunInputs.load(runConfig, on: communicator, hooks: faults)
            let trainer = try Trainer(inputs, output: .folder(overwrite: output.overwrite, resumeFrom: resumeFrom),
                                      options: TrainerOptions(console: console))
            try trainer.run()
        }
    }

    func loadConfig() throws -> RunConfig {
        let c = try RunConfig.load(yaml: readConfigFile(file.config), fileName: file.config,
                                   overrides: set.overrides + (resume ? ["checkpoint.resume=auto"] : []))
        if !c.seeds.isEmpty && (c.checkpoint.resume || resumeFrom != nil) {
            throw ConfigError(source: file.config, key: "seeds", expected: "no --resume or --resume-from with seeds (each seed "
                              + "trains whole, without checkpoints)", found: "\(c.seeds.count) seeds")
        }
        return c
    }
}
