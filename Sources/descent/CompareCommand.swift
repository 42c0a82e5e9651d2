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

    @Option(name: .shortAndLong, help: "The YAML config file with a compare: block.")
    var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, e.g. --set compare.target_loss=0.5.", valueName: "key=value"))
    var overrides: [String] = []

    @Flag(help: "Replace an existing comparison folder of the same name.")
    var overwrite = false

    @Option(help: "Progress display: auto, line, plain, off.")
    var progress: Console.Style = .auto

    func run() throws {
        let communicator = try watchedWorld()
        let status = onEveryRank(communicator) {
            try LaunchCheck.verify(on: communicator, environment: ProcessInfo.processInfo.environment)
            let c = try communicator.collectively {
                try CompareConfig.load(yaml: readConfigFile(config), fileName: config, overrides: overrides)
            }
            let console = Console(enabled: communicator.rank == 0, style: progress)
            try Comparison(config: c, communicator: communicator, overwrite: overwrite, console: console).run()
        }
        MPICommunicator.finalize()
        if status != 0 { throw ExitCode(status) }
    }
}
