// `descent study`: one training config plus a `study:` block — the variants (optimizers) and global batch sizes
// to tune, the search space and budget of each, and the target whose first crossing is the objective.
import Foundation
import Numerics
import Optimizers

/// What a trial aims at: a metric, the value it must reach, and the steps at which it is evaluated.
public struct Target: Equatable, Sendable {
    public enum Metric: String, CaseIterable, Sendable {
        case trainLoss = "train_loss", testLoss = "test_loss", testAccuracy = "test_accuracy"
        case validationLoss = "val_loss", validationAccuracy = "val_accuracy"
        /// Higher is better (accuracy); otherwise lower is.
        public var rises: Bool { self == .testAccuracy || self == .validationAccuracy }
        /// Whether it is measured on the training set (an evaluation over all of it) rather than the test set.
        public var onTrainingSet: Bool { self == .trainLoss }

        /// What `data` lacks to give this metric ("data.validation"), or nil when it gives it.
        func missing(in d: RunConfig.Data) -> String? {
            if self == .validationLoss || self == .validationAccuracy { return d.validation == 0 ? "data.validation" : nil }
            return !onTrainingSet && d.source == .npy && d.testX.isEmpty ? "data.test_x and data.test_y" : nil
        }

        /// Refuses this metric for `key` (read from `source`) when `data` cannot give it.
        func check(in d: RunConfig.Data, key: String, source: String) throws {
            guard let missing = missing(in: d) else { return }
            throw ConfigError(source: source, key: key, expected: "a metric the data gives (\(rawValue) needs \(missing))", found: rawValue)
        }

        /// `value` is better than `best` by more than `margin` (any value beats none).
        public func improves(_ value: Double, on best: Double?, by margin: Double = 0) -> Bool {
            guard let best else { return value.isFinite }
            return rises ? value > best + margin : value < best - margin
        }
    }

    public var metric = Metric.testAccuracy
    public var value = 0.8
    /// Evaluations at steps 1, 2, …, each the previous one times this ratio (rounded up, at least one more):
    /// the step to the target is known within this factor at every scale.
    public var ratio = 1.1
    /// The objective is the metric's value at the end of the budget (`study.objective: final`, as DeepOBS selects):
    /// no value ends a trial early, and it is evaluated at epoch ends only.
    public var final = false

    public init(metric: Metric = .testAccuracy, value: Double = 0.8, ratio: Double = 1.1) {
        (self.metric, self.value, self.ratio) = (metric, value, ratio)
    }

    public func reached(_ v: Double) -> Bool { !final && (metric.rises ? v >= value : v <= value) }

    /// The first evaluation step after `step`.
    public func evaluation(after step: Int) -> Int {
        var s = 1
        while s <= step { s = max(s + 1, Int((Double(s) * ratio).rounded(.up))) }
        return s
    }

    public var text: String {
        final ? "the \(metric.rises ? "highest" : "lowest") final \(metric.rawValue)" : "\(metric.rawValue) \(metric.rises ? "≥" : "≤") \(shortNumber(value))"
    }
}

/// A closed interval of a searched hyperparameter.
public struct SearchRange: Equatable, Sendable {
    public var low: Double
    public var high: Double
    public init(_ low: Double, _ high: Double) { (self.low, self.high) = (low, high) }
}

public struct StudyConfig: Equatable, Sendable {
    public enum Search: String, CaseIterable, Sendable { case grid, quasirandom }

    /// One tuned variant: an optimizer (its settings other than the searched ones), and its search space.
    public struct Variant: Equatable, Sendable {
        public var label: String
        public var optimizer: OptimizerSettings
        /// The learning-rate range; nil: found by a learning-rate range test at each batch size.
        public var rates: SearchRange?
        /// The momentum (or β1) range, searched as 1 − β on a log scale; nil: the optimizer's own value.
        public var momentum: SearchRange?
    }

    /// One more searched key of the training config (`study.search_space`): its range and scale.
    public struct Dimension: Equatable, Sendable {
        public var key: String
        public var range: SearchRange
        /// Log-uniform (the default; needs low > 0) or uniform.
        public var log: Bool
        /// The key takes integers (`schedule.warmup`): values are rounded.
        public var integer: Bool

