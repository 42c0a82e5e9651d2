// The configuration of `descent path`: a test function, a start point, a number of steps, optional gradient
// noise, the plotting window and a list of optimizers, each with its own hyperparameters.
import Models
import Numerics
import Optimizers
import Reports

public struct PathConfig: Equatable, Sendable {
    /// One optimizer on the picture: the name it is shown under and its settings.
    public struct Entry: Equatable, Sendable {
        public var label: String
        public var settings: OptimizerSettings
    }

    public var name = "path"
    public var function = TestFunction.bowl
    public var start = SIMD2<Double>(-7, 2)
    public var steps = 100
    /// σ of the Gaussian noise added to each gradient component (0: exact gradients).
    public var noise = 0.0
    /// Seed of the noise stream (every optimizer sees the same noise sequence).
    public var seed: UInt64 = 1
    public var window: (x: ClosedRange<Double>, y: ClosedRange<Double>) = TestFunction.bowl.window
    public var contours = ContourSpacing.auto
    public var levels = 20
    public var optimizers: [Entry] = []
    public var outputDirectory = "runs"

    public static func == (a: PathConfig, b: PathConfig) -> Bool {
        a.name == b.name && a.function == b.function && a.start == b.start && a.steps == b.steps && a.noise == b.noise
            && a.seed == b.seed && a.window.x == b.window.x && a.window.y == b.window.y && a.contours == b.contours
            && a.levels == b.levels && a.optimizers == b.optimizers && a.outputDirectory == b.outputDirectory
    }

    public init() {}

    static let listExpected = "a list of optimizer blocks, like [{name: sgd, lr: 0.1}, {name: adam, lr: 0.3}]"

    /// Reads `text` (the content of `fileName`), applies `overrides` ("key=value"), validates every key.
    public static func load(yaml text: String, fileName: String, overrides: [String] = []) throws -> PathConfig {
        var r = try ConfigReader(yaml: text, fileName: fileName)
        for o in overrides { try r.override(o) }
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
            c.function = TestFunction(rawValue: try r.string(
                "function", default: c.function.rawValue, allowed: TestFunction.allCases.map(\.rawValue)))!
        }, value: { "\($0.function.rawValue)    # \($0.function.formula)" }),
        Key("start", read: { c, r in
            let start = try r.numberList("start", count: 2, default: [c.function.start.x, c.function.start.y],
                                         expected: "two numbers [x, y]") { _ in true }
            c.start = SIMD2(start[0], start[1])
        }, value: { "[\($0.start.x), \($0.start.y)]" }),
        Key("steps", read: { c, r in c.steps = try r.integer("steps", default: c.steps, range: 1...1_000_000) },
            value: { "\($0.steps)" }),
        Key("noise", read: { c, r in
            c.noise = try r.number("noise", default: c.noise, expected: "a number ≥ 0 (σ of the gradient noise)") { $0 >= 0 }
        }, value: { "\($0.noise)" }),
        Key("seed", read: { c, r in c.seed = UInt64(try r.integer("seed", default: Int(c.seed), range: 0...Int.max)) },
            value: { "\($0.seed)" }),
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
        Key(block: "optimizers", read: { c, r in
            guard let list = try RunConfig.readOptimizerList(&r, key: "optimizers") else {
                throw ConfigError(source: r.fileName, key: "optimizers", expected: listExpected, found: "no optimizers")
            }
            c.optimizers = list.map { Entry(label: $0.label, settings: $0.settings) }
        }, lines: { c in
            c.optimizers.flatMap { e in
                ["- label: \(yamlQuoted(e.label))"] + e.settings.yamlLines().map { "  " + $0 }
            }
        }),
        Key("output.dir", .free, read: { c, r in c.outputDirectory = try r.string("output.dir", default: c.outputDirectory) },
            value: { yamlQuoted($0.outputDirectory) }),
    ]

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
