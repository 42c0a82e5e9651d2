// `descent compare`: one training config plus a `compare:` block that lists the variants to train in one launch —
// global batch sizes (SGD against full-batch GD), or optimizers trained as replicas on one data stream.
import Models
import Numerics
import Optimizers

public struct CompareConfig: Equatable, Sendable {
    /// One variant: its label and the training config it runs.
    public struct Variant: Equatable, Sendable {
        public var label: String
        public var config: RunConfig
    }

    public enum Mode: String, Sendable {
        /// One training run per global batch size, one after another.
        case batches
        /// One model replica per optimizer, all fed the same mini-batches, one allreduce per step for all.
        case optimizers
        /// One training run per weight initialisation, one after another.
        case inits
    }

    public var base: RunConfig
    public var mode: Mode
    public var variants: [Variant]
    /// The training loss whose first crossing is reported (time, steps, epochs to reach it); nil: not reported.
    public var targetLoss: Double?
    /// The YAML of the compare block as read (for the resolved config).
    public var blockYAML: [String]


    public static func load(yaml text: String, fileName: String, overrides: [String] = []) throws -> CompareConfig {
        var r = try ConfigReader(yaml: text, fileName: fileName)
        for o in overrides { try r.override(o) }
        let base = try RunConfig.read(&r)
        let target = try r.number("compare.target_loss", default: 0, expected: "a loss > 0 (0: not reported)") { $0 >= 0 }
        let batchWords = try r.wordList("compare.batches", expected: RunConfig.Batch.listExpected)
        let optimizers = try RunConfig.readOptimizerList(&r, key: "compare.optimizers")
        let inits = try r.wordList("compare.inits", expected: "a list of initialisations ("
                                   + Initialisation.allCases.map(\.rawValue).joined(separator: ", ") + "), like [he, zeros]")
        var c = CompareConfig(base: base, mode: .batches, variants: [], targetLoss: target > 0 ? target : nil, blockYAML: [])
        let given = [batchWords.map { _ in "compare.batches" }, optimizers.map { _ in "compare.optimizers" }, inits.map { _ in "compare.inits" }]
            .compactMap { $0 }
        guard given.count == 1 else {
            throw ConfigError(source: fileName, key: "compare", expected: "exactly one of compare.batches, compare.optimizers or compare.inits",
                              found: given.isEmpty ? "none" : given.joined(separator: " and "))
        }
        if let inits { try c.readInits(inits, &r) }
        if let batchWords { try c.readBatches(batchWords, &r) }
        if let optimizers {
            c.mode = .optimizers
            c.variants = optimizers.map { entry in
                var v = base
                v.optimizer = entry.settings
                v.name = RunConfig.folderName(entry.label)
                return Variant(label: entry.label, config: v)
            }
            c.blockYAML = ["optimizers:"] + RunConfig.optimizerListYAML(c.variants.map { .init(label: $0.label, settings: $0.config.optimizer) })
                .map { "  " + $0 }
        }
        if let t = c.targetLoss { c.blockYAML.append("target_loss: \(t)") }
        try r.rejectUnknownKeys()
        return c
    }

    /// One variant per initialisation.
    private mutating func readInits(_ inits: [String], _ r: inout ConfigReader) throws {
        mode = .inits
        for word in inits {
            guard let initialisation = Initialisation(rawValue: word), !variants.contains(where: { $0.label == "init \(word)" }) else {
                throw ConfigError(source: r.source(of: "compare.inits") ?? r.fileName, key: "compare.inits",
                                  expected: "distinct initialisations (" + Initialisation.allCases.map(\.rawValue).joined(separator: ", ") + ")",
                                  found: "'\(word)'" + (Initialisation(rawValue: word) == nil ? "" : " twice"))
            }
            var v = base
            v.model.initialisation = initialisation
            v.name = RunConfig.folderName("init \(word)")
            variants.append(Variant(label: "init \(word)", config: v))
        }
        blockYAML = ["inits: [\(inits.joined(separator: ", "))]"]
    }

    /// One variant per batch size, with its optional rate and epochs.
    private mutating func readBatches(_ words: [String], _ r: inout ConfigReader) throws {
        let fileName = r.fileName
        let rates = try r.numberList("compare.lr", count: words.count, default: [], expected:
            "one learning rate per batch size (\(words.count) numbers > 0), or no compare.lr") { $0 > 0 }
        let epochs = try r.integerList("compare.epochs", default: [], element: 1...1_000_000)
        if !epochs.isEmpty && epochs.count != words.count {
            throw ConfigError(source: r.source(of: "compare.epochs") ?? fileName, key: "compare.epochs",
                              expected: "one epoch count per batch size (\(words.count) integers), or no compare.epochs",
                              found: "\(epochs.count) values")
        }
        for (k, word) in words.enumerated() {
            var v = base
            guard let batch = RunConfig.Batch(word) else {
                throw ConfigError(source: r.source(of: "compare.batches") ?? fileName, key: "compare.batches",
                                  expected: RunConfig.Batch.listExpected, found: "'\(word)'")
            }
            v.training.batch = batch
            if !rates.isEmpty { v.optimizer.learningRate = rates[k] }
            if !epochs.isEmpty { v.training.epochs = epochs[k] }
            let label = "batch \(word)" + (rates.isEmpty ? "" : " lr \(shortNumber(rates[k]))")
                + (epochs.isEmpty ? "" : " \(epochs[k]) epochs")
            v.name = RunConfig.folderName(label)
            variants.append(Variant(label: label, config: v))
        }
        for k in variants.indices where variants[..<k].contains(where: { $0.label == variants[k].label }) {
            throw ConfigError(source: r.source(of: "compare.batches") ?? fileName, key: "compare.batches",
                              expected: "variants that differ in batch, lr or epochs",
                              found: "'\(variants[k].label)' twice")
        }
        blockYAML = ["batches: [\(words.joined(separator: ", "))]"]
            + (rates.isEmpty ? [] : ["lr: [\(rates.map { "\($0)" }.joined(separator: ", "))]"])
            + (epochs.isEmpty ? [] : ["epochs: [\(epochs.map(String.init).joined(separator: ", "))]"])
    }

    /// The base config's YAML with the compare block appended; it loads back as the same comparison.
    public var resolvedYAML: String {
        base.resolvedYAML + "compare:\n" + blockYAML.map { "  " + $0 }.joined(separator: "\n") + "\n"
    }
}