        /// The key's value at `u` ∈ [0, 1], so that it prints and reads back exactly: rounded to an integer, to 4
        /// significant digits on a log scale, or to 4 significant digits of the range's width on a linear one
        /// (β2 in [0.9, 0.9999] keeps 0.94995), and kept inside the range.
        public func value(at u: Double) -> Double {
            let v: Double
            if integer {
                v = (range.low + u * (range.high - range.low)).rounded()
            } else if log {
                v = Double(String(format: "%.4g", exp(Foundation.log(range.low) + u * (Foundation.log(range.high) - Foundation.log(range.low)))))!
            } else {
                let quantum = pow(10, (Foundation.log10(range.high - range.low)).rounded(.down) - 3)
                v = Double(String(format: "%.12g", ((range.low + u * (range.high - range.low)) / quantum).rounded() * quantum))!
            }
            return min(max(v, range.low), range.high)
        }

        /// `config` with the key set to `value`, read as an override of its resolved YAML (so every key's own
        /// checks apply); a list item (`optimizer.betas[1]`) replaces that item of the list.
        public func apply(_ value: Double, to config: RunConfig) throws -> RunConfig {
            let text = integer ? "\(Int(value))" : "\(value)"
            var assignment = key + "=" + text
            if key.hasSuffix("]"), let open = key.lastIndex(of: "["), let index = Int(key[key.index(after: open)..<key.index(before: key.endIndex)]) {
                let list = String(key[..<open])
                let current = try ConfigReader(yaml: config.resolvedYAML, fileName: "config").values[list]
                var items = (current ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",")
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                guard current != nil, items.indices.contains(index) else {
                    throw ConfigError(source: "study.search_space", key: key, expected: "an item of a list the training config has",
                                      found: current.map { "the list \($0)" } ?? "no list \(list)")
                }
                items[index] = text
                assignment = list + "=[" + items.joined(separator: ", ") + "]"
            }
            return try RunConfig.load(yaml: config.resolvedYAML, fileName: "study.search_space", overrides: [assignment])
        }
    }

    /// The training config every trial starts from (its optimizer is the default variant).
    public var base = RunConfig()
    public var variants: [Variant] = []
    public var batches: [RunConfig.Batch] = []
    public var search = Search.grid
    /// Trials per variant and batch size.
    public var trials = 6
    /// Keys searched besides the rate and momentum (quasirandom only).
    public var space: [Dimension] = []
    /// After a group's trials, search once more beyond the edge when its best rate is the lowest or highest tried.
    public var widen = false
    /// Successive halving of the trials that train together: at steps `pruneFrom`·ηᵏ only the best 1/η go on.
    public var prune = false
    public var pruneFrom = 50
    public var pruneReduction = 3
    public var target = Target()
    /// A trial ends at the target, or after this many steps or epochs, whichever comes first.
    public var maxSteps = 10_000
    public var maxEpochs = 100
    /// DeepOBS's rerun: each group's best point of the search (at `seed`) trained again at this many seeds, `seed`
    /// and the ones after it; 0: none.
    public var rerunSeeds = 0
    /// The seed whose trials choose each group's point when it is rerun (`rerun_seeds`); nil when all trials compete.
    public var choosingSeed: UInt64? { rerunSeeds > 0 ? base.seed : nil }
    /// The learning-rate range test: rates from … to …, growing geometrically over this many steps.
    public var rangeTest = (from: 1e-5, to: 10.0, steps: 100)

    public static func == (a: StudyConfig, b: StudyConfig) -> Bool { a.resolvedYAML == b.resolvedYAML }

    static let rangeExpected = "[low, high] with 0 < low ≤ high"

    public static func load(yaml text: String, fileName: String, overrides: [String] = []) throws -> StudyConfig {
        var r = try ConfigReader(yaml: text, fileName: fileName, overrides: overrides, for: .study)
        var c = StudyConfig()
        c.base = try RunConfig.read(&r)
        try keys.read(into: &c, from: &r)
        try c.readVariants(&r)
        try r.rejectUnknownKeys()
        return c
    }

