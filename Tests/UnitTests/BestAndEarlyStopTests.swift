// checkpoint.best and training.early_stop: the best state kept as it was at its epoch end, and a run that ends when
// its metric stops improving.
import DescentTestSupport
import Foundation
import Testing
@testable import Collectives
@testable import Config
@testable import Training

@Suite struct BestAndEarlyStopTests {
    func config(_ dir: URL, name: String, _ overrides: [String]) throws -> RunConfig {
        try RunConfig.load(yaml: """
            name: \(name)
            data: {source: synthetic, train_samples: 200, test_samples: 40, features: 6, classes: 3, validation: 40}
            model: {hidden: [5, 4]}
            optimizer: {name: adam, lr: 0.01}
            training: {batch: 40, epochs: 6, log_every: 2}
            output: {dir: \(dir.path)}
            """, fileName: "test", overrides: overrides)
    }

    func summary(_ run: URL) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
    }

    @Test("early stop with a min_delta no epoch beats: the run ends one patience after the first epoch, best kept at epoch 1")
    func earlyStop() throws {
        let dir = try temporaryDirectory("best")
        defer { try? FileManager.default.removeItem(at: dir) }
        // 160 training samples at batch 40: 4 steps an epoch.
        let stopped = try config(dir, name: "stopped", ["checkpoint.best=val_loss", "training.early_stop={metric: val_loss, patience: 2, min_delta: 100}"])
        try Trainer.quiet(stopped, on: SingleProcessCommunicator()).run()
        let run = dir.appendingPathComponent("stopped")
        let s = try summary(run)
        #expect(s["steps"] as? Int == 12, "\(s)")   // epoch 1 sets the best, epochs 2 and 3 do not beat it by 100
        #expect((s["early_stopped"] as? [String: Any])?["step"] as? Int == 12)
        let best = try #require(s["best"] as? [String: Any])
        #expect(best["metric"] as? String == "val_loss" && (best["step"] as? Int).map { [4, 8, 12].contains($0) } == true)
        // The kept state is the one a run of exactly that many steps ends on.
        let bestStep = best["step"] as! Int
        let short = try config(dir, name: "short", ["training.steps=\(bestStep)"])
        try Trainer.quiet(short, on: SingleProcessCommunicator()).run()
        let kept = try SafeTensors.read(path: run.appendingPathComponent("best.safetensors").path)
        let reference = try SafeTensors.read(path: dir.appendingPathComponent("short/model.safetensors").path)
        #expect(kept.tensors == reference.tensors && kept.metadata["best_metric"] == "val_loss")
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("best.ckpt").path))
    }

    @Test("a run stopped before its early stop and resumed stops at the same step, on the same hash and best")
    func earlyStopResumed() throws {
        let dir = try temporaryDirectory("best-resume")
        defer { try? FileManager.default.removeItem(at: dir) }
        let keys = ["checkpoint.best=val_loss", "training.early_stop={metric: val_loss, patience: 2, min_delta: 100}"]
        let whole = try Trainer.quiet(config(dir, name: "whole", keys), on: SingleProcessCommunicator()).run()
        // Cut at step 6 (mid-epoch 2, after the best of epoch 1 and before the stop), then resumed.
        _ = try Trainer.quiet(config(dir, name: "cut", keys + ["training.steps=6"]), on: SingleProcessCommunicator()).run()
        let resumed = try Trainer.quiet(config(dir, name: "cut", keys + ["checkpoint.resume=auto"]), on: SingleProcessCommunicator()).run()
        #expect(resumed.steps == whole.steps && resumed.finalHash == whole.finalHash, "\(resumed.steps) \(whole.steps)")
        let best = { (name: String) in try summary(dir.appendingPathComponent(name))["best"] as? [String: Any] }
        #expect(try best("cut")?["step"] as? Int == best("whole")?["step"] as? Int)
    }

    @Test("the keys: a metric the data gives, patience ≥ 1, min_delta ≥ 0")
    func keys() throws {
        func message(_ yaml: String) -> String {
            do { _ = try RunConfig.load(yaml: yaml, fileName: "c.yaml"); return "no error" } catch { return "\(error)" }
        }
        #expect(message("checkpoint: {best: val_loss}\n")
                == "c.yaml: checkpoint.best: expected a metric the data gives (val_loss needs data.validation), found val_loss")
        #expect(message("training: {early_stop: {metric: loss}}\n").hasPrefix("c.yaml: training.early_stop.metric: expected one of none, train_loss"))
        #expect(message("training: {early_stop: {metric: test_loss, patience: 0}}\n").contains("training.early_stop.patience"))
        #expect(message("training: {early_stop: {metric: test_loss, min_delta: -1}}\n").contains("training.early_stop.min_delta"))
        let c = try RunConfig.load(yaml: "training: {early_stop: {metric: test_loss, patience: 3}}\ncheckpoint: {best: test_accuracy}\n", fileName: "c.yaml")
        #expect(try RunConfig.load(yaml: c.resolvedYAML, fileName: "again.yaml") == c)
        #expect(c.training.earlyStop == RunConfig.EarlyStop(metric: .testLoss, patience: 3, minDelta: 0) && c.checkpoint.best == .testAccuracy)
    }
}
