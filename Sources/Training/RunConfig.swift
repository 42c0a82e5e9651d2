// The typed, validated configuration of a training run, its defaults, and its resolved YAML form.
import Datasets
import Optimizers

/// Everything a training run is told. Built only through `load`, which validates every key.
public struct RunConfig: Equatable, Sendable {
    public enum DataSource: String, Sendable { case fashionMNIST = "fashion-mnist", synthetic }

    public struct Data: Equatable, Sendable {
        public var source: DataSource = .fashionMNIST
        /// Folder with the four IDX files (fashion-mnist).
        public var path: String = FashionMNIST.defaultDirectory
        /// Synthetic problem: training and test samples, features, classes, noise σ.
        public var trainSamples = 4096
        public var testSamples = 1024
        public var features = 32
        public var classes = 4
        public var noise = 1.0
    }

    public struct Model: Equatable, Sendable {
        public var hidden: [Int] = [100, 100, 100, 100]
    }

    public struct Optimizer: Equatable, Sendable {
        public var name = "momentum"
        public var learningRate = 0.01
        public var momentum = 0.9
        public var dampening = 0.0
        public var nesterov = false
        public var weightDecay = 0.0
    }

    public enum Batch: Equatable, Sendable, CustomStringConvertible {
        case samples(Int)
        case full
        public var description: String {
            switch self {
            case .samples(let n): return String(n)
            case .full: return "full"
            }
        }
    }

    public struct Training: Equatable, Sendable {
        public var batch: Batch = .samples(128)
        public var epochs = 5
        /// When set, the run stops after this many optimizer steps instead.
        public var steps: Int? = nil
        public var shuffle = true
        /// Samples per forward/backward chunk on one rank: bounds memory for large local batches.
        public var chunk = 1024
        /// Steps between metric rows.
        public var logEvery = 50
        /// Steps between cross-rank parameter-hash checks.
        public var hashCheckEvery = 100
        /// Evaluate the whole training set at each epoch end (exact train loss and accuracy).
        public var evaluateTrainingSet = true
    }

    public var name = "fashion-momentum"
    public var seed: UInt64 = 1
    public var data = Data()
    public var model = Model()
    public var optimizer = Optimizer()
    public var training = Training()
    /// OpenBLAS threads per rank; nil chooses from the cores and the ranks on this node.
    public var blasThreads: Int? = nil
    /// Folder that receives `<name>/`.
    public var outputDirectory = "runs"

    public init() {}

    /// The optimizer names this build knows.
    public static let optimizerNames = ["sgd", "momentum"]