    /// The base config's YAML with the study block appended; it loads back as the same study.
    public var resolvedYAML: String {
        base.resolvedYAML + Self.keys.resolvedYAML(self) + "  optimizers:\n" + RunConfig.optimizerListYAML(variants.map { v in
            .init(label: v.label, settings: v.optimizer,
                  after: (v.rates.map { ["lr_range: [\($0.low), \($0.high)]"] } ?? []) + (v.momentum.map { ["momentum_range: [\($0.low), \($0.high)]"] } ?? []))
        }).map { "    " + $0 }.joined(separator: "\n") + "\n"
    }

    /// The value a trial reaches, for titles: "test_accuracy ≥ 0.8".
    public var targetText: String { target.text }

    /// What `study.optimizers: all` tunes: every rule but those whose step evaluates again (L-BFGS), which a
    /// study that counts steps would credit with several passes for one; a list may still name it.
    public static var allOptimizers: [OptimizerKind] { OptimizerKind.allCases.filter { !$0.evaluatesAgain } }

    /// The optimizers that have a momentum (or β1) to search.
    public static func searchesMomentum(_ kind: OptimizerKind) -> Bool {
        [.momentum, .nesterov, .adam, .adamw, .nadam, .angulargrad, .radam, .adamax, .lion, .scheduleFreeSGD, .scheduleFreeAdamW, .muon,
         .shampoo].contains(kind)
    }

    /// Each rule's search space under `study.optimizers: all`: its rates, its momentum (or β1) when it has one, and
    /// where they come from. AlgoPerf's paper baselines (Dahl et al. 2023, mlcommons/algorithmic-efficiency
    /// `reference_algorithms/paper_baselines/*/tuning_search_space.json`) give AdamW's, Nesterov's, Adafactor's and
    /// Shampoo's, their `one_minus_beta1` written here as momentum; a rule's paper, or else torch's default rate a
    /// decade either side, gives the rest.
    public static func searchSpace(_ kind: OptimizerKind) -> (rates: SearchRange, momentum: SearchRange?, source: String) {
        let adamW = SearchRange(0.5, 0.98), nesterov = SearchRange(0.7, 0.995)
        switch kind {
        case .sgd, .asgd: return (SearchRange(2e-2, 5), nil, "AlgoPerf's Nesterov rates")
        case .momentum, .nesterov: return (SearchRange(2e-2, 5), nesterov, "AlgoPerf's Nesterov baseline")
        case .adam, .adamw, .nadam, .radam, .angulargrad: return (SearchRange(1e-4, 1e-2), adamW, "AlgoPerf's AdamW (and NAdamW) baseline")
        case .adamax: return (SearchRange(2e-4, 2e-2), adamW, "AlgoPerf's AdamW space at Adamax's default rate (2× Adam's)")
        case .lion: return (SearchRange(1e-5, 1e-3), adamW, "AlgoPerf's AdamW space ÷ 10 (Chen et al. 2023: 3–10× smaller rates than AdamW)")
        case .scheduleFreeAdamW: return (SearchRange(2.5e-4, 2.5e-2), adamW, "the reference's 0.0025 a decade either side, AdamW's β1")
        case .scheduleFreeSGD: return (SearchRange(0.1, 10), nesterov, "the reference's 1.0 a decade either side, Nesterov's β")
        case .muon: return (SearchRange(2e-3, 0.2), nesterov, "Jordan et al.'s 0.02 a decade either side, Nesterov's momentum")
        case .adafactor: return (SearchRange(1e-4, 1e-2), nil, "AlgoPerf's Adafactor baseline (torch's has no β1)")
        case .shampoo: return (SearchRange(1e-4, 1e-2), SearchRange(0.85, 0.99), "AlgoPerf's Shampoo baseline")
        case .adagrad, .rmsprop, .rprop: return (SearchRange(1e-3, 0.1), nil, "torch's default 0.01 a decade either side")
        case .adadelta: return (SearchRange(0.1, 10), nil, "torch's default 1.0 a decade either side")
        case .lbfgs: return (SearchRange(0.1, 1), nil, "torch's default 1.0 and a decade below")
        case .newton, .saddleFreeNewton, .newtonCG: return (SearchRange(0.1, 1), nil, "the full Newton step 1.0 and a decade below")
        }
    }
}

// MARK: the keys of the study block

extension StudyConfig {
    typealias Key = ConfigKey<StudyConfig>

