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
        /// One training config repeated over its seeds (`descent train` with `seeds`).
        case seeds
    }

    public var base: RunConfig
    public var mode: Mode = .batches
    public var variants: [Variant] = []
    /// The training loss whose first crossing is reported (time, steps, epochs to reach it); nil: not reported.
    public var targetLoss: Double?
    /// The block as given: what the variants are made of, and what the resolved YAML writes.
    var inits: [String]?
    var batches: [String]?
    var rates: [Double] = []
    var epochs: [Int] = []
    var optimizers: [RunConfig.ListedOptimizer]?

    public static func load(yaml text: String, fileName: String, overrides: [String] = []) throws -> CompareConfig {
        var r = try ConfigReader(yaml: text, fileName: fileName, overrides: overrides, for: .compare)
        var c = CompareConfig(base: try RunConfig.read(&r))
        try keys.read(into: &c, from: &r)
        let given = [c.batches.map { _ in "compare.batches" }, c.optimizers.map { _ in "compare.optimizers" }, c.inits.map { _ in "compare.inits" }]
            .compactMap { $0 }
        guard given.count == 1 else {
            throw ConfigError(source: fileName, key: "compare", expected: "exactly one of compare.batches, compare.optimizers or compare.inits",
                              found: given.isEmpty ? "none" : given.joined(separator: " and "))
        }
        if let inits = c.inits { try c.makeInits(inits, &r) }
        if let batches = c.batches { try c.makeBatches(batches, &r) }
        if let optimizers = c.optimizers { c.makeOptimizers(optimizers) }
        try r.rejectUnknownKeys()
        return c
    }

    typealias Key = ConfigKey<CompareConfig>

    /// The keys of the compare block, once, in the resolved YAML's order: one of inits, batches (with their rates
    /// and epochs) or optimizers, then the target.
    static let keys: [Key] = [
        Key("compare.inits", read: { c, r in
            c.inits = try r.wordList("compare.inits", expected: "a list of initialisations ("
                                     + Initialisation.allCases.map(\.rawValue).joined(separator: ", ") + "), like [he, zeros]")
        }, value: { "[\($0.inits!.joined(separator: ", "))]" }, when: { $0.inits != nil }),
        Key("compare.batches", read: { c, r in c.batches = try r.wordList("compare.batches", expected: RunConfig.Batch.listExpected) },
            value: { "[\($0.batches!.joined(separator: ", "))]" }, when: { $0.batches != nil }),
        Key("compare.lr", read: { c, r in
            let n = c.batches?.count ?? 0
            c.rates = try r.numberList("compare.lr", count: n, default: [], expected:
                "one learning rate per batch size (\(n) numbers > 0), or no compare.lr") { $0 > 0 }
        }, value: { "[\($0.rates.map { "\($0)" }.joined(separator: ", "))]" }, when: { !$0.rates.isEmpty }),
        Key("compare.epochs", read: { c, r in
            c.epochs = try r.integerList("compare.epochs", default: [], element: 1...1_000_000)
            let n = c.batches?.count ?? 0
            if !c.epochs.isEmpty && c.epochs.count != n {
                throw ConfigError(source: r.source(of: "compare.epochs") ?? r.fileName, key: "compare.epochs",
                                  expected: "one epoch count per batch size (\(n) integers), or no compare.epochs",
                                  found: "\(c.epochs.count) values")
            }
        }, value: { "[\($0.epochs.map(String.init).joined(separator: ", "))]" }, when: { !$0.epochs.isEmpty }),
        Key("compare.optimizers", read: { c, r in
            c.optimizers = try RunConfig.readOptimizerList(&r, key: "compare.optimizers").map { list in
                list.map { RunConfig.ListedOptimizer(label: $0.label, settings: $0.settings) }
            }
        }, lines: { RunConfig.optimizerListYAML($0.optimizers ?? []) }, when: { $0.optimizers != nil }),
        Key("compare.target_loss", read: { c, r in
            let target = try r.number("compare.target_loss", default: 0, expected: "a loss > 0 (0: not reported)") { $0 >= 0 }
            c.targetLoss = target > 0 ? target : nil
        }, value: { "\($0.targetLoss ?? 0)" }, when: { $0.targetLoss != nil }),
    ]

    /// One variant per initialisation.
    private mutating func makeInits(_ inits: [String], _ r: inout ConfigReader) throws {
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
    }

    /// One variant per batch size, with its optional rate and epochs.
    private mutating func makeBatches(_ words: [String], _ r: inout ConfigReader) throws {
        for (k, word) in words.enumerated() {
            var v = base
            guard let batch = RunConfig.Batch(word) else {
                throw ConfigError(source: r.source(of: "compare.batches") ?? r.fileName, key: "compare.batches",
                                  expected: RunConfig.Batch.listExpected, found: "'\(word)'")
            }
            v.training.batch = batch
            if !rates.isEmpty { v.optimizer.learningRate = rates[k] }
            if !epochs.isEmpty { v.training.epochs = epochs[k] }
            let label = "batch \(word)" + (rates.isEmpty ? "" : " lr \(shortNumber(rates[k]))")
                + (epochs.isEmpty ? "" : " \(epochs[k]) epoch" + (epochs[k] == 1 ? "" : "s"))
            v.name = RunConfig.folderName(label)
            variants.append(Variant(label: label, config: v))
        }
        for k in variants.indices where variants[..<k].contains(where: { $0.label == variants[k].label }) {
            throw ConfigError(source: r.source(of: "compare.batches") ?? r.fileName, key: "compare.batches",
                              expected: "variants that differ in batch, lr or epochs",
                              found: "'\(variants[k].label)' twice")
        }
    }

    /// One replica per optimizer, trained on one data stream.
    private mutating func makeOptimizers(_ list: [RunConfig.ListedOptimizer]) {
        mode = .optimizers
        variants = list.map { entry in
            var v = base
            v.optimizer = entry.settings
            v.name = RunConfig.folderName(entry.label)
            return Variant(label: entry.label, config: v)
        }
    }

    /// A training config with `seeds` as a comparison of its seeds: one variant, run once per seed.
    public static func seeds(of config: RunConfig) -> CompareConfig {
        var c = CompareConfig(base: config)
        c.mode = .seeds
        c.variants = [Variant(label: config.name, config: config)]
        return c
    }

    /// The base config's YAML with the compare block appended; it loads back as the same comparison.
    public var resolvedYAML: String { base.resolvedYAML + Self.keys.resolvedYAML(self) }
}
