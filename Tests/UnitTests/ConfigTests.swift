// Config files and overrides: defaults, typed values, and precise messages for every kind of bad input.
import Collectives
import Config
import DescentTestSupport
import Experiments
import Foundation
import Numerics
import Optimizers
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

    @Test("the shipped configs load, and the default one is the README's main job")
    func shippedConfigs() throws {
        let dir = packageRoot.appendingPathComponent("configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 3)
        for f in files {
            let text = try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8)
            // path-*.yaml are the optimizer lab's presets, configs with a compare: or study: block comparisons and
            // studies; the others are training configs.
            if f.hasPrefix("path-") {
                _ = try PathConfig.load(yaml: text, fileName: f)
            } else if text.contains("\ncompare:") {
                _ = try CompareConfig.load(yaml: text, fileName: f)
            } else if text.contains("\nstudy:") {
                _ = try StudyConfig.load(yaml: text, fileName: f)
            } else {
                _ = try RunConfig.load(yaml: text, fileName: f)
            }
        }
        let main = try RunConfig.load(yaml: String(contentsOf: dir.appendingPathComponent("default.yaml"), encoding: .utf8),
                                      fileName: "default.yaml")
        #expect(main.optimizer.kind == .momentum && main.optimizer.learningRate == 0.01 && main.optimizer.momentum == 0.9)
        #expect(main.training.batch == .samples(128) && main.training.epochs == 5)
        #expect(main.model.hidden == [100, 100, 100, 100] && main.data.source == .fashionMNIST)
    }

    @Test("the resolved config writes the chosen data source's keys only; the fingerprint still covers them all")
    func dataSourceKeys() throws {
        let fashion = try load("data: {source: fashion-mnist}\n")
        let written = fashion.resolvedYAML
        for key in ["train_samples:", "test_samples:", "features:", "classes:", "noise:"] { #expect(!written.contains(key), "\(key)") }
        #expect(written.contains("  path: "))
        let synthetic = try load("data: {source: synthetic}\n").resolvedYAML
        #expect(!synthetic.contains("  path: ") && synthetic.contains("  features: 32") && synthetic.contains("  classes: 4"))
        // A key of another source is still checked, then has no effect: the config is the one without it.
        #expect(try load("data: {source: fashion-mnist, features: 64, noise: 3}\n") == fashion)
        #expect(message("data: {source: fashion-mnist, features: -1}\n")?.hasPrefix("c.yaml: data.features: expected an integer") == true)
        // The written form loads back to the same config.
        #expect(try load(written) == fashion)
        // The fingerprint is that of the complete form, so it did not move: this config's hash as descent gave it
        // before the written form left the generator's keys out (config_hash in model.safetensors).
        let main = try load(String(contentsOf: packageRoot.appendingPathComponent("configs/default.yaml"), encoding: .utf8),
                            ["name=h", "output.dir=/tmp/o", "training.steps=1"])
        #expect(hexDigest(main.hash) == "1b2e391c762cec57" && main.completeYAML.contains("  features: 32"))
    }

    @Test("a key found wrong while the data loads is blamed on the file or the --set that gave it")
    func dataErrorsNameTheirSource() throws {
        func loading(_ c: RunConfig) -> String {
            do { _ = try Trainer.trainingSetCount(c); return "no error" } catch { return "\(error)" }
        }
        #expect(loading(try load("data: {source: idx}\n"))
                == "c.yaml: data.train_images: expected a file path (data.source idx needs it), found nothing")
        #expect(loading(try load("data: {source: synthetic, train_samples: 64}\n", ["data.validation=64"]))
                == "--set: data.validation: expected fewer samples than the training set's 64, found 64")
    }

    @Test("a config written for another subcommand is refused with the subcommand it belongs to")
    func otherSubcommandsConfig() throws {
        let dir = packageRoot.appendingPathComponent("configs")
        func text(_ f: String) throws -> String { try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8) }
        func message(_ load: () throws -> Void) -> String {
            do { try load(); return "no error" } catch { return "\(error)" }
        }
        #expect(message { _ = try StudyConfig.load(yaml: try text("default.yaml"), fileName: "default.yaml") }
                == "default.yaml: study: expected a study: block (as in configs/study-smoke.yaml) for descent study, "
                + "found a config for descent train; run it with descent train --config default.yaml")
        #expect(message { _ = try RunConfig.load(yaml: try text("study-smoke.yaml"), fileName: "s.yaml") }
                == "s.yaml: study: expected a config for descent train, without a study: block, "
                + "found a config for descent study; run it with descent study --config s.yaml")
        #expect(message { _ = try CompareConfig.load(yaml: try text("path-beale.yaml"), fileName: "b.yaml") } == (
                "b.yaml: compare: expected a compare: block (as in configs/sgd-vs-gd.yaml) for descent compare, found a config "
                + "for descent path; run it with descent path --config b.yaml"))
        #expect(message { _ = try PathConfig.load(yaml: try text("sgd-vs-gd.yaml"), fileName: "c.yaml") } == (
                "c.yaml: optimizers: expected the lab's keys (optimizers:, function:, start:, plot:) (as in configs/path-beale.yaml) "
                + "for descent path, found a config "
                + "for descent compare; run it with descent compare --config c.yaml"))
        // An override can make a study of a training config.
        #expect(message { _ = try StudyConfig.load(yaml: try text("default.yaml"), fileName: "d.yaml", overrides: ["study.trials=2"]) }
                == "no error")
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

    @Test("--set with a list of optimizer blocks replaces the file's list, as the same list in the file would")
    func listOverride() throws {
        let file = "name: p\nfunction: sphere\noptimizers:\n  - {name: sgd, lr: 0.1}\n  - {name: adam, lr: 0.3}\n  - {name: lion}\n"
        let set = try PathConfig.load(yaml: file, fileName: "p.yaml",
                                      overrides: ["optimizers=[{name: schedule-free-sgd, lr: 0.2}, {name: adagrad, eps: 1.0e-7}]"])
        let written = try PathConfig.load(yaml: "name: p\nfunction: sphere\noptimizers:\n  - {name: schedule-free-sgd, lr: 0.2}\n"
                                          + "  - {name: adagrad, eps: 1.0e-7}\n", fileName: "q.yaml")
        #expect(set.optimizers.map(\.settings) == written.optimizers.map(\.settings))
        #expect(set.optimizers.map(\.settings.kind) == [.scheduleFreeSGD, .adagrad])
        // An item of the list stays reachable on its own.
        let one = try PathConfig.load(yaml: file, fileName: "p.yaml", overrides: ["optimizers[1].lr=0.05"])
        #expect(one.optimizers.map(\.settings.learningRate) == [0.1, 0.05, 1e-4])
    }

    @Test("the resolved YAML reads back to the same config, for every optimizer and schedule", arguments: [
        ["training.steps=7", "data.source=synthetic", "runtime.blas_threads=1", "training.batch=full"],
        ["optimizer.name=adam", "optimizer.betas=[0.8, 0.99]", "optimizer.amsgrad=true", "optimizer.eps=1e-7",
         "schedule.name=cosine", "schedule.warmup_steps=10", "schedule.min_lr=1e-5", "training.clip_norm=1.5"],
        ["optimizer.name=adamw", "optimizer.variant=kingma-ba", "schedule.name=step", "schedule.step_size=100",
         "schedule.batch_scaling=sqrt", "schedule.reference_batch=256"],
        ["optimizer.name=rmsprop", "optimizer.centered=true", "optimizer.momentum=0.5", "optimizer.variant=eps-inside-sqrt",
         "schedule.name=exponential", "schedule.gamma=0.99"],
        ["optimizer.name=adagrad", "optimizer.lr_decay=0.01", "optimizer.initial_accumulator_value=0.1"],
        ["optimizer.name=adadelta", "optimizer.rho=0.95"],
        ["optimizer.name=nadam", "optimizer.momentum_decay=0.01", "schedule.name=cosine", "schedule.decay_steps=500"],
        ["optimizer.name=angulargrad", "optimizer.variant=tan", "optimizer.weight_decay=0.0001"],
        ["optimizer.name=momentum", "optimizer.variant=sutskever"],
        ["optimizer.name=nesterov", "optimizer.momentum=0.95"],
        ["optimizer.name=schedule-free-sgd", "optimizer.warmup_steps=50", "optimizer.r=1", "optimizer.weight_lr_power=0"],
        ["optimizer.name=schedule-free-adamw", "optimizer.betas=[0.95, 0.99]", "optimizer.weight_decay=0.01"],
        ["optimizer.name=muon", "optimizer.ns_steps=3", "optimizer.others=rmsprop", "optimizer.others_lr=0.01", "optimizer.nesterov=false"],
        ["optimizer.name=adafactor", "optimizer.beta2_decay=-0.5", "optimizer.eps1=1e-30", "optimizer.d=2", "optimizer.weight_decay=0.01"],
    ])
    func resolvedRoundTrip(_ overrides: [String]) throws {
        let c = try load("", overrides)
        #expect(try load(c.resolvedYAML) == c)
        #expect(c != RunConfig())
    }

    @Test("each optimizer starts from torch.optim's defaults", arguments: [
        ("sgd", 0.01), ("adagrad", 1e-2), ("rmsprop", 1e-2), ("adadelta", 1.0), ("adam", 1e-3), ("adamw", 1e-3),
        ("nadam", 2e-3), ("angulargrad", 1e-3),
    ])
    func optimizerDefaults(_ name: String, _ lr: Double) throws {
        let c = try load("optimizer: {name: \(name)}")
        #expect(c.optimizer.learningRate == lr)
        #expect(c.optimizer.weightDecay == (name == "adamw" ? 1e-2 : 0))
        #expect(c.optimizer.eps == ["adagrad": 1e-10, "adadelta": 1e-6][name, default: 1e-8])
    }

    @Test("bad input names the source, the key, what was expected and what was found", arguments: [
        ("optimizer:\n  lrr: 0.1\n", [String](),
         "c.yaml: optimizer.lrr: expected a known key (did you mean 'optimizer.lr'?), found an unknown key"),
        ("epochs: 3\n", [], "c.yaml: epochs: expected a known key, found an unknown key"),
        ("optimizer:\n  lr: fast\n", [], "c.yaml: optimizer.lr: expected a number > 0, found 'fast'"),
        ("optimizer:\n  lr: -0.1\n", [], "c.yaml: optimizer.lr: expected a number > 0, found '-0.1'"),
        ("", ["optimizer.lr=0"], "--set: optimizer.lr: expected a number > 0, found '0'"),
        ("optimizer: {name: muon, others: muon}\n", [], "c.yaml: optimizer.others: expected an element-wise rule for the tensors that "
         + "are not matrices (sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, adamw, nadam, angulargrad, radam, adamax, "
         + "lion, asgd, rprop), found 'muon'"),
        ("optimizer: {name: muon, ns_steps: 2.5}\n", [], "c.yaml: optimizer.ns_steps: expected a whole number in [1, 99], found '2.5'"),
        ("optimizer: {name: schedule-free-sgd, momentum: 0}\n", [], "c.yaml: optimizer.momentum: expected a number in (0, 1) for schedule-free-sgd, found 0.0"),
        ("training:\n  batch: half\n", [], "c.yaml: training.batch: expected an integer in 1...2147483647 or full, found 'half'"),
        ("training:\n  epochs: 2.5\n", [], "c.yaml: training.epochs: expected an integer in 1...1000000, found '2.5'"),
        ("model:\n  hidden: 100\n", [],
         "c.yaml: model.hidden: expected a list of integers in 1...1000000, like [100, 100], found '100'"),
        ("optimizer:\n  name: adamx\n", [],
         "c.yaml: optimizer.name: expected one of sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, adamw, nadam, angulargrad, radam, adamax, lion, asgd, rprop, schedule-free-sgd, schedule-free-adamw, muon, adafactor, shampoo, lbfgs, newton, saddle-free-newton, newton-cg, found 'adamx'"),
        ("optimizer:\n  name: adam\n  variant: sutskever\n", [],
         "c.yaml: optimizer.variant: expected one of torch, no-bias-correction, kingma-ba, eps-inside-sqrt, eps-inside-sqrt-no-bias-correction for adam, found 'sutskever'"),
        ("optimizer:\n  name: adam\n", ["optimizer.betas=[0.9, 1.0]"],
         "--set: optimizer.betas: expected two numbers in [0, 1), like [0.9, 0.999], found [0.9, 1.0]"),
        ("optimizer:\n  name: nadam\n  betas: 0.9\n", [],
         "c.yaml: optimizer.betas: expected two numbers in [0, 1), like [0.9, 0.999], found '0.9'"),
        ("optimizer:\n  name: adamw\n  betas: [-0.1, 0.999]\n", [],
         "c.yaml: optimizer.betas: expected two numbers in [0, 1), like [0.9, 0.999], found [-0.1, 0.999]"),
        ("optimizer:\n  name: rmsprop\n  eps: -1e-8\n", [], "c.yaml: optimizer.eps: expected a number ≥ 0, found '-1e-8'"),
        ("optimizer:\n  name: rmsprop\n  alpha: 1\n", [], "c.yaml: optimizer.alpha: expected a number in [0, 1), found '1'"),
        ("optimizer:\n  name: adadelta\n  rho: 1.5\n", [], "c.yaml: optimizer.rho: expected a number in [0, 1), found '1.5'"),
        ("optimizer:\n  name: adam\n  lr: -0.001\n", [], "c.yaml: optimizer.lr: expected a number > 0, found '-0.001'"),
        ("optimizer:\n  name: adam\n  momentum: 0.9\n", [],
         "c.yaml: optimizer.momentum: expected a key that adam reads (variant, lr, betas, eps, weight_decay, amsgrad), found a key of sgd, momentum, nesterov, rmsprop, schedule-free-sgd, muon, shampoo"),
        ("optimizer:\n  name: momentum\n  nesterov: true\n  dampening: 0.1\n", [],
         "c.yaml: optimizer.nesterov: expected momentum > 0 and dampening 0 with Nesterov momentum, found momentum 0.9, dampening 0.1"),
        ("optimizer:\n  name: nesterov\n  momentum: 0\n", [],
         "c.yaml: optimizer.momentum: expected a number in (0, 1) for nesterov, found 0.0"),
        ("optimizer:\n  name: momentum\n  variant: ewma\n  nesterov: true\n", [],
         "c.yaml: optimizer.nesterov: expected false with variant ewma (Nesterov is the torch form), found true"),
        ("optimizer:\n  name: angulargrad\n  variant: sin\n", [],
         "c.yaml: optimizer.variant: expected one of cos, tan, paper-cos, paper-tan for angulargrad, found 'sin'"),
        ("schedule:\n  name: linear\n", [],
         "c.yaml: schedule.name: expected one of constant, step, exponential, cosine, found 'linear'"),
        ("schedule:\n  name: cosine\n  gamma: 0.5\n", [],
         "c.yaml: schedule.gamma: expected a key that the cosine schedule reads (warmup_steps, decay_steps, min_lr, batch_scaling, reference_batch), found a key of step, exponential"),
        ("schedule:\n  batch_scaling: linear\n", [],
         "c.yaml: schedule.reference_batch: expected the global batch the lr was tuned for (an integer ≥ 1) with batch_scaling linear, found no value"),
        ("schedule:\n  batch_scaling: cubic\n", [], "c.yaml: schedule.batch_scaling: expected one of none, linear, sqrt, found 'cubic'"),
        ("training:\n  clip_norm: -1\n", [], "c.yaml: training.clip_norm: expected a number ≥ 0 (0: no clipping), found '-1'"),
        ("optimizer:\n  momentum: 1.0\n", [], "c.yaml: optimizer.momentum: expected a number in [0, 1), found '1.0'"),
        ("optimizer:\n  name: sgd\n  nesterov: true\n", [],
         "c.yaml: optimizer.nesterov: expected momentum > 0 and dampening 0 with Nesterov momentum, found momentum 0.0, dampening 0.0"),
        ("training:\n  shuffle: maybe\n", [], "c.yaml: training.shuffle: expected true or false, found 'maybe'"),
        ("- a\n- b\n", [], "c.yaml: (document): expected a mapping of keys to values, found a list of 2 items"),
        // A list's bad item is named by its index; an override past the end of a list of blocks is the override's.
        ("", ["model.hidden=[256, abc]"], "--set: model.hidden[1]: expected an integer in 1...1000000, as every item of model.hidden, found 'abc'"),
        ("seeds: [1, 2, -3]\n", [], "c.yaml: seeds[2]: expected an integer ≥ 0, as every item of seeds, found '-3'"),
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

@Suite("Launch sanity")
struct LaunchCheckTests {
    @Test("the world size is compared with mpirun's, else with srun's step; other launches pass")
    func rules() {
        // mpirun's count is authoritative when present.
        #expect(LaunchCheck.problem(worldSize: 2, environment: ["OMPI_COMM_WORLD_SIZE": "2", "SLURM_PROCID": "0",
                                                                "SLURM_STEP_NUM_TASKS": "1"]) == nil)
        #expect(LaunchCheck.problem(worldSize: 1, environment: ["OMPI_COMM_WORLD_SIZE": "2"])?
            .hasPrefix("mpirun started OMPI_COMM_WORLD_SIZE=2 ranks, but MPI gives this process a world of 1") == true)
        // srun's tasks of a step.
        #expect(LaunchCheck.problem(worldSize: 4, environment: ["SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4"]) == nil)
        #expect(LaunchCheck.problem(worldSize: 1, environment: ["SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "4"])?
            .contains("they would train as 4 separate 1-rank jobs") == true)
        // A batch script's own step (no srun task id), or no launcher at all.
        #expect(LaunchCheck.problem(worldSize: 1, environment: ["SLURM_NTASKS": "2", "SLURM_JOB_ID": "7"]) == nil)
        #expect(LaunchCheck.problem(worldSize: 1, environment: [:]) == nil)
        #expect(LaunchCheck.problem(worldSize: 1, environment: ["OMPI_COMM_WORLD_SIZE": "two"]) != nil)
    }

    @Test("descent run directly in a batch script of several tasks gets a note; launched ranks and plain runs do not")
    func batchStepNote() {
        // What a real `sbatch -n 2` script's own step sees (checked on slurmd 22.05): no SLURM_STEP_NUM_TASKS.
        let batchStep = ["SLURM_JOB_ID": "7", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"]
        #expect(LaunchCheck.note(worldSize: 1, environment: batchStep)?
            .hasPrefix("this Slurm job has SLURM_NTASKS=2 tasks but descent runs as 1 rank") == true)
        #expect(LaunchCheck.note(worldSize: 2, environment: batchStep.merging(["OMPI_COMM_WORLD_SIZE": "2"]) { $1 }) == nil)
        #expect(LaunchCheck.note(worldSize: 2, environment: batchStep.merging(["SLURM_STEP_NUM_TASKS": "2"]) { $1 }) == nil)
        #expect(LaunchCheck.note(worldSize: 1, environment: ["SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"]) == nil)
        #expect(LaunchCheck.note(worldSize: 1, environment: [:]) == nil)
    }
}
