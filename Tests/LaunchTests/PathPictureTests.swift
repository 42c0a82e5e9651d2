// Charts: ticks, number formatting, scales, contour lines; the SVG of every path preset is well-formed XML and
// renders (rsvg-convert) to a picture that shows every optimizer's colour.
import Config
import DescentTestSupport
import Experiments
import Foundation
import FoundationXML
import Models
import Reports
import Testing
import Training

@Suite struct PathPictureTests {
    static let presets = ["dlfs", "rosenbrock", "beale", "saddle", "long-valley", "himmelblau", "rastrigin", "noise",
                          "sphere", "lr-ladder", "nesterov", "step-size", "adam-forms", "angulargrad", "escape",
                          "minibatch", "logistic", "frontier"]

    @Test("descent path writes CSV and well-formed SVG for every preset", arguments: presets)
    func preset(_ name: String) throws {
        let dir = try temporaryDirectory("path")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try runDescent(ranks: 0, ["path", "--preset", name, "--set", "output.dir=\(dir.path)"], directory: packageRoot)
        #expect(result.status == 0, "\(result.stderr)")
        let folder = dir.appendingPathComponent(name)
        for file in ["paths.svg", "f.svg", "figure.svg"] {
            let svg = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            #expect(xmlError(svg) == nil, "\(name)/\(file): \(xmlError(svg) ?? "")")
            #expect(svg.contains("<path"))
        }
        let rows = try readCSV(folder.appendingPathComponent("paths.csv"))
        let config = try PathConfig(contentsOf: folder.appendingPathComponent("config.yaml"))
        #expect(Set(rows.map { $0["optimizer"]! }) == Set(config.labels))
        #expect(rows.filter { $0["step"] == "0" && $0["repeat"] == "0" }.count == config.labels.count)
        #expect(result.stdout.contains("wrote "))
    }

    @Test("a rendered picture is not blank and shows every optimizer's colour",
          .enabled(if: rsvgConvert != nil, "rsvg-convert is not installed (Debian: librsvg2-bin)"),
          arguments: ["dlfs", "beale"])
    func rendered(_ name: String) throws {
        let dir = try temporaryDirectory("render")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try runDescent(ranks: 0, ["path", "--preset", name, "--set", "output.dir=\(dir.path)"], directory: packageRoot)
        try #require(result.status == 0, "\(result.stderr)")
        let svg = dir.appendingPathComponent("\(name)/figure.svg"), png = dir.appendingPathComponent("figure.png")
        let render = try runProgram(rsvgConvert!, [svg.path, "-o", png.path])
        try #require(render.status == 0, "\(render.stderr)")
        let image = try readPNG(Data(contentsOf: png))
        #expect(image.width > 1000 && image.height > 500)
        var ink = 0
        for y in 0..<image.height {
            for x in 0..<image.width {
                let p = image.rgba(x, y)
                if Int(p.0) + Int(p.1) + Int(p.2) < 3 * 235 { ink += 1 }
            }
        }
        let share = Double(ink) / Double(image.width * image.height)
        #expect(share > 0.02 && share < 0.6, "\(name): \(share) of the pixels are not white")
        let count = try PathConfig(contentsOf: dir.appendingPathComponent("\(name)/config.yaml")).labels.count
        for k in 0..<count {
            let colour = Palette.style(k).colour
            #expect(pixelCount(image, near: colour) >= 40, "\(name): optimizer \(k)'s colour \(colour) is missing")
        }
        // A colour no series uses does not show up: the check above can fail.
        #expect(pixelCount(image, near: "#FF00FF", tolerance: 30) == 0)
    }

    @Test("path --list names every function, the finite sums included, and the presets")
    func list() throws {
        let result = try runDescent(ranks: 0, ["path", "--list"], directory: packageRoot)
        #expect(result.status == 0, "\(result.stderr)")
        for name in TestFunction.allCases.map(\.rawValue) + FiniteSum.allCases.map(\.rawValue) {
            #expect(result.stdout.contains("\n  \(name) "), "\(name) missing from: \(result.stdout)")
        }
        #expect(result.stdout.contains("presets: adam-forms, angulargrad, beale, dlfs, escape, frontier,"), "\(result.stdout)")
    }

