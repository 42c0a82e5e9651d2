// `descent compare`: config messages, a batch-size comparison end to end under mpirun, and optimizer replicas
// that are bit-identical to the same optimizers trained alone.
import DescentTestSupport
import Foundation
import Reports
import Testing
@testable import Config
@testable import Experiments
@testable import Training

/// A synthetic comparison config.
func writeCompareConfig(in dir: URL, name: String, compare: String) throws -> URL {
    let url = dir.appendingPathComponent("\(name).yaml")
    try """
    name: \(name)
    seed: 5
    data: {source: synthetic, train_samples: 480, test_samples: 160, features: 12, classes: 3, noise: 1.2}
    model: {hidden: [16, 16]}
    optimizer: {name: sgd, lr: 0.05}
    training: {batch: 32, epochs: 2, hash_check_every: 4}
    output: {dir: \(dir.appendingPathComponent("runs").path)}
    compare:
    \(compare)
    """.write(to: url, atomically: true, encoding: .utf8)
    return url
}

@Suite("compare under mpirun", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct CompareMPITests {
    @Test("a batch-size comparison (including full-batch GD) runs end to end and leaves its report")
    func batches() throws {
        let dir = try temporaryDirectory("compare")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeCompareConfig(in: dir, name: "sizes", compare: "  batches: [16, 64, full]\n  lr: [0.05, 0.1, 0.3]\n  target_loss: 0.9")
        let r = try runDescent(ranks: 2, ["compare", "--config", config.path, "--progress", "off"], directory: dir)
        #expect(r.status == 0 && !r.timedOut, "\(r.stderr)")
        let run = dir.appendingPathComponent("runs/sizes")
        let rows = try readCSV(run.appendingPathComponent("comparison.csv"))
        #expect(rows.map { $0["batch"]! } == ["16", "64", "full"])
        // 480 samples: 30, 8 and 1 steps per epoch, 2 epochs each.
        #expect(rows.map { $0["steps"]! } == ["60", "16", "2"])
        #expect(rows.allSatisfy { Double($0["final_test_accuracy"] ?? "") != nil })
        for variant in ["batch-16-lr-0.05", "batch-64-lr-0.1", "batch-full-lr-0.3"] {
            let hash = try String(contentsOf: run.appendingPathComponent("\(variant)/final_hash"), encoding: .utf8)
            #expect(rows.contains { hash.hasPrefix($0["final_hash"]!) }, "\(variant)")
        }
        for chart in ["loss_vs_epoch.svg", "loss_vs_step.svg", "loss_vs_seconds.svg", "test_accuracy.svg"] {
            let svg = try String(contentsOf: run.appendingPathComponent(chart), encoding: .utf8)
            #expect(xmlError(svg) == nil, "\(chart)")
        }
        let html = try String(contentsOf: run.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("batch full lr 0.3") && html.components(separatedBy: "<svg ").count >= 5)
        // Rendered, each chart shows every variant's colour (where rsvg-convert is installed).
        if let rsvg = rsvgConvert {
            for chart in ["loss_vs_epoch.svg", "test_accuracy.svg", "batch-16-lr-0.05/loss.svg"] {
                let png = dir.appendingPathComponent("chart.png")
                let render = try runProgram(rsvg, [run.appendingPathComponent(chart).path, "-o", png.path])
                try #require(render.status == 0, "\(render.stderr)")
                let image = try readPNG(Data(contentsOf: png))
                let lines = chart.hasPrefix("batch-") ? 2 : 3
                for k in 0..<lines {
                    #expect(pixelCount(image, near: Palette.style(k).colour) >= 20, "\(chart): series \(k) missing")
                }
            }
        }
    }

    @Test("seeds repeat every variant; each seed's run is that seed's run trained alone, and the report gives the spread")
    func seeds() throws {
        let dir = try temporaryDirectory("seeds")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeCompareConfig(in: dir, name: "repeats", compare: "  batches: [32, full]\n  lr: [0.05, 0.3]\n  target_loss: 0.9")
        let r = try runDescent(ranks: 2, ["compare", "--config", config.path, "--progress", "off", "--set", "seeds=3"], directory: dir)
        #expect(r.status == 0 && !r.timedOut, "\(r.stderr)")
        let run = dir.appendingPathComponent("runs/repeats")
        let rows = try readCSV(run.appendingPathComponent("comparison.csv"))
        #expect(rows.map { $0["seed"]! } == ["5", "6", "7", "5", "6", "7"])
        #expect(Set(rows.map { $0["final_hash"]! }).count == 6)
        let spread = try readCSV(run.appendingPathComponent("comparison_seeds.csv"))
        let accuracy = spread.filter { $0["metric"] == "final_test_accuracy" }
        #expect(accuracy.map { $0["variant"]! } == ["batch 32 lr 0.05", "batch full lr 0.3"] && accuracy.allSatisfy { $0["runs"] == "3" })
        for (row, variant) in zip(accuracy, ["batch 32 lr 0.05", "batch full lr 0.3"]) {
            // The mean and the interval come from the three per-seed rows of comparison.csv.
            let values = rows.filter { $0["variant"] == variant }.compactMap { Double($0["final_test_accuracy"]!) }
            let mean = values.reduce(0, +) / 3
            let (low, high) = (Double(row["ci95_low"]!)!, Double(row["ci95_high"]!)!)
            #expect(abs(Double(row["mean"]!)! - mean) < 1e-4 && low <= mean && mean <= high, "\(row)")
            #expect(values.count == 3 && (values.min()! - 1e-4...values.max()! + 1e-4).contains(Double(row["median"]!)!))
        }
        // One seed's folder holds the config that trains it alone, to the same bits.
        let folder = run.appendingPathComponent("batch-32-lr-0.05-seed-6")
        let alone = try runDescent(ranks: 2, ["train", "--config", folder.appendingPathComponent("config.yaml").path, "--progress", "off",
                                              "--set", "output.dir=\(dir.appendingPathComponent("alone").path)"], directory: dir)
        #expect(alone.status == 0, "\(alone.stderr)")
        let together = try String(contentsOf: folder.appendingPathComponent("final_hash"), encoding: .utf8)
        let single = try String(contentsOf: dir.appendingPathComponent("alone/batch-32-lr-0.05-seed-6/final_hash"), encoding: .utf8)
        #expect(together == single)
        let html = try String(contentsOf: run.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("Across seeds") && html.contains("95 % interval"))
        let chart = try String(contentsOf: run.appendingPathComponent("loss_vs_step.svg"), encoding: .utf8)
        #expect(chart.components(separatedBy: "data-band=\"quartiles\"").count == 3 && xmlError(chart) == nil)

        // `descent train` with seeds: one folder per seed and the same report; no resume.
        let train = try writeSyntheticConfig(in: dir, name: "plain", epochs: 1, extra: "seeds: [2, 9]")
        let t = try runDescent(ranks: 2, ["train", "--config", train.path, "--progress", "off"], directory: dir)
        #expect(t.status == 0, "\(t.stderr)")
        let plain = dir.appendingPathComponent("runs/plain")
        #expect(try readCSV(plain.appendingPathComponent("comparison.csv")).map { $0["seed"]! } == ["2", "9"])
        #expect(FileManager.default.fileExists(atPath: plain.appendingPathComponent("plain-seed-9/model.safetensors").path))
        let resumed = try runDescent(ranks: 1, ["train", "--config", train.path, "--resume"], directory: dir)
        #expect(resumed.status != 0 && resumed.stderr.contains("seeds") && resumed.stderr.contains("no --resume"), "\(resumed.stderr)")
    }

    @Test("optimizer replicas on one data stream are bit-identical to each optimizer trained alone")
    func replicasMatchAlone() throws {
        let dir = try temporaryDirectory("replicas")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeCompareConfig(in: dir, name: "family", compare: """
              optimizers:
                - {name: sgd, lr: 0.05}
                - {name: momentum, lr: 0.02, momentum: 0.9}
                - {name: adam, lr: 0.003}
                - {name: adagrad, lr: 0.05, label: ada}
              target_loss: 1.05
            """)
        let r = try runDescent(ranks: 2, ["compare", "--config", config.path, "--progress", "off"], directory: dir)
        #expect(r.status == 0 && !r.timedOut, "\(r.stderr)")
        let run = dir.appendingPathComponent("runs/family")
        let rows = try readCSV(run.appendingPathComponent("comparison.csv"))
        #expect(rows.map { $0["variant"]! } == ["sgd", "momentum", "adam", "ada"])
        #expect(Set(rows.map { $0["final_hash"]! }).count == 4)
        // Seconds to the target and the run's seconds are read from one clock, the replica's metrics.csv wall_s
        // (train_s is the replica's own share of the training time, another clock).
        #expect(rows.contains { $0["wall_s_to_target"]?.isEmpty == false }, "\(rows)")
        for row in rows {
            let last = try #require(try readCSV(run.appendingPathComponent("\(row["variant"]!)/metrics.csv")).last)
            let wall = try #require(Double(row["wall_s"] ?? ""), "\(row)")
            #expect(abs(wall - Double(last["wall_s"]!)!) <= 0.006, "\(row)")
            if let reached = Double(row["wall_s_to_target"] ?? "") { #expect(reached <= wall) }
        }
        // The comparison's own config.yaml stays beside the replicas' folders, and loads back as the comparison.
        let saved = try String(contentsOf: run.appendingPathComponent("config.yaml"), encoding: .utf8)
        #expect(try CompareConfig.load(yaml: saved, fileName: "config.yaml").variants.map(\.label) == ["sgd", "momentum", "adam", "ada"])
        for label in ["sgd", "momentum", "adam", "ada"] {
            // Each replica's folder holds the config that trains it alone: same seed, data, model and optimizer.
            let alone = try runDescent(ranks: 2, ["train", "--config", run.appendingPathComponent("\(label)/config.yaml").path,
                                                  "--progress", "off", "--set", "output.dir=\(dir.appendingPathComponent("alone").path)"],
                                       directory: dir)
            #expect(alone.status == 0, "\(alone.stderr)")
            let together = try String(contentsOf: run.appendingPathComponent("\(label)/final_hash"), encoding: .utf8)
            let single = try String(contentsOf: dir.appendingPathComponent("alone/\(label)/final_hash"), encoding: .utf8)
            #expect(together == single, "\(label): \(together) together, \(single) alone")
            // And the epoch rows' losses and accuracies (the comparison logs step rows more often).
            let epochRows = { (url: URL) in try readCSV(url).filter { $0["kind"] == "epoch" }
                .map { [$0["batch_loss"]!, $0["train_loss"]!, $0["test_loss"]!, $0["test_accuracy"]!] } }
            let a = try epochRows(run.appendingPathComponent("\(label)/metrics.csv"))
            #expect(a.count == 2)
            #expect(a == (try epochRows(dir.appendingPathComponent("alone/\(label)/metrics.csv"))))
        }
    }
}

@Suite("scaling sweep under mpirun", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct ScalingSweepTests {
    @Test("launch/scale runs np 1 and 2 on synthetic data and tabulates throughput, speedup and step phases",
          arguments: ["strong", "weak"])
    func sweep(_ mode: String) throws {
        let dir = try temporaryDirectory("scale")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: "tiny")
        let exe = try #require(descentExecutable)
        let r = try runScript("scale", [config.path],
                              environment: ["DESCENT": exe.path, "NPS": "1 2", "STEPS": "12", "MODE": mode, "PER_RANK": "32",
                                            "OUT": dir.path], directory: dir)
        #expect(r.status == 0 && !r.timedOut, "\(r.stderr)")
        let folder = dir.appendingPathComponent("tiny-scale-\(mode)")
        let rows = try readCSV(folder.appendingPathComponent("scaling.csv"))
        #expect(rows.map { $0["ranks"]! } == ["1", "2"])
        #expect(rows.map { $0["global_batch"]! } == (mode == "strong" ? ["64", "64"] : ["32", "64"]))
        #expect(rows[0]["speedup"] == "1.00" && rows[0]["efficiency"] == "1.00")
        if mode == "strong" {  // one chunk size for the series, so one answer
            #expect(Set(rows.map { $0["final_hash"] ?? "" }).count == 1 && !(rows[0]["final_hash"] ?? "").isEmpty, "\(rows)")
        }
        for row in rows {
            let step = try #require(Double(row["step_ms"]!))
            let parts = ["compute_ms", "exchange_ms", "update_ms"].compactMap { row[$0].flatMap(Double.init) }
            #expect(parts.count == 3 && parts.allSatisfy { $0 >= 0 } && step > 0)
        }
        #expect(r.stdout.contains("ranks") && r.stdout.contains("speedup"))
        for chart in ["scaling.svg", "phases.svg"] {
            #expect(xmlError(try String(contentsOf: folder.appendingPathComponent(chart), encoding: .utf8)) == nil)
        }
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("report.html").path))
    }
}
