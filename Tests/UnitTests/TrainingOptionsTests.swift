// The trainer applies the learning-rate schedule, batch scaling and gradient clipping it is configured with.
import Collectives
import Config
import DescentTestSupport
import Experiments
import Foundation
import Numerics
import Testing
import Training
import AllocationCounter

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
        let trainer = try Trainer.quiet(c, on: SingleProcessCommunicator())
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

@Suite("Allocation-free steps")
struct AllocationTests {
    /// Buffer allocations (1 KiB or more) made by each step: the count after step k minus the count after step
    /// k − 1, for the steps that do not begin an epoch (the epoch's plan, evaluation and rows come between). The
    /// tests run an unoptimised build, which boxes generic values in small allocations the release build does not
    /// make; `launch/allocations` counts every allocation of the release build.
    func allocationsPerStep(_ optimizer: String, reduction: String) throws -> [Int: Int] {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try RunConfig.load(yaml: """
            name: allocations
            data: {source: synthetic, train_samples: 512, test_samples: 64, features: 8, classes: 3}
            model: {hidden: [16, 16]}
            optimizer: {name: \(optimizer)}
            training: {batch: 32, chunk: 8, epochs: 3, log_every: 100000, hash_check_every: 100000, reduction: \(reduction)}
            checkpoint: {every: 0}
            output: {dir: \(dir.path)}
            """, fileName: "test")
        let trainer = try Trainer.quiet(c, on: SingleProcessCommunicator())
        let steps = 48, perEpoch = 16
        let counts = UnsafeMutablePointer<UInt>.allocate(capacity: steps + 1)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: steps + 1)
        trainer.afterStep = { step, _ in counts[step] = large_allocation_count() }
        try trainer.run()
        var made: [Int: Int] = [:]
        for step in 2...steps where (step - 1) % perEpoch != 0 && counts[step] != counts[step - 1] {
            made[step] = Int(counts[step] - counts[step - 1])
        }
        return made
    }

    @Test("a training step allocates no buffer once the run is under way: forward, backward, exchange, noise scale, update",
          .enabled(if: allocations_counted() == 1, "under a sanitizer its allocator replaces the counting one"),
          arguments: ["sgd", "momentum", "adam"])
    func stepsAllocateNothing(optimizer: String) throws {
        let made = try allocationsPerStep(optimizer, reduction: "deterministic")
        #expect(made.isEmpty, "allocations by step: \(made.sorted { $0.key < $1.key })")
    }

    @Test("the counters count: an array of 1 KiB or more is a buffer, a small one is not",
          .enabled(if: allocations_counted() == 1, "under a sanitizer its allocator replaces the counting one"))
    func counterCounts() {
        func small() -> [Int] { (0..<Int.random(in: 2...4)).map { $0 * 2 } }
        _ = small()  // (the first call may set up runtime metadata)
        let (all, large) = (allocation_count(), large_allocation_count())
        let small = small()
        let (afterSmall, largeAfterSmall) = (allocation_count(), large_allocation_count())
        let big = (0..<Int.random(in: 300...400)).map { $0 * 2 }
        let largeAfterBig = large_allocation_count()
        #expect(afterSmall > all && largeAfterSmall == large && small.count >= 2)
        #expect(largeAfterBig > largeAfterSmall && big.count >= 300)
    }
}
