// `descent study --config FILE`: every variant tuned at every batch size, judged by the steps to a target.
import ArgumentParser
import Collectives
import Config
import Experiments
import Foundation
import MPICollectives
import Training

struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Tune every variant at every global batch size and measure the steps, epochs and seconds to a target.",
        discussion: "The config is a training config with a study: block (see configs/study-smoke.yaml, "
            + "configs/study-batch-size.yaml and configs/study-optimizers.yaml). Results go to <output.dir>/<name>/: report.html, "
            + "study.csv (one row per trial), best.csv, charts, and one run folder per trial. Run it again to continue: "
            + "trials already in study.csv are not trained again."
    )

    @OptionGroup var file: ConfigFileOption
    @OptionGroup var set: OverrideOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "At most this many trials train together as replicas on one data stream (1: each alone).")
    var together = 64

    @Option(name: .customLong("batch"), help: ArgumentHelp(
        "Train only this global batch size of the study (repeatable): a part, as one task of launch/study runs it. "
            + "Its trials go to parts/ in the study folder; --report gathers the parts.", valueName: "B"))
    var batches: [String] = []

    @Flag(name: .customLong("report"), help: "Train nothing: gather study.csv and the parts' records, and write best.csv and the report.")
    var reportOnly = false

    @Option(help: ArgumentHelp("Extend the study in its folder by N trials per variant and batch size, reusing the trials "
        + "measured (with study.search: quasirandom the first N trials of the longer sequence are the same points).", valueName: "N"))
    var addTrials = 0

    @Flag(help: "Print the study folder and its batch sizes (`folder PATH`, then `batch B` per line), and exit.")
    var plan = false


    func run() throws {
        let load = { try StudyConfig.load(yaml: readConfigFile(file.config), fileName: file.config, overrides: set.overrides) }
        if plan {
            return try singleProcess {
                let c = try load()
                print("folder \(c.base.outputDirectory)/\(c.base.name)")
                for b in c.batches { print("batch \(b)") }
            }
        }
        try distributed(stopSignals: true, config: load) { communicator, faults, loaded in
            var c = loaded
            guard addTrials >= 0, addTrials == 0 || !output.overwrite else {
                throw AgreedFailure(description: "--add-trials: expected a number ≥ 1 of trials to add to the study in its folder "
                                    + "(without --overwrite), found \(addTrials)" + (output.overwrite ? " with --overwrite" : ""))
            }
            if addTrials > 0 { c = try Study.extending(c, by: addTrials, on: communicator) }
            let console = Console(enabled: communicator.rank == 0, style: output.progress)
            let only = try batches.isEmpty ? nil : batches.map { word in
                guard let b = RunConfig.Batch(word) else {
                    throw AgreedFailure(description: "--batch: expected a global batch size (an integer ≥ 1 or full), found '\(word)'")
                }
                return b
            }
            let study = try Study(config: c, communicator: communicator, overwrite: output.overwrite, together: max(1, together),
                                  only: only, extending: addTrials > 0, console: console, hooks: faults)
            if reportOnly { try study.report() } else { try study.run() }
        }
    }
}