    @Test("path keeps an existing folder as train does: refused with one message, replaced whole with --overwrite")
    func existingFolder() throws {
        let dir = try temporaryDirectory("path-again")
        let args = ["path", "--preset", "sphere", "--set", "output.dir=\(dir.path)", "--set", "steps=5"]
        let first = try runDescent(ranks: 0, args, directory: packageRoot)
        try #require(first.status == 0, "\(first.stderr)")
        let folder = dir.appendingPathComponent("sphere")
        let stray = folder.appendingPathComponent("mine.txt")
        try "kept".write(to: stray, atomically: true, encoding: .utf8)
        let second = try runDescent(ranks: 0, args + ["--set", "steps=7"], directory: packageRoot)
        #expect(second.status == 1)
        #expect(ownLines(second) == ["descent: error: cannot write \(folder.path): the lab folder already exists "
                                     + "(pass --overwrite to replace it, or choose another name with --set name=...)"], "\(second.stderr)")
        #expect(FileManager.default.fileExists(atPath: stray.path))
        let rows = { try readCSV(folder.appendingPathComponent("paths.csv")).count }
        let before = try rows()
        let third = try runDescent(ranks: 0, args + ["--set", "steps=7", "--overwrite"], directory: packageRoot)
        #expect(third.status == 0, "\(third.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stray.path))
        #expect(try rows() > before)
    }

    @Test("an unknown preset is one clear error naming the presets there are")
    func unknownPreset() throws {
        let result = try runDescent(ranks: 0, ["path", "--preset", "rosenbrok"], directory: packageRoot)
        #expect(result.status == 1)
        #expect(result.stderr.contains("descent: error: --preset: rosenbrok: expected one of adam-forms, angulargrad, beale, dlfs, "
                                       + "escape, frontier, himmelblau, lbfgs, logistic, long-valley, lr-ladder, minibatch, nesterov, newton-bowl, "
                                       + "newton-double-well, newton-saddle, noise, rastrigin, "
                                       + "rosenbrock, saddle, sphere, step-size, found no file configs/path-rosenbrok.yaml"))
    }

    @Test("a finite sum under mpirun -np 2 and -np 3 draws the same paths, bit for bit, as one process; batch 1, 16 and full on one picture")
    func finiteSumUnderMPI() throws {
        let dir = try temporaryDirectory("minibatch")
        defer { try? FileManager.default.removeItem(at: dir) }
        var csv: [String] = []
        for ranks in [0, 2, 3] {
            let out = dir.appendingPathComponent("np\(ranks)")
            let result = try runDescent(ranks: ranks, ["path", "--preset", "minibatch", "--set", "output.dir=\(out.path)", "--set", "epochs=2"],
                                        directory: packageRoot)
            try #require(result.status == 0, "\(result.stderr)")
            csv.append(try String(contentsOf: out.appendingPathComponent("minibatch/paths.csv"), encoding: .utf8))
        }
        #expect(csv[1] == csv[0] && csv[2] == csv[0])
        let rows = try readCSV(dir.appendingPathComponent("np2/minibatch/paths.csv"))
        // 256 points, 2 epochs: 512 steps at batch 1, 32 at batch 16, 2 at full, each after its start point.
        #expect(["batch 1", "batch 16", "full batch"].map { label in rows.filter { $0["optimizer"] == label }.count } == [513, 33, 3])
        #expect(rows.last?["epoch"] == "2.0")
        let svg = try String(contentsOf: dir.appendingPathComponent("np2/minibatch/figure.svg"), encoding: .utf8)
        #expect(xmlError(svg) == nil && svg.contains("f against epoch") && svg.contains("f against step"))
    }
}

extension PathConfig {
    init(contentsOf url: URL) throws {
        self = try PathConfig.load(yaml: String(contentsOf: url, encoding: .utf8), fileName: url.path)
    }

    var labels: [String] { optimizers.map(\.label) }
}
