// `descent compare --config FILE`: the variants of a comparison in one launch.
import ArgumentParser
import Collectives
import Config
import Experiments
import Foundation
import MPICollectives
import Optimizers
import Training

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the variants of a comparison in one launch (global batch sizes, or optimizers on one data stream).",
        discussion: "The config is a training config with a compare: block (see configs/sgd-vs-gd.yaml and "
            + "configs/dlfs-optimizers.yaml). Results go to <output.dir>/<name>/: report.html, comparison.csv, charts, "
            + "and one run folder per variant."
    )

    @OptionGroup var file: ConfigFileOption
    @OptionGroup var set: OverrideOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let load = { try CompareConfig.load(yaml: readConfigFile(file.config), fileName: file.config, overrides: set.overrides) }
        try distributed(stopSignals: true, config: load) { communicator, _, c in
            let console = Console(enabled: communicator.rank == 0, style: output.progress)
            try Comparison(config: c, communicator: communicator, overwrite: output.overwrite, console: console).run()
        }
    }
}