    /// Reads `text` (the content of `fileName`), applies `overrides` ("key=value"), validates every key.
    public static func load(yaml text: String, fileName: String, overrides: [String] = []) throws -> RunConfig {
        var r = try ConfigReader(yaml: text, fileName: fileName)
        for o in overrides { try r.override(o) }
        var c = RunConfig()
        let positive = "a number > 0"
        c.name = try r.string("name", default: c.name)
        if c.name.contains("/") || c.name.hasPrefix(".") {
            throw ConfigError(source: fileName, key: "name", expected: "a plain folder name (no '/', not starting with '.')",
                              found: "'\(c.name)'")
        }
        c.seed = UInt64(try r.integer("seed", default: Int(c.seed), range: 0...Int.max))

        c.data.source = DataSource(rawValue: try r.string(
            "data.source", default: c.data.source.rawValue, allowed: ["fashion-mnist", "synthetic"]))!
        c.data.path = try r.string("data.path", default: c.data.path)
        c.data.trainSamples = try r.integer("data.train_samples", default: c.data.trainSamples, range: 1...100_000_000)
        c.data.testSamples = try r.integer("data.test_samples", default: c.data.testSamples, range: 1...100_000_000)
        c.data.features = try r.integer("data.features", default: c.data.features, range: 1...1_000_000)
        c.data.classes = try r.integer("data.classes", default: c.data.classes, range: 2...100_000)
        c.data.noise = try r.number("data.noise", default: c.data.noise, expected: "a number ≥ 0") { $0 >= 0 }

        c.model.hidden = try r.integerList("model.hidden", default: c.model.hidden, element: 1...1_000_000)

        let name = try r.string("optimizer.name", default: c.optimizer.name, allowed: optimizerNames)
        c.optimizer.name = name
        c.optimizer.learningRate = try r.number("optimizer.lr", default: c.optimizer.learningRate, expected: positive) { $0 > 0 }
        c.optimizer.momentum = try r.number("optimizer.momentum", default: name == "momentum" ? 0.9 : 0,
                                            expected: "a number in [0, 1)") { $0 >= 0 && $0 < 1 }
        c.optimizer.dampening = try r.number("optimizer.dampening", default: 0, expected: "a number in [0, 1]") { $0 >= 0 && $0 <= 1 }
        c.optimizer.nesterov = try r.boolean("optimizer.nesterov", default: false)
        c.optimizer.weightDecay = try r.number("optimizer.weight_decay", default: 0, expected: "a number ≥ 0") { $0 >= 0 }
        if c.optimizer.nesterov && (c.optimizer.momentum == 0 || c.optimizer.dampening != 0) {
            throw ConfigError(source: fileName, key: "optimizer.nesterov",
                              expected: "momentum > 0 and dampening 0 with Nesterov momentum",
                              found: "momentum \(c.optimizer.momentum), dampening \(c.optimizer.dampening)")
        }

        let batch = try r.integerOrWord("training.batch", default: "128", words: ["full"], range: 1...Int(Int32.max))
        c.training.batch = batch == "full" ? .full : .samples(Int(batch)!)
        c.training.epochs = try r.integer("training.epochs", default: c.training.epochs, range: 1...1_000_000)
        let steps = try r.integer("training.steps", default: 0, range: 0...Int(Int32.max))
        c.training.steps = steps > 0 ? steps : nil
        c.training.shuffle = try r.boolean("training.shuffle", default: c.training.shuffle)
        c.training.chunk = try r.integer("training.chunk", default: c.training.chunk, range: 1...1_000_000)
        c.training.logEvery = try r.integer("training.log_every", default: c.training.logEvery, range: 1...Int.max)
        c.training.hashCheckEvery = try r.integer("training.hash_check_every", default: c.training.hashCheckEvery, range: 1...Int.max)
        c.training.evaluateTrainingSet = try r.boolean("training.eval_train", default: c.training.evaluateTrainingSet)

        let threads = try r.integerOrWord("runtime.blas_threads", default: "auto", words: ["auto"], range: 1...1024)
        c.blasThreads = threads == "auto" ? nil : Int(threads)
        c.outputDirectory = try r.string("output.dir", default: c.outputDirectory)

        try r.rejectUnknownKeys()
        return c
    }

    /// The configuration with every default filled in, as YAML that `load` reads back to the same value.
    public var resolvedYAML: String {
        """
        name: \(name)
        seed: \(seed)
        data:
          source: \(data.source.rawValue)
          path: \(quoted(data.path))
          train_samples: \(data.trainSamples)
          test_samples: \(data.testSamples)
          features: \(data.features)
          classes: \(data.classes)
          noise: \(data.noise)
        model:
          hidden: [\(model.hidden.map(String.init).joined(separator: ", "))]
        optimizer:
          name: \(optimizer.name)
          lr: \(optimizer.learningRate)
          momentum: \(optimizer.momentum)
          dampening: \(optimizer.dampening)
          nesterov: \(optimizer.nesterov)
          weight_decay: \(optimizer.weightDecay)
        training:
          batch: \(training.batch)
          epochs: \(training.epochs)
          steps: \(training.steps ?? 0)
          shuffle: \(training.shuffle)
          chunk: \(training.chunk)
          log_every: \(training.logEvery)
          hash_check_every: \(training.hashCheckEvery)
          eval_train: \(training.evaluateTrainingSet)
        runtime:
          blas_threads: \(blasThreads.map(String.init) ?? "auto")
        output:
          dir: \(quoted(outputDirectory))

        """
    }

    private func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
