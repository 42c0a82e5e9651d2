// Config files and overrides: defaults, typed values, and precise messages for every kind of bad input.
import Foundation
import Testing
import Training

@Suite("Config")
struct ConfigTests {
    func load(_ yaml: String, _ overrides: [String] = []) throws -> RunConfig {
        try RunConfig.load(yaml: yaml, fileName: "c.yaml", overrides: overrides)
    }

    func message(_ yaml: String, _ overrides: [String] = []) -> String? {
        do {
            _ = try load(yaml, overrides)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("the shipped configs load, and the default one is the issue's main job")
    func shippedConfigs() throws {
        let dir = packageRoot.appendingPathComponent("configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 3)
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            _ = try RunConfig.load(yaml: text, fileName: f)
        }
        let main = try RunConfig.load(yaml: String(contentsOf: dir.appendingPathComponent("default.yaml"), encoding: .utf8),
                                      fileName: "default.yaml")
        #expect(main.optimizer.name == "momentum" && main.optimizer.learningRate == 0.01 && main.optimizer.momentum == 0.9)
        #expect(main.training.batch == .samples(128) && main.training.epochs == 5)
        #expect(main.model.hidden == [100, 100, 100, 100] && main.data.source == .fashionMNIST)
    }

    @Test("an empty file gives the defaults; momentum defaults to 0.9 only for 'momentum'")
    func defaults() throws {
        let c = try load("")
        #expect(c == RunConfig())
        #expect(try load("optimizer: {name: sgd}").optimizer.momentum == 0)
        #expect(try load("optimizer: {name: momentum}").optimizer.momentum == 0.9)
    }

    @Test("--set overrides any key, parsed as YAML")
    func overrides() throws {
        let c = try load("optimizer:\n  lr: 0.5\n", ["optimizer.lr=0.25", "training.batch=full", "model.hidden=[8, 4]",
                                                   "optimizer.nesterov=true", "name=x"])
        #expect(c.optimizer.learningRate == 0.25 && c.training.batch == .full && c.model.hidden == [8, 4])
        #expect(c.optimizer.nesterov && c.name == "x")
    }

    @Test("the resolved YAML reads back to the same config")
    func resolvedRoundTrip() throws {
        let c = try load("", ["training.steps=7", "data.source=synthetic", "runtime.blas_threads=1", "training.batch=full"])
        #expect(try load(c.resolvedYAML) == c)
    }

    @Test("bad input names the source, the key, what was expected and what was found", arguments: [
        ("optimizer:\n  lrr: 0.1\n", [String](),
         "c.yaml: optimizer.lrr: expected a known key (did you mean 'optimizer.lr'?), found an unknown key"),
        ("epochs: 3\n", [], "c.yaml: epochs: expected a known key, found an unknown key"),
        ("optimizer:\n  lr: fast\n", [], "c.yaml: optimizer.lr: expected a number > 0, found 'fast'"),
        ("optimizer:\n  lr: -0.1\n", [], "c.yaml: optimizer.lr: expected a number > 0, found '-0.1'"),
        ("", ["optimizer.lr=0"], "--set: optimizer.lr: expected a number > 0, found '0'"),
        ("training:\n  batch: half\n", [], "c.yaml: training.batch: expected an integer in 1...2147483647 or full, found 'half'"),
        ("training:\n  epochs: 2.5\n", [], "c.yaml: training.epochs: expected an integer in 1...1000000, found '2.5'"),
        ("model:\n  hidden: 100\n", [],
         "c.yaml: model.hidden: expected a list of integers in 1...1000000, like [100, 100], found '100'"),
        ("optimizer:\n  name: adamw\n", [], "c.yaml: optimizer.name: expected one of sgd, momentum, found 'adamw'"),
        ("optimizer:\n  momentum: 1.0\n", [], "c.yaml: optimizer.momentum: expected a number in [0, 1), found '1.0'"),
        ("optimizer:\n  name: sgd\n  nesterov: true\n", [],
         "c.yaml: optimizer.nesterov: expected momentum > 0 and dampening 0 with Nesterov momentum, found momentum 0.0, dampening 0.0"),
        ("training:\n  shuffle: maybe\n", [], "c.yaml: training.shuffle: expected true or false, found 'maybe'"),
        ("- a\n- b\n", [], "c.yaml: (document): expected a mapping of keys to values, found a list of 2 items"),
        ("optimizer: [1\n", [], nil),
        ("", ["optimizer.lr"], "--set: optimizer.lr: expected key=value, found 'optimizer.lr'"),
        ("", ["optimizer.lrate=1"], "--set: optimizer.lrate: expected a known key (did you mean 'optimizer.lr'?), found an unknown key"),
        ("name: ../elsewhere\n", [], "c.yaml: name: expected a plain folder name (no '/', not starting with '.'), found '../elsewhere'"),
    ] as [(String, [String], String?)])
    func badInput(_ yaml: String, _ overrides: [String], _ expected: String?) {
        let m = message(yaml, overrides)
        if let expected {
            #expect(m == expected)
        } else {
            #expect(m?.hasPrefix("c.yaml: (document): expected valid YAML, found a syntax error") == true, "\(m ?? "no error")")
        }
    }
}
