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
        c.name = try r.string("name", default: c.name)
        if c.name.contains("/") || c.name.hasPrefix(".") {
            throw ConfigError(source: r.source(of: "name") ?? fileName, key: "name",
                              expected: "a plain folder name (no '/', not starting with '.')", found: "'\(c.name)'")
        }
        c.function = TestFunction(rawValue: try r.string(
            "function", default: c.function.rawValue, allowed: TestFunction.allCases.map(\.rawValue)))!
        let start = try r.numberList("start", count: 2, default: [c.function.start.x, c.function.start.y],
                                     expected: "two numbers [x, y]") { _ in true }
        c.start = SIMD2(start[0], start[1])
        c.steps = try r.integer("steps", default: c.steps, range: 1...1_000_000)
        c.noise = try r.number("noise", default: 0, expected: "a number ≥ 0 (σ of the gradient noise)") { $0 >= 0 }
        c.seed = UInt64(try r.integer("seed", default: Int(c.seed), range: 0...Int.max))

        c.window = c.function.window
        c.window.x = try readRange(&r, "plot.x", default: c.window.x)
        c.window.y = try readRange(&r, "plot.y", default: c.window.y)
        c.contours = ContourSpacing(rawValue: try r.string(
            "plot.contours", default: c.contours.rawValue, allowed: ContourSpacing.allCases.map(\.rawValue)))!
        c.levels = try r.integer("plot.levels", default: c.levels, range: 0...200)

        guard let list = try RunConfig.readOptimizerList(&r, key: "optimizers") else {
            throw ConfigError(source: fileName, key: "optimizers", expected: listExpected, found: "no optimizers")
        }
        c.optimizers = list.map { Entry(label: $0.label, settings: $0.settings) }
        c.outputDirectory = try r.string("output.dir", default: c.outputDirectory)
        try r.rejectUnknownKeys()
        return c
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
    public var resolvedYAML: String {
        var lines = [
            "name: \(name)",
            "function: \(function.rawValue)    # \(function.formula)",
            "start: [\(start.x), \(start.y)]",
            "steps: \(steps)",
            "noise: \(noise)",
            "seed: \(seed)",
            "plot:",
            "  x: [\(window.x.lowerBound), \(window.x.upperBound)]",
            "  y: [\(window.y.lowerBound), \(window.y.upperBound)]",
            "  contours: \(contours.rawValue)",
            "  levels: \(levels)",
            "optimizers:",
        ]
        for e in optimizers {
            let block = ["label: \(yamlQuoted(e.label))"]
                + e.settings.yamlLines()
            lines.append("  - " + block[0])
            lines.append(contentsOf: block.dropFirst().map { "    " + $0 })
        }
        lines.append("output:")
        lines.append("  dir: \(yamlQuoted(outputDirectory))")
        return lines.joined(separator: "\n") + "\n"
    }
}