    /// Every key of `study:` but the optimizer list, once. Ranges given here apply to every variant without its own.
    static let keys: [Key] = [
        Key("study.batches", read: { c, r in
            c.batches = try readBatches(&r, default: [c.base.training.batch])
        }, value: { "[" + $0.batches.map(\.description).joined(separator: ", ") + "]" }),
        Key("study.search", read: { c, r in
            c.search = Search(rawValue: try r.string("study.search", default: c.search.rawValue, allowed: Search.allCases.map(\.rawValue)))!
        }, value: { $0.search.rawValue }),
        Key("study.trials", read: { c, r in c.trials = try r.integer("study.trials", default: c.trials, range: 1...1000) },
            value: { "\($0.trials)" }),
        Key("study.search_space", read: { c, r in c.space = try readSpace(&r, base: c.base, search: c.search) },
            lines: { $0.space.map { d in
                "\(d.key): {range: [\(d.range.low), \(d.range.high)], scale: \(d.log ? "log" : "linear")}"
            } }, when: { !$0.space.isEmpty }),
        Key("study.widen", read: { c, r in c.widen = try r.boolean("study.widen", default: c.widen) },
            value: { "\($0.widen)" }, when: { $0.widen }),
        Key("study.prune", read: { c, r in
            c.prune = try r.string("study.prune", default: c.prune ? "halving" : "none", allowed: ["none", "halving"]) == "halving"
        }, value: { $0.prune ? "halving" : "none" }, when: { $0.prune }),
        Key("study.prune_from", read: { c, r in c.pruneFrom = try r.integer("study.prune_from", default: c.pruneFrom, range: 1...Int(Int32.max)) },
            value: { "\($0.pruneFrom)" }, when: { $0.prune }),
        Key("study.prune_reduction", read: { c, r in
            c.pruneReduction = try r.integer("study.prune_reduction", default: c.pruneReduction, range: 2...10)
        }, value: { "\($0.pruneReduction)" }, when: { $0.prune }),
        Key("study.target", read: { c, r in
            let metric = try r.string("study.target", default: c.target.metric.rawValue, allowed: Target.Metric.allCases.map(\.rawValue))
            c.target.metric = Target.Metric(rawValue: metric)!
            // The data must give the metric: a validation split, or a test set.
            try c.target.metric.check(in: c.base.data, key: "study.target", source: r.fileName)
        }, value: { $0.target.metric.rawValue }),
        Key("study.objective", read: { c, r in
            c.target.final = try r.string("study.objective", default: "target", allowed: ["target", "final"]) == "final"
            guard !(c.target.final && c.prune) else {
                throw ConfigError(source: r.source(of: "study.prune") ?? r.fileName, key: "study.prune",
                                  expected: "none with study.objective: final (halving judges the trials on the way to a target)",
                                  found: "halving")
            }
        }, value: { $0.target.final ? "final" : "target" }, when: { $0.target.final }),
        Key("study.target_value", read: { c, r in
            if c.target.final, let source = r.source(of: "study.target_value") {
                throw ConfigError(source: source, key: "study.target_value",
                                  expected: "no target value with study.objective: final (the final value is the objective)",
                                  found: try r.string("study.target_value", default: ""))
            }
            let rises = c.target.metric.rises
            c.target.value = try r.number("study.target_value", default: rises ? 0.8 : 0.5,
                                          expected: rises ? "an accuracy in (0, 1)" : "a loss > 0") { rises ? $0 > 0 && $0 < 1 : $0 > 0 }
        }, value: { "\($0.target.value)" }, when: { !$0.target.final }),
        Key("study.eval_ratio", read: { c, r in
            c.target.ratio = try r.number("study.eval_ratio", default: c.target.ratio,
                                          expected: "a ratio in (1, 2] between successive evaluation steps") { $0 > 1 && $0 <= 2 }
        }, value: { "\($0.target.ratio)" }, when: { !$0.target.final }),
        Key("study.rerun_seeds", read: { c, r in
            c.rerunSeeds = try r.integer("study.rerun_seeds", default: c.rerunSeeds, range: 0...1000)
            guard c.rerunSeeds == 0 || c.base.seeds.isEmpty else {
                throw ConfigError(source: r.source(of: "study.rerun_seeds") ?? r.fileName, key: "study.rerun_seeds",
                                  expected: "no `seeds` in the training config (seeds trains every point at every seed; rerun_seeds "
                                      + "only the best one)", found: "seeds: [\(c.base.seeds.map(String.init).joined(separator: ", "))]")
            }
        }, value: { "\($0.rerunSeeds)" }, when: { $0.rerunSeeds > 0 }),
        Key("study.max_steps", read: { c, r in c.maxSteps = try r.integer("study.max_steps", default: c.maxSteps, range: 1...Int(Int32.max)) },
            value: { "\($0.maxSteps)" }),
        Key("study.max_epochs", read: { c, r in
            c.maxEpochs = try r.integer("study.max_epochs", default: c.maxEpochs, range: 1...1_000_000)
        }, value: { "\($0.maxEpochs)" }),
        Key("study.range_test", read: { c, r in
            let t = try r.numberList("study.range_test", count: 3, default: [c.rangeTest.from, c.rangeTest.to, Double(c.rangeTest.steps)],
                                     expected: "[from, to, steps]: rates 0 < from < to and 10 ≤ steps ≤ 100000 (an integer)") { $0 > 0 }
            guard t[0] < t[1], t[2] >= 10, t[2] <= 100_000, t[2] == t[2].rounded() else {
                throw ConfigError(source: r.source(of: "study.range_test") ?? r.fileName, key: "study.range_test",
                                  expected: "[from, to, steps]: rates 0 < from < to and 10 ≤ steps ≤ 100000 (an integer)",
                                  found: "[\(t.map { shortNumber($0) }.joined(separator: ", "))]")
            }
            c.rangeTest = (t[0], t[1], Int(t[2]))
        }, value: { "[\($0.rangeTest.from), \($0.rangeTest.to), \($0.rangeTest.steps)]" }),
    ]

