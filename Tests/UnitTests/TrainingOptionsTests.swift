// The trainer applies the learning-rate schedule, batch scaling and gradient clipping it is configured with.
import Collectives
import Config
import DescentTestSupport
import Experiments
import Foundation
import Numerics
import Testing
import Training

@Suite("Schedules and clipping in training")
struct TrainingOptionsTests {
    func train(_ overrides: [String], in dir: URL? = nil) throws -> [[String: String]] {
        let dir = try dir ?? temporaryDirectory()
        let c = try RunConfig.load(yaml: """
            name: options
            data: {source: synthetic, train_samples: 256, test_samples: 64, features: 8, classes: 3}
            model: {hidden: [16]}
            optimizer: {name: sgd, lr: 0.2}
            training: {batch: 32, steps: 12, log_every: 1}
            output: {dir: \(dir.path)}
            """, fileName: "test", overrides: overrides)
        let trainer = try Trainer(config: c, communicator: SingleProcessCommunicator(),
                                  console: Console(enabled: false, interactive: false))
        try trainer.run()
        return try readCSV(dir.appendingPathComponent("options/metrics.csv")).filter { $0["kind"] == "step" }
    }

    @Test("the report and the metrics name one rate: the batch-scaled one (linear, 16 → 32: 0.4)")
    func oneRateEverywhere() throws {
        let dir = try temporaryDirectory()
        let rows = try train(["schedule.batch_scaling=linear", "schedule.reference_batch=16"], in: dir)
        #expect(rows.allSatisfy { $0["lr"] == "0.4" }, "\(rows.map { $0["lr"] ?? "" })")
        let report = try String(contentsOf: dir.appendingPathComponent("options/report.html"), encoding: .utf8)
        #expect(report.contains("sgd lr 0.4 (linear-scaled at batch 16)"), "the report's subtitle")
        #expect(!report.contains("sgd lr 0.2"))
    }

    @Test("the lr column holds every step's scheduled rate: 4 warmup steps, then a cosine over the remaining 8")
    func scheduledRateIsLogged() throws {
        let rows = try train(["schedule.name=cosine", "schedule.warmup_steps=4", "schedule.batch_scaling=linear",
                              "schedule.reference_batch=16"])
        let lr = rows.compactMap { Double($0["lr"] ?? "") }
        #expect(lr.count == 12)
        let base = 0.2 * 32 / 16  // linear scaling from batch 16 to 32
        for t in 1...12 {
            let expected = t <= 4 ? base * Double(t) / 4 : base * (1 + cos(Double.pi * Double(t - 5) / 8)) / 2
            #expect(close(lr[t - 1], expected, relative: 1e-12, floor: 1e-12), "step \(t)")
        }
    }

    @Test("clipping to a tiny norm slows training down; a huge limit changes nothing")
    func clipping() throws {
        let plain = try train([]), loose = try train(["training.clip_norm=1e9"]), tight = try train(["training.clip_norm=1e-3"])
        let loss = { (rows: [[String: String]]) in Double(rows.last!["batch_loss"]!)! }
        #expect(plain.map { $0["batch_loss"] } == loose.map { $0["batch_loss"] })
        // Each step moves θ by at most lr · 1e-3, so the loss barely moves from its start.
        let first = Double(tight.first!["batch_loss"]!)!
        #expect(abs(loss(tight) - first) < 0.05 * first)
        #expect(loss(plain) < 0.9 * first)
    }

    @Test("Kernels.clip scales a gradient to the limit and reports the norm before clipping")
    func clipKernel() throws {
        var g = [Float](repeating: 0, count: 11)
        (g[3], g[9]) = (3, 4)  // ‖g‖ = 5
        #expect(g.withUnsafeMutableBufferPointer { Kernels.clip($0.baseAddress!, count: 11, toNorm: 10) } == 5)
        #expect(g[3] == 3)  // under the limit: unchanged
        #expect(g.withUnsafeMutableBufferPointer { Kernels.clip($0.baseAddress!, count: 11, toNorm: 1) } == 5)
        // torch: g · maxNorm / (‖g‖ + 1e-6)
        #expect(close(Double(g[3]), 3 / (5 + 1e-6), relative: 1e-6) && close(Double(g[9]), 4 / (5 + 1e-6), relative: 1e-6))
        #expect(g.enumerated().allSatisfy { $0.offset == 3 || $0.offset == 9 || $0.element == 0 })
    }
}
