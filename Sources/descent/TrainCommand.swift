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

    @Option(name: .shortAndLong, help: "The YAML config file (see configs/).")
    var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, e.g. --set optimizer.lr=0.05.", valueName: "key=value"))
    var overrides: [String] = []

    @Flag(help: "Replace an existing run folder of the same name.")
    var overwrite = false

    @Flag(help: "Continue from the newest committed checkpoint of the run folder (start at step 0 when there is none). Same as --set checkpoint.resume=auto.")
    var resume = false

    @Option(help: ArgumentHelp("Continue from this checkpoint file (e.g. an older one after a corrupt newest one).", valueName: "file"))
    var resumeFrom: String?

    @Option(help: "Progress display: auto, line (one updating terminal line), plain (a line every 10 s), off.")
    var progress: Console.Style = .auto

    func run() throws {
        // From the first moment: a batch system's warning signal during start-up is kept for step 1, not fatal.
        StopSignals.install()
        let communicator = try watchedWorld()
        let status = train(on: communicator)
        MPICommunicator.finalize()
        if status != 0 { throw ExitCode(status) }
    }

    /// Runs training and turns failures into one message and an exit status on every rank.
    func train(on communicator: Communicator) -> Int32 {
        onEveryRank(communicator) {
            let environment = ProcessInfo.processInfo.environment
            try LaunchCheck.verify(on: communicator, environment: environment)
            if communicator.rank == 0, let note = LaunchCheck.note(worldSize: communicator.size, environment: environment) {
                FileHandle.standardError.write(Data("descent: note: \(note)\n".utf8))
            }
            let faults = try communicator.collectively { try FaultPlan.fromEnvironment() }
            try Agreement.check("the build", Agreement.buildIdentity, on: communicator)
            let runConfig = try communicator.collectively { try loadConfig() }
            let console = Console(enabled: communicator.rank == 0, style: progress)
            let trainer = try Trainer(config: runConfig, communicator: communicator, overwrite: overwrite, console: console,
                                      resumeFrom: resumeFrom, hooks: faults)
            try trainer.run()
        }
    }

    func loadConfig() throws -> RunConfig {
        try RunConfig.load(yaml: readConfigFile(config), fileName: config,
                           overrides: overrides + (resume ? ["checkpoint.resume=auto"] : []))
    }
}