    /// `study.search_space`: `key: {range: [low, high], scale: log | linear}` per searched key of the training
    /// config; each key is checked by setting it to both ends.
    static func readSpace(_ r: inout ConfigReader, base: RunConfig, search: Search) throws -> [Dimension] {
        let prefix = "study.search_space."
        var names: [String] = []
        for k in r.keys(under: prefix) {
            let rest = String(k.dropFirst(prefix.count))
            let name = rest.hasSuffix(".range") ? String(rest.dropLast(6)) : rest.hasSuffix(".scale") ? String(rest.dropLast(6)) : rest
            if !names.contains(name) { names.append(name) }
        }
        let expected = "{range: [low, high], scale: log or linear} (log needs low > 0)"
        guard names.count <= 12 else {
            throw ConfigError(source: r.source(of: prefix + names[12] + ".range") ?? r.fileName, key: "study.search_space",
                              expected: "at most 12 searched keys", found: "\(names.count)")
        }
        var space: [Dimension] = []
        for name in names {
            let key = prefix + name
            guard r.source(of: key + ".range") != nil else {
                throw ConfigError(source: r.source(of: key) ?? r.source(of: key + ".scale") ?? r.fileName, key: key, expected: expected,
                                  found: r.source(of: key) != nil ? "no mapping" : "no range")
            }
            let scale = try r.string(key + ".scale", default: "log", allowed: ["log", "linear"])
            let v = try r.numberList(key + ".range", count: 2, default: [], expected: "[low, high] with low < high") { _ in true }
            let source = r.source(of: key + ".range") ?? r.fileName
            guard v[0] < v[1], scale == "linear" || v[0] > 0 else {
                throw ConfigError(source: source, key: key + ".range", expected: "[low, high] with low < high" + (scale == "log" ? " and low > 0 (scale log)" : ""),
                                  found: "[\(shortNumber(v[0])), \(shortNumber(v[1]))]")
            }
            guard search == .quasirandom else {
                throw ConfigError(source: source, key: key, expected: "study.search: quasirandom (a grid over more than the rate and momentum "
                                  + "spends its trials on few values of each key)", found: "study.search: \(search.rawValue)")
            }
            guard !["optimizer.lr", "optimizer.name", "seed", "name", "training.batch"].contains(name) else {
                throw ConfigError(source: source, key: key, expected: "a key other than the rate (study.lr), the optimizer (study.optimizers), "
                                  + "the batch (study.batches), the seed or the name", found: name)
            }
            // Whole ends may belong to an integer key: it takes them written as integers and refuses a fraction.
            let whole = v[0] == v[0].rounded() && v[1] == v[1].rounded() && abs(v[1]) < 1e15
            var d = Dimension(key: name, range: SearchRange(v[0], v[1]), log: scale == "log", integer: whole)
            do {
                _ = try d.apply(d.range.low, to: base)
                _ = try d.apply(d.range.high, to: base)
                var fraction = d
                fraction.integer = false
                if whole, (try? fraction.apply(d.range.low + 0.5, to: base)) != nil { d.integer = false }
            } catch let e as ConfigError {
                throw ConfigError(source: source, key: key, expected: "a numeric key of the training config that takes every value in the range",
                                  found: "\(e.key): expected \(e.expected), found \(e.found)")
            }
            space.append(d)
        }
        return space
    }

