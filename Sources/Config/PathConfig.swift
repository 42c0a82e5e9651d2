// The configuration of `descent path`: a test function (or a finite sum over data), a start point, a number of
// steps (or epochs), optional gradient noise, the plotting window and a list of optimizers, each with its own
// hyperparameters, noise, batch and number of seeds.
import Models
import Numerics
import Optimizers
import Reports

/// What the paths run on: an analytic 2-D function, or a finite sum over data trained by the real trainer.
public enum PathFunction: Equatable, Sendable {
    case test(TestFunction)
    case finiteSum(FiniteSum)

    public init?(name: String) {
        if let f = TestFunction(rawValue: name) { self = .test(f) } else if let s = FiniteSum(rawValue: name) { self = .finiteSum(s) } else { return nil }
    }

    public static var names: [String] { TestFunction.allCases.map(\.rawValue) + FiniteSum.allCases.map(\.rawValue) }

    public var name: String {
        switch self {
        case .test(let f): return f.rawValue
        case .finiteSum(let s): return s.rawValue
        }
    }

    public var formula: String {
        switch self {
        case .test(let f): return f.formula
        case .finiteSum(let s): return s.formula
        }
    }

    public var start: SIMD2<Double> {
        switch self {
        case .test(let f): return f.start
        case .finiteSum(let s): return s.start
        }
    }

    public var window: (x: ClosedRange<Double>, y: ClosedRange<Double>) {
        switch self {
        case .test(let f): return f.window
        case .finiteSum(let s): return s.window
        }
    }

    public var isFiniteSum: Bool { if case .finiteSum = self { return true } else { return false } }
}

public struct PathConfig: Equatable, Sendable {
    /// One optimizer on the picture: the name it is shown under, its settings, and how it samples.
    public struct Entry: Equatable, Sendable {
        public var label: String
        public var settings: OptimizerSettings
        /// σ of its gradient noise (an analytic function); nil: the config's `noise`.
        public var noise: Double?
        /// How many times a stochastic entry runs, with seeds seed, seed + 1, …
        public var seeds = 1
        /// Its global batch (a finite sum).
        public var batch = RunConfig.Batch.full
        /// Whether its rate follows a cosine from lr at step 1 to 0 after the last step (an analytic function;
        /// `schedule: cosine`), else stays constant.
        public var cosine = false

        public init(label: String, settings: OptimizerSettings, noise: Double? = nil, seeds: Int = 1, batch: RunConfig.Batch = .full,
                    cosine: Bool = false) {
            (self.label, self.settings, self.noise, self.seeds, self.batch, self.cosine) = (label, settings, noise, seeds, batch, cosine)
        }
    }

    public var name = "path"
    public var function = PathFunction.test(.bowl)
    public var start = SIMD2<Double>(-7, 2)
    public var steps = 100
    /// A finite sum's training samples, and the passes over them each entry trains.
    public var samples = 256
    public var epochs = 10
    /// σ of the Gaussian noise added to each gradient component (0: exact gradients).
    public var noise = 0.0
    /// Seed of the noise stream (every optimizer sees the same noise sequence).
    public var seed: UInt64 = 1
    /// How many seeds a stochastic entry runs with unless it says (`optimizers[k].seeds`).
    public var seeds = 1
    public var window: (x: ClosedRange<Double>, y: ClosedRange<Double>) = TestFunction.bowl.window
    /// Also write an animated SVG of the paths (SMIL: any browser plays it).
    public var animate = false
    public var contours = ContourSpacing.auto
    public var levels = 20
    public var optimizers: [Entry] = []
    public var outputDirectory = "runs"

    public static func == (a: PathConfig, b: PathConfig) -> Bool {
        a.name == b.name && a.function == b.function && a.start == b.start && a.steps == b.steps && a.noise == b.noise
            && a.samples == b.samples && a.epochs == b.epochs && a.animate == b.animate
            && a.seed == b.seed && a.seeds == b.seeds && a.window.x == b.window.x && a.window.y == b.window.y && a.contours == b.contours
            && a.levels == b.levels && a.optimizers == b.optimizers && a.outputDirectory == b.outputDirectory
    }

    public init() {}

    /// A config on `function`, starting at its start point and showing its window.
    public init(function: PathFunction) {
        self.function = function
        (start, window) = (function.start, function.window)
    }

