// `descent eval --run DIR`: a trained model (DIR/model.safetensors) on a data set: loss, accuracy, confusion matrix.
import ArgumentParser
import Collectives
import Config
import Datasets
import Foundation
import MPICollectives
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a run's saved model on a data set; writes eval.csv, confusion.csv and confusion.svg.",
        discussion: "The model and data come from the run's config.yaml, or from --config (another data set with the same "
            + "input width and classes); --set overrides either. Results go to DIR/eval/ unless --out says otherwise."
    )

    @Option(name: .customLong("run"), help: ArgumentHelp("The run folder, holding model.safetensors and config.yaml.", valueName: "dir"))
    var folder: String

    @Option(name: .shortAndLong, help: "A config whose data and model to use instead of the run's config.yaml.")
    var config: String?

    @OptionGroup var set: OverrideOptions

    @Option(help: "The split to evaluate: test or train.")
    var split = "test"

    @Option(help: ArgumentHelp("Where to write the results (default: <run>/eval).", valueName: "dir"))
    var out: String?

    func validate() throws {
        guard ["test", "train"].contains(split) else { throw ValidationError("--split: expected test or train, found '\(split)'") }
    }

    func run() throws {
        let file = config ?? folder + "/config.yaml"
        let load = { try RunConfig.load(yaml: readConfigFile(file), fileName: file, overrides: set.overrides) }
        try distributed(config: load) { communicator, _, c in
            let inputs = try RunInputs.load(c, on: communicator)
            let parameters = try communicator.collectively {
                try Trainer.startingParameters(folder + "/model.safetensors", model: inputs.model)
            }
            let dataset = split == "test" ? inputs.testSet : inputs.trainSet
            guard dataset.count > 0 else {
                throw AgreedFailure(description: "descent eval: the \(split) split of \(file) holds no samples")
            }
            let names = c.data.source == .fashionMNIST ? FashionMNIST.classNames : nil
            let result = try Evaluation.run(inputs.evaluator(), parameters: parameters, on: dataset, split: split, classNames: names)
            // One folder per split, so that evaluating another split keeps the first one's files.
            let directory = out ?? folder + "/eval/" + split
            try communicator.collectively { if communicator.rank == 0 { try Evaluation.write(result, to: directory) } }
            if communicator.rank == 0 {
                print("\(split): \(result.samples) samples, loss \(result.loss), accuracy \(result.accuracy); "
                      + "results in \(directory)/ (eval.csv, confusion.csv, confusion.svg)")
            }
        }
    }
}
