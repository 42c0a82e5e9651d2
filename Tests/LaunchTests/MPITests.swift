// End-to-end runs of the built `descent` under real mpirun: hashes agree across ranks, full-batch GD is the same
// at any world size, and bad input stops every rank with one message and no output.
import DescentTestSupport
import Foundation
import Testing

@Suite("Under mpirun", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct MPITests {
    @Test("every rank ends with the same parameter hash, and the run folder holds what it promises", arguments: [2, 3])
    func ranksAgree(ranks: Int) throws {
        let dir = try temporaryDirectory()
        let config = try writeSyntheticConfig(in: dir, name: "agree")
        let r = try runDescent(ranks: ranks, ["train", "--config", config.path], directory: dir)
        #expect(r.status == 0 && !r.timedOut, "\(r.stderr)")
        let run = dir.appendingPathComponent("runs/agree")
        let summary = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
        let hashes = try #require(summary["rank_hashes"] as? [String])
        let final = try String(contentsOf: run.appendingPathComponent("final_hash"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(hashes.count == ranks)
        #expect(Set(hashes) == [final])
        #expect(r.stdout.contains("final parameter hash \(final)"))
        #expect(summary["ranks"] as? Int == ranks)
        // 600 samples / batch 64 = 10 steps per epoch (the last one smaller), 2 epochs.
        #expect(summary["steps"] as? Int == 20 && summary["samples"] as? Int == 1200)
        let rows = try readCSV(run.appendingPathComponent("metrics.csv"))
        let epochs = rows.filter { $0["kind"] == "epoch" }
        #expect(epochs.map { $0["step"] } == ["10", "20"])
        #expect(epochs.allSatisfy { Double($0["test_accuracy"] ?? "") != nil && Double($0["train_loss"] ?? "") != nil })
        #expect(rows.filter { $0["kind"] == "step" }.map { $0["step"]! } == ["5", "10", "15", "20"])
        // With two or more ranks the noise scale is measured on every 10th step (0, 10, …): each epoch row and
        // the step rows whose window holds such a step carry a positive value, the others none.
        let noise = rows.map { $0["noise_scale"] ?? "" }
        #expect(noise.map { $0.isEmpty ? 0 : (Double($0) ?? -1) > 0 ? 1 : -1 } == [1, 0, 1, 1, 0, 1], "\(noise)")
        #expect((summary["noise_scale"] as? Double).map { $0 > 0 } == true)
        // The report: charts that parse as XML, and an HTML page that embeds them.
        for chart in ["loss.svg", "accuracy.svg", "noise_scale.svg"] {
            let svg = try String(contentsOf: run.appendingPathComponent(chart), encoding: .utf8)
            #expect(xmlError(svg) == nil, "\(chart): \(xmlError(svg) ?? "")")
        }
        let html = try String(contentsOf: run.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.components(separatedBy: "<svg ").count == 4 && html.contains(final))
        let jsonl = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(jsonl.count == rows.count)
        for line in jsonl { #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil) }
        let params = try Data(contentsOf: run.appendingPathComponent("parameters.f32"))
        #expect(params.count == 4 * (summary["parameter_count"] as? Int ?? -1))
        let resolved = try String(contentsOf: run.appendingPathComponent("config.yaml"), encoding: .utf8)
        #expect(resolved.contains("lr: 0.05") && resolved.contains("batch: 64"))
    }

    @Test("time-exchange appends timings under mpirun; scaling-report --project fits them, checks a run and projects it")
    func projection() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: "proj")
        #expect(try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir).status == 0)
        let timings = dir.appendingPathComponent("timings.csv").path
        for ranks in [1, 2] {
            let r = try runDescent(ranks: ranks, ["time-exchange", "--parameters", "1000,30000", "--repeats", "3", "--csv", timings],
                                   directory: dir)
            #expect(r.status == 0 && r.stdout.contains("\(ranks) ranks,"), "\(r.stderr)")
        }
        let rows = try readCSV(URL(fileURLWithPath: timings))
        #expect(rows.map { $0["ranks"]! } == ["1", "1", "2", "2"] && rows.allSatisfy { (Double($0["seconds"]!) ?? 0) > 0 })
        let run = dir.appendingPathComponent("runs/proj").path
        let r = try runDescent(ranks: 0, ["scaling-report", "--project", run, "--timings", timings, "--fit-ranks", "1,2",
                                          "--network", "10Gb/s,5us", "--ranks", "8,16", "--check", run], directory: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("shm fit on 4 timings") && r.stdout.contains("check \(run): 2 ranks on 1 host"))
        #expect(r.stdout.contains("strong scaling, global batch 64") && r.stdout.contains("onto 10 Gb/s, 5 µs"), "\(r.stdout)")
        let bad = try runDescent(ranks: 0, ["scaling-report", "--project", run, "--timings", timings, "--network", "fast"], directory: dir)
        #expect(bad.status != 0 && bad.stderr.contains("--network: expected a bandwidth and a latency"), "\(bad.stderr)")
    }

    @Test("descent eval reads a run's model.safetensors and config and writes eval.csv with the run's test accuracy, one folder per split; 2 ranks share the work and write the same files")
    func evalCommand() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: "ev")
        #expect(try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir).status == 0)
        let run = dir.appendingPathComponent("runs/ev")
        let r = try runDescent(ranks: 0, ["eval", "--run", run.path], directory: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
        let row = try #require(try readCSV(run.appendingPathComponent("eval/test/eval.csv")).first)
        #expect(Double(row["accuracy"] ?? "") == summary["test_accuracy"] as? Double, "\(row)")
        // The training split gets its own folder and leaves the test split's files as they were.
        let train = try runDescent(ranks: 0, ["eval", "--run", run.path, "--split", "train"], directory: dir)
        #expect(train.status == 0, "\(train.stderr)")
        #expect(try readCSV(run.appendingPathComponent("eval/train/eval.csv")).first?["split"] == "train")
        #expect(try readCSV(run.appendingPathComponent("eval/test/eval.csv")).first == row)
        // Two ranks each evaluate half the split and add loss, counts and confusion cells: the same files, byte for byte.
        let shared = try runDescent(ranks: 2, ["eval", "--run", run.path, "--split", "train", "--out", run.path + "/eval-2"], directory: dir)
        #expect(shared.status == 0, "\(shared.stderr)")
        for file in ["eval.csv", "confusion.csv"] {
            let one = try String(contentsOf: run.appendingPathComponent("eval/train/" + file), encoding: .utf8)
            #expect(try String(contentsOf: run.appendingPathComponent("eval-2/" + file), encoding: .utf8) == one, "\(file)")
        }
        let bad = try runDescent(ranks: 0, ["eval", "--run", run.path, "--set", "model.hidden=[3]"], directory: dir)
        // A model of other tensors: the names are compared first, before any shape.
        #expect(bad.status != 0 && bad.stderr.contains("tensors: expected the model's 0.weight, 0.bias, 2.weight, 2.bias, found also"),
                "\(bad.stderr)")
    }

    @Test("with reduction: mpi, full-batch GD gives the same losses at np = 1, 2 and 3 (relative 1e-5)")
    func fullBatchAcrossWorldSizes() throws {
        let dir = try temporaryDirectory()
        var curves: [[Double]] = []
        for ranks in [1, 2, 3] {
            let name = "gd\(ranks)"
            let config = try writeSyntheticConfig(in: dir, name: name, extra: "")
            let r = try runDescent(ranks: ranks, ["train", "--config", config.path, "--set", "training.batch=full",
                                                  "--set", "training.epochs=3", "--set", "training.log_every=1",
                                                  "--set", "optimizer.name=sgd", "--set", "optimizer.lr=0.5",
                                                  "--set", "training.reduction=mpi"],
                                   directory: dir)
            #expect(r.status == 0, "\(r.stderr)")
            let rows = try readCSV(dir.appendingPathComponent("runs/\(name)/metrics.csv"))
            let losses = rows.filter { $0["kind"] == "step" }.compactMap { Double($0["batch_loss"] ?? "") }
            #expect(losses.count == 3)
            curves.append(losses)
        }
        #expect(curves[0][2] < curves[0][0])  // descent descends
        for curve in curves.dropFirst() {
            for (a, b) in zip(curve, curves[0]) { #expect(close(a, b, relative: 1e-5), "\(curve) vs \(curves[0])") }
        }
    }

    @Test("every optimizer and variant trains under mpirun -np 2 with equal hashes on both ranks", arguments: [
        "sgd", "momentum", "momentum sutskever", "momentum ewma", "nesterov", "adagrad", "adagrad eps-inside-sqrt",
        "rmsprop", "rmsprop eps-inside-sqrt", "adadelta", "adam", "adam no-bias-correction", "adam kingma-ba",
        "adamw", "nadam", "angulargrad", "angulargrad tan",
    ])
    func everyOptimizer(_ choice: String) throws {
        let parts = choice.split(separator: " ").map(String.init)
        let dir = try temporaryDirectory()
        let config = try writeSyntheticConfig(in: dir, name: "opt")
        // The whole optimizer block is replaced, so each runs with its own defaults.
        let block = "{name: \(parts[0])" + (parts.count > 1 ? ", variant: \(parts[1])" : "") + "}"
        let r = try runDescent(ranks: 2, ["train", "--config", config.path, "--set", "optimizer=\(block)",
                                          "--set", "training.steps=6", "--set", "training.log_every=1"], directory: dir)
        #expect(r.status == 0 && !r.timedOut, "\(r.stderr)")
        let run = dir.appendingPathComponent("runs/opt")
        let summary = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
        let hashes = try #require(summary["rank_hashes"] as? [String])
        #expect(hashes.count == 2 && Set(hashes).count == 1)
        let resolved = try String(contentsOf: run.appendingPathComponent("config.yaml"), encoding: .utf8)
        #expect(resolved.contains("name: \(parts[0])\n") && resolved.contains("variant: \(parts.count > 1 ? parts[1] : parts[0] == "angulargrad" ? "cos" : "torch")\n"))
        let losses = try readCSV(run.appendingPathComponent("metrics.csv")).filter { $0["kind"] == "step" }
            .compactMap { Double($0["batch_loss"] ?? "") }
        #expect(losses.count == 6 && losses.allSatisfy(\.isFinite))
        #expect(try String(contentsOf: run.appendingPathComponent("final_hash"), encoding: .utf8).hasPrefix(hashes[0]))
    }

    @Test("bad input: one message naming the key or file, non-zero exit, nothing written", arguments: [
        ("unknown key", ["--set", "optimizer.lrr=0.1"], "optimizer.lrr: expected a known key (did you mean 'optimizer.lr'?)"),
        ("bad learning rate", ["--set", "optimizer.lr=-1"], "optimizer.lr: expected a number > 0, found '-1'"),
        ("batch below ranks", ["--set", "training.batch=1", "--set", "training.reduction=mpi"],
         "training.batch: expected a global batch of at least 2 samples (one per rank) with reduction mpi, found 1"),
        ("missing data", ["--set", "data.source=fashion-mnist", "--set", "data.path=/nonexistent/fm"],
         "data file /nonexistent/fm/train-images-idx3-ubyte.gz: file: expected an IDX file (raw or gzipped), found no such file or directory"),
        ("unknown variant", ["--set", "optimizer.variant=nesterov"],
         "optimizer.variant: expected one of torch, sutskever, ewma for momentum, found 'nesterov'"),
        ("adam β2 of 1", ["--set", "optimizer={name: adam, betas: [0.9, 1]}"],
         "optimizer.betas: expected two numbers in [0, 1), like [0.9, 0.999], found [0.9, 1]"),
        ("missing config", ["--config", "/nonexistent.yaml"], "/nonexistent.yaml: (file): expected a readable YAML config file, found no such file"),
        ("cnn on flat samples", ["--set", "model={kind: cnn, layers: [conv 4 3, relu, pool]}"],
         "model.layers[0] (conv 4 3): expected images of height × width (× channels), found samples of shape (16)"),
        ("weights of another model", ["--set", "model.init_from=/nonexistent.safetensors"],
         "data file /nonexistent.safetensors: file: expected a readable safetensors file, found none"),
        // 40 G parameters: refused before any of them is allocated, with the estimate against the host's memory.
        ("a model beyond memory", ["--set", "model.hidden=[200000, 200000]"],
         "the run needs about 1040.4 GB (parameters 320.0 GB, optimizer state 80.0 GB, exchange 640.1 GB, workspace 0.3 GB) per rank for model 16-200000-200000-4, and this host has "),
    ])
    func badInput(_ label: String, _ arguments: [String], _ message: String) throws {
        let dir = try temporaryDirectory()
        let config = try writeSyntheticConfig(in: dir, name: "bad")
        let r = try runDescent(ranks: 2, ["train", "--config", config.path] + arguments, directory: dir)
        #expect(!r.timedOut, "\(label): hung")
        #expect(r.status != 0, "\(label)")
        let ours = r.stderr.split(separator: "\n").filter { $0.hasPrefix("descent:") }
        #expect(ours.count == 1, "\(label): \(r.stderr)")
        #expect(ours.first?.contains(message) == true, "\(label): \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/bad").path), "\(label)")
    }

    /// MPI that cannot start (an unknown messaging layer) is the witness: a config mistake reported through it would
    /// instead be MPI_Init's failure, so the config's own message proves that it came before MPI.
    @Test("a config mistake is reported before MPI starts, by every command that reads a config", arguments: [
        ("train", ["train", "--config", "CONFIG", "--set", "optimizer.lr=-1"], "--set: optimizer.lr: expected a number > 0, found '-1'"),
        ("compare", ["compare", "--config", "COMPARE", "--set", "compare.batches=[0]"], "--set: compare.batches: expected a list"),
        ("study", ["study", "--config", "STUDY", "--set", "study.trials=0"], "--set: study.trials: expected an integer"),
        ("eval", ["eval", "--run", "DIR", "--config", "CONFIG", "--set", "model.hidden=[abc]"], "--set: model.hidden[0]: expected an integer"),
    ])
    func configBeforeMPI(_ label: String, _ arguments: [String], _ message: String) throws {
        let dir = try temporaryDirectory()
        let config = try writeSyntheticConfig(in: dir, name: "early")
        let compare = try writeSyntheticConfig(in: dir, name: "pair", extra: "compare: {batches: [32, full]}")
        let study = try writeStudyConfig(in: dir)
        let files = ["CONFIG": config.path, "COMPARE": compare.path, "STUDY": study.path, "DIR": dir.path]
        let args = arguments.map { files[$0] ?? $0 }
        let broken = ["OMPI_MCA_pml": "no-such-layer"]
        let r = try runDescent(ranks: 0, args, directory: dir, environment: broken)
        #expect(r.status == 1 && !r.timedOut, "\(label): \(r.stderr)")
        #expect(ownLines(r).count == 1 && r.stderr.contains(message), "\(label): \(r.stderr)")
        #expect(!r.stderr.uppercased().contains("MPI_INIT"), "\(label): \(r.stderr)")
        // The witness works: the same command with a valid config gets as far as MPI and fails there (Open MPI's own
        // report of it comes or not, as its helper manages; descent says nothing of the config).
        let valid = try runDescent(ranks: 0, Array(args.prefix(while: { $0 != "--set" })), directory: dir, environment: broken)
        #expect(valid.status != 0 && !valid.timedOut && !valid.stderr.contains(message), "\(label): \(valid.stderr)")
    }

    @Test("processes that srun started as separate one-rank worlds refuse to train, each with the reason",
          arguments: [["SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2"], ["OMPI_COMM_WORLD_SIZE": "3"]])
    func singletonTrap(_ environment: [String: String]) throws {
        let dir = try temporaryDirectory()
        let config = try writeSyntheticConfig(in: dir, name: "alone")
        // Without mpirun the process is a one-rank world, as each task of a plain `srun -n 2` would be.
        let r = try runDescent(ranks: 0, ["train", "--config", config.path], directory: dir, environment: environment)
        #expect(r.status != 0 && !r.timedOut)
        let expected = environment["OMPI_COMM_WORLD_SIZE"] != nil
            ? "mpirun started OMPI_COMM_WORLD_SIZE=3 ranks, but MPI gives this process a world of 1"
            : "srun started SLURM_STEP_NUM_TASKS=2 tasks, but MPI gives this process a world of 1: they would train as 2 separate 1-rank jobs"
        #expect(ownLines(r).count == 1 && r.stderr.contains(expected), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs").path))
    }

    @Test("an existing run folder is kept unless --overwrite is given")
    func existingRunFolder() throws {
        let dir = try temporaryDirectory()
        let config = try writeSyntheticConfig(in: dir, name: "again")
        #expect(try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir).status == 0)
        let second = try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir)
        #expect(second.status != 0)
        #expect(second.stderr.contains("the run folder already exists (pass --overwrite"))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/again/summary.json").path))
        #expect(try runDescent(ranks: 2, ["train", "--config", config.path, "--overwrite"], directory: dir).status == 0)
    }
}