    /// σ of `entry`'s gradient noise.
    public func noise(of entry: Entry) -> Double { entry.noise ?? noise }

    /// Whether `entry`'s path depends on its seed: noisy gradients, or mini-batches of a finite sum.
    public func isStochastic(_ entry: Entry) -> Bool {
        switch function {
        case .test: return noise(of: entry) > 0
        case .finiteSum: return entry.batch != .full && entry.batch != .samples(samples)
        }
    }

    static let listExpected = "a list of optimizer blocks, like [{name: sgd, lr: 0.1}, {name: adam, lr: 0.3}]"

    /// Reads `text` (the content of `fileName`), applies `overrides` ("key=value"), validates every key.
    public static func load(yaml text: String, fileName: String, overrides: [String] = []) throws -> PathConfig {
        var r = try ConfigReader(yaml: text, fileName: fileName, overrides: overrides, for: .path)
        var c = PathConfig()
        try keys.read(into: &c, from: &r)
        try r.rejectUnknownKeys()
        return c
    }

    typealias Key = ConfigKey<PathConfig>

    /// Every key, once, in the resolved YAML's order; a default is `PathConfig()`'s value or the function's.
    static let keys: [Key] = [
        Key("name", .free, read: { c, r in
            c.name = try r.string("name", default: c.name)
            if let error = ConfigError.invalidRunFolder(c.name, source: r.source(of: "name") ?? r.fileName) { throw error }
        }, value: { $0.name }),
        Key("function", read: { c, r in
            c.function = PathFunction(name: try r.string("function", default: c.function.name, allowed: PathFunction.names))!
        }, value: { "\($0.function.name)    # \($0.function.formula)" }),
        Key("start", read: { c, r in
            let start = try r.numberList("start", count: 2, default: [c.function.start.x, c.function.start.y],
                                         expected: "two numbers [x, y]") { _ in true }
            c.start = SIMD2(start[0], start[1])
        }, value: { "[\($0.start.x), \($0.start.y)]" }),
        Key("steps", read: { c, r in
            try onlyFor(finiteSum: false, "steps", c, &r)
            c.steps = try r.integer("steps", default: c.steps, range: 1...1_000_000)
        }, value: { "\($0.steps)" }, when: { !$0.function.isFiniteSum }),
        Key("samples", read: { c, r in
            try onlyFor(finiteSum: true, "samples", c, &r)
            c.samples = try r.integer("samples", default: c.samples, range: 2...1_000_000)
        }, value: { "\($0.samples)" }, when: { $0.function.isFiniteSum }),
        Key("epochs", read: { c, r in
            try onlyFor(finiteSum: true, "epochs", c, &r)
            c.epochs = try r.integer("epochs", default: c.epochs, range: 1...100_000)
        }, value: { "\($0.epochs)" }, when: { $0.function.isFiniteSum }),
        Key("noise", read: { c, r in
            c.noise = try r.number("noise", default: c.noise, expected: "a number ≥ 0 (σ of the gradient noise)") { $0 >= 0 }
        }, value: { "\($0.noise)" }),
        Key("seed", read: { c, r in c.seed = UInt64(try r.integer("seed", default: Int(c.seed), range: 0...Int.max)) },
            value: { "\($0.seed)" }),
        Key("seeds", read: { c, r in c.seeds = try r.integer("seeds", default: c.seeds, range: 1...10_000) },
            value: { "\($0.seeds)" }, when: { $0.seeds != 1 }),
        Key("plot.x", .free, read: { c, r in c.window.x = try readRange(&r, "plot.x", default: c.function.window.x) },
            value: { "[\($0.window.x.lowerBound), \($0.window.x.upperBound)]" }),
        Key("plot.y", .free, read: { c, r in c.window.y = try readRange(&r, "plot.y", default: c.function.window.y) },
            value: { "[\($0.window.y.lowerBound), \($0.window.y.upperBound)]" }),
        Key("plot.contours", .free, read: { c, r in
            c.contours = ContourSpacing(rawValue: try r.string(
                "plot.contours", default: c.contours.rawValue, allowed: ContourSpacing.allCases.map(\.rawValue)))!
        }, value: { $0.contours.rawValue }),
        Key("plot.levels", .free, read: { c, r in c.levels = try r.integer("plot.levels", default: c.levels, range: 0...200) },
            value: { "\($0.levels)" }),
        Key("plot.animate", .free, read: { c, r in c.animate = try r.boolean("plot.animate", default: c.animate) },
            value: { "\($0.animate)" }),
        Key(block: "optimizers", read: { c, r in
            // The lab's own keys of each entry first, so that the optimizer block sees only optimizer keys.
            let count = try r.blockCount("optimizers", expected: listExpected) ?? 0
            var lab: [(noise: Double?, seeds: Int, batch: RunConfig.Batch, cosine: Bool)] = []
            for k in 0..<count {
                let prefix = "optimizers[\(k)]."
                var noise: Double?
                if r.source(of: prefix + "noise") != nil {
                    try onlyFor(finiteSum: false, prefix + "noise", c, &r)
                    noise = try r.number(prefix + "noise", default: c.noise, expected: "a number ≥ 0 (σ of the gradient noise)") { $0 >= 0 }
                }
                let seeds = try r.integer(prefix + "seeds", default: c.seeds, range: 1...10_000)
                var batch = RunConfig.Batch.full
                if r.source(of: prefix + "batch") != nil {
                    try onlyFor(finiteSum: true, prefix + "batch", c, &r)
                    let word = try r.integerOrWord(prefix + "batch", default: "full", words: ["full"], range: 1...c.samples)
                    batch = RunConfig.Batch(word)!
                }
                if r.source(of: prefix + "schedule") != nil { try onlyFor(finiteSum: false, prefix + "schedule", c, &r) }
                let cosine = try r.string(prefix + "schedule", default: "constant", allowed: ["constant", "cosine"]) == "cosine"
                lab.append((noise, seeds, batch, cosine))
            }
            guard let list = try RunConfig.readOptimizerList(&r, key: "optimizers") else {
                throw ConfigError(source: r.fileName, key: "optimizers", expected: listExpected, found: "no optimizers")
            }
            c.optimizers = zip(list, lab).map {
                Entry(label: $0.label, settings: $0.settings, noise: $1.noise, seeds: $1.seeds, batch: $1.batch, cosine: $1.cosine)
            }
        }, lines: { c in
            RunConfig.optimizerListYAML(c.optimizers.map { e in
                let own: [String]
                switch c.function {
                case .test: own = (e.noise.map { ["noise: \($0)"] } ?? []) + (e.cosine ? ["schedule: cosine"] : [])
                case .finiteSum: own = ["batch: \(e.batch)"]
                }
                return .init(label: e.label, settings: e.settings, before: own + ["seeds: \(e.seeds)"])
            })
        }),
        Key("output.dir", .free, read: { c, r in c.outputDirectory = try r.string("output.dir", default: c.outputDirectory) },
            value: { yamlQuoted($0.outputDirectory) }),
    ]