    static func readBatches(_ r: inout ConfigReader, default value: [RunConfig.Batch]) throws -> [RunConfig.Batch] {
        guard let words = try r.wordList("study.batches", expected: RunConfig.Batch.listExpected) else { return value }
        var batches: [RunConfig.Batch] = []
        for word in words {
            guard let b = RunConfig.Batch(word) else {
                throw ConfigError(source: r.source(of: "study.batches") ?? r.fileName, key: "study.batches",
                                  expected: RunConfig.Batch.listExpected, found: "'\(word)'")
            }
            guard !batches.contains(b) else {
                throw ConfigError(source: r.source(of: "study.batches") ?? r.fileName, key: "study.batches",
                                  expected: "batch sizes that differ", found: "\(word) twice")
            }
            batches.append(b)
        }
        return batches
    }

    /// A `[low, high]` range at `key`, or `value` when the key is not given.
    static func readRange(_ r: inout ConfigReader, _ key: String, default value: SearchRange?, within: ClosedRange<Double>? = nil) throws -> SearchRange? {
        let expected = rangeExpected + (within.map { " within (\(shortNumber($0.lowerBound)), \(shortNumber($0.upperBound)))" } ?? "")
        let found = r.source(of: key)
        let v = try r.numberList(key, count: 2, default: [], expected: expected) { x in within.map { x > $0.lowerBound && x < $0.upperBound } ?? true }
        guard !v.isEmpty else { return value }
        guard v[0] > 0, v[0] <= v[1] else {
            throw ConfigError(source: found ?? r.fileName, key: key, expected: expected,
                              found: "[\(shortNumber(v[0])), \(shortNumber(v[1]))]")
        }
        return SearchRange(v[0], v[1])
    }

    /// `study.lr`, `study.momentum` and `study.optimizers` (a list of optimizer blocks with optional `lr_range` and
    /// `momentum_range`, or `all` for the whole family at its defaults; absent: the base optimizer).
    mutating func readVariants(_ r: inout ConfigReader) throws {
        let rates = try Self.readRange(&r, "study.lr", default: nil)
        let momentum = try Self.readRange(&r, "study.momentum", default: nil, within: 0...1)
        if r.source(of: "study.optimizers") != nil {
            _ = try r.string("study.optimizers", default: "all", allowed: ["all"])
            // Each rule in its own search space, unless study.lr / study.momentum set one for all.
            variants = Self.allOptimizers.map { kind in
                let space = Self.searchSpace(kind)
                return Variant(label: kind.rawValue, optimizer: OptimizerSettings(kind), rates: rates == nil ? space.rates : nil,
                               momentum: momentum == nil ? space.momentum : nil)
            }
        } else if let list = try RunConfig.readOptimizerList(&r, key: "study.optimizers") {
            variants = []
            for (k, entry) in list.enumerated() {
                let prefix = "study.optimizers[\(k)]."
                variants.append(Variant(label: entry.label, optimizer: entry.settings,
                                        rates: try Self.readRange(&r, prefix + "lr_range", default: nil),
                                        momentum: try Self.readRange(&r, prefix + "momentum_range", default: nil, within: 0...1)))
            }
        } else {
            variants = [Variant(label: base.optimizer.kind.rawValue, optimizer: base.optimizer)]
        }
        for k in variants.indices {
            if variants[k].rates == nil { variants[k].rates = rates }
            if variants[k].momentum == nil, Self.searchesMomentum(variants[k].optimizer.kind) { variants[k].momentum = momentum }
        }
    }
}
