// A quiet trainer for the unit tests: a config's inputs loaded on a communicator, its run folder written or not.
import Collectives
import Config
import Training

extension Trainer {
    /// The trainer of `config` on `communicator`, with no console, writing its run folder unless `writeOutput` is false.
    static func quiet(_ config: RunConfig, on communicator: Communicator, writeOutput: Bool = true) throws -> Trainer {
        try Trainer(RunInputs.load(config, on: communicator), output: writeOutput ? .folder() : .none,
                    options: TrainerOptions(console: Console(enabled: false, interactive: false)))
    }
}