    /// Refuses `key` when it is set and the function is not of the kind it belongs to.
    private static func onlyFor(finiteSum: Bool, _ key: String, _ c: PathConfig, _ r: inout ConfigReader) throws {
        guard let source = r.source(of: key), c.function.isFiniteSum != finiteSum else { return }
        throw ConfigError(source: source, key: key,
                          expected: finiteSum ? "\(key.split(separator: ".").last!) only with a finite sum (function: "
                              + FiniteSum.allCases.map(\.rawValue).joined(separator: " or ") + ")"
                              : "no \(key.split(separator: ".").last!) with a finite sum (it trains `epochs` passes over its `samples`)",
                          found: "\(key) with function \(c.function.name)")
    }

    private static func readRange(_ r: inout ConfigReader, _ key: String, default value: ClosedRange<Double>) throws -> ClosedRange<Double> {
        let v = try r.numberList(key, count: 2, default: [value.lowerBound, value.upperBound],
                                 expected: "two numbers [low, high] with low < high") { _ in true }
        guard v[0] < v[1] else {
            throw ConfigError(source: r.source(of: key) ?? r.fileName, key: key,
                              expected: "two numbers [low, high] with low < high", found: "[\(v[0]), \(v[1])]")
        }
        return v[0]...v[1]
    }

    /// The configuration with every default filled in, as YAML that `load` reads back to the same value.
    public var resolvedYAML: String { Self.keys.resolvedYAML(self) }
}
