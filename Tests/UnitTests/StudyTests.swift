// `descent study`: the search's points, the cadence of evaluations, the range test's choice, McCandlish et al.'s
// fit, the study block's messages, and trials trained as replicas against the same trials trained alone.
import Collectives
import DescentTestSupport
import Foundation
import Numerics
import Testing
@testable import Config
import Optimizers
@testable import Experiments
@testable import Training

@Suite struct StudySearchTests {
    @Test("a log grid spaces the rates evenly in log, both ends included")
    func grid() {
        let points = SearchPlan.points(.grid, count: 5, rates: SearchRange(0.001, 0.1), momentum: nil, seed: 1)
        let expected = (0..<5).map { pow(10, -3 + Double($0) / 2) }
        #expect(zip(points.map(\.learningRate), expected).allSatisfy { close($0, $1, relative: 1e-3) })
        #expect(points.allSatisfy { $0.momentum == nil })
    }

    @Test("the scrambled Halton sequence puts one of its first b^k points in each of the b^k intervals, and the seed changes it")
    func halton() {
        for base in [2, 3] {
            let h = ScrambledHalton(base: base, seed: 11)
            for k in 1...3 {
                let n = Int(pow(Double(base), Double(k)))
                let cells = (0..<n).map { Int(h[$0] * Double(n)) }
                #expect(Set(cells).count == n && cells.allSatisfy { (0..<n).contains($0) }, "base \(base), \(n) points")
            }
        }
        let a = (0..<8).map { ScrambledHalton(base: 2, seed: 1)[$0] }
        #expect(a == (0..<8).map { ScrambledHalton(base: 2, seed: 1)[$0] })
        #expect(a != (0..<8).map { ScrambledHalton(base: 2, seed: 2)[$0] })
    }

    @Test("quasirandom points lie in their ranges; momentum is searched as 1 − β on a log scale")
    func quasirandom() {
        let points = SearchPlan.points(.quasirandom, count: 16, rates: SearchRange(1e-4, 1), momentum: SearchRange(0.5, 0.999), seed: 3)
        #expect(points.allSatisfy { $0.learningRate >= 1e-4 && $0.learningRate <= 1 })
        #expect(points.allSatisfy { ($0.momentum ?? 0) >= 0.5 && ($0.momentum ?? 1) <= 0.999 })
        // 1 − β log-uniform in [0.001, 0.5]: about half the points have 1 − β below √(0.001·0.5) ≈ 0.0224.
        let below = points.filter { 1 - $0.momentum! < (0.001 * 0.5).squareRoot() }.count
        #expect((6...10).contains(below), "\(below) of 16")
    }

    @Test("evaluations come at steps that grow by the ratio, so a step to the target is known within that factor")
    func cadence() {
        let target = Target(metric: .testLoss, value: 0.5, ratio: 1.1)
        var steps = [1]
        while steps.last! < 10_000 { steps.append(target.evaluation(after: steps.last!)) }
        #expect(Array(steps.prefix(10)) == Array(1...10))
        for (a, b) in zip(steps, steps.dropFirst()) { #expect(b > a && Double(b) <= (Double(a) * 1.1).rounded(.up) + 1) }
        #expect(steps.count < 120, "\(steps.count) evaluations up to step 10000")
        // The rule s ← max(s + 1, ⌈1.1·s⌉) from 1, written out: 1 … 10, 11, 13, 15, 17, 19, 21, 24, 27, 30, 33, 37, 41,
        // 46, 51, 57, 63, 70, 77, 85, 94, 104.
        #expect(Array(steps.prefix(31)) == Array(1...11) + [13, 15, 17, 19, 21, 24, 27, 30, 33, 37, 41, 46, 51, 57, 63, 70, 77, 85, 94, 104])
        #expect(target.evaluation(after: 0) == 1 && target.evaluation(after: 57) == 63 && target.evaluation(after: 95) == 104)
        #expect(target.reached(0.49) && !target.reached(0.51))
        #expect(Target(metric: .testAccuracy, value: 0.8).reached(0.81))
    }

    @Test("the range test's range straddles the rate where the smoothed loss is lowest")
    func rangeFromTest() {
        // Loss (log10 rate + 1)² + 1 has its minimum at rate 0.1; the rates grow by 10^0.05 a step.
        let steps = (0..<100).map { k -> (rate: Double, loss: Double) in
            let rate = pow(10, -4 + Double(k) * 0.05)
            return (rate, pow(log10(rate) + 1, 2) + 1)
        }
        let r = Study.rangeFromTest(steps, floor: 1e-4)
        let centre = (r.low * r.high).squareRoot()
        #expect(centre >= 0.1 && centre <= 0.4, "\(r)")  // the average lags the rate: at or a little after the minimum
        #expect(close(r.high / r.low, 100, relative: 1e-3))
    }
}

@Suite struct CriticalBatchFitTests {
    @Test("the fit recovers S_min and E_min from points of S = S_min (1 + B_noise/B) with 5 % noise")
    func recovers() {
        let (sMin, bNoise) = (400.0, 1000.0)
        let batches = (4...16).map { pow(2, Double($0)) }
        let exact = CriticalBatchFit.fit(batches.map { ($0, sMin * (1 + bNoise / $0)) })!
        #expect(close(exact.minimumSteps, sMin, relative: 1e-9) && close(exact.minimumExamples, sMin * bNoise, relative: 1e-9))
        var rng = Xoshiro256(seed: 42)
        for trial in 0..<5 {
            let noisy = batches.map { b -> (Double, Double) in
                // Box–Muller: a normal variate of σ 0.05 as a relative error.
                let u1 = Double.random(in: 1e-12..<1, using: &rng), u2 = Double.random(in: 0..<1, using: &rng)
                let z = (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
                return (b, sMin * (1 + bNoise / b) * exp(0.05 * z))
            }
            let fit = CriticalBatchFit.fit(noisy)!
            #expect(close(fit.minimumSteps, sMin, relative: 0.15), "trial \(trial): S_min \(fit.minimumSteps)")
            #expect(close(fit.minimumExamples, sMin * bNoise, relative: 0.15), "trial \(trial): E_min \(fit.minimumExamples)")
            #expect(close(fit.criticalBatch, bNoise, relative: 0.25), "trial \(trial): B_crit \(fit.criticalBatch)")
        }
        #expect(CriticalBatchFit.fit([(32, 100)]) == nil)
        // Steps that grow with the batch have no such model.
        #expect(CriticalBatchFit.fit([(32, 100), (64, 120), (128, 150)]) == nil)
    }
}

@Suite struct StudyConfigTests {
    func message(_ yaml: String) -> String {
        do {
            _ = try StudyConfig.load(yaml: yaml, fileName: "study.yaml")
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("the presets load, and a resolved study loads back as the same study")
    func presets() throws {
        for name in ["study-smoke", "study-batch-size", "study-optimizers"] + ["logreg", "mlp", "default-mlp", "2c2d"].map({ "benchmark/" + $0 }) {
            let path = packageRoot.appendingPathComponent("configs/\(name).yaml").path
            let c = try StudyConfig.load(yaml: String(contentsOfFile: path, encoding: .utf8), fileName: path)
            #expect(try StudyConfig.load(yaml: c.resolvedYAML, fileName: "again.yaml") == c, "\(name)")
        }
        let all = try StudyConfig.load(yaml: "study: {optimizers: all, lr: [0.001, 0.1], momentum: [0.8, 0.99]}\n", fileName: "s.yaml")
        #expect(all.variants.map(\.optimizer.kind) == OptimizerKind.allCases.filter { !$0.evaluatesAgain })
        #expect(all.variants.allSatisfy { $0.rates == SearchRange(0.001, 0.1) })
        // --set replaces `all` (a word) by a list of blocks, and a list by a word.
        let one = try StudyConfig.load(yaml: "study: {optimizers: all}\n", fileName: "s.yaml", overrides: ["study.optimizers=[{name: sgd}]"])
        #expect(one.variants.map(\.label) == ["sgd"])
        let back = try StudyConfig.load(yaml: "study: {optimizers: [{name: sgd}, {name: adam}]}\n", fileName: "s.yaml", overrides: ["study.optimizers=all"])
        #expect(back.variants.map(\.optimizer.kind) == OptimizerKind.allCases.filter { !$0.evaluatesAgain })
        #expect(all.variants.filter { $0.momentum != nil }.map(\.label) == ["momentum", "nesterov", "adam", "adamw", "nadam", "angulargrad", "radam", "adamax", "lion", "schedule-free-sgd", "schedule-free-adamw", "muon", "shampoo"])
        // Without study.lr and study.momentum each rule keeps its own space (AlgoPerf's baselines where they have one).
        let own = try StudyConfig.load(yaml: "study: {optimizers: all}\n", fileName: "s.yaml")
        let adamw = try #require(own.variants.first { $0.label == "adamw" }), sgd = try #require(own.variants.first { $0.label == "sgd" })
        #expect(adamw.rates == SearchRange(1e-4, 1e-2) && adamw.momentum == SearchRange(0.5, 0.98))
        #expect(sgd.rates == SearchRange(2e-2, 5) && sgd.momentum == nil)
        #expect(own.variants.allSatisfy { $0.rates == StudyConfig.searchSpace($0.optimizer.kind).rates })
        #expect(try StudyConfig.load(yaml: own.resolvedYAML, fileName: "again.yaml") == own)
    }

    @Test("study.search_space: any numeric key, log or linear, integers for an integer key, an item of a list; bad entries named")
    func searchSpace() throws {
        let yaml = """
            optimizer: {name: adam}
            study:
              search: quasirandom
              search_space:
                optimizer.weight_decay: {range: [0.0001, 0.1]}
                optimizer.betas[1]: {range: [0.9, 0.9999], scale: linear}
                schedule.warmup_steps: {range: [0, 50], scale: linear}

            """
        let c = try StudyConfig.load(yaml: yaml, fileName: "s.yaml")
        #expect(c.space.map(\.key) == ["optimizer.betas[1]", "optimizer.weight_decay", "schedule.warmup_steps"])
        #expect(c.space.map(\.log) == [false, true, false] && c.space.map(\.integer) == [false, false, true])
        #expect(try StudyConfig.load(yaml: c.resolvedYAML, fileName: "again.yaml") == c)
        let betas = try c.space[0].apply(0.95, to: c.base)
        #expect(betas.optimizer.beta2 == 0.95 && betas.optimizer.beta1 == 0.9)
        #expect(try c.space[2].apply(12, to: c.base).schedule.rate.warmupSteps == 12)
        // Values: log-uniform ends and middle (√(0.0001 · 0.1) = 0.003162), linear, integers rounded.
        #expect(c.space[1].value(at: 0) == 0.0001 && c.space[1].value(at: 1) == 0.1 && c.space[1].value(at: 0.5) == 0.003162)
        #expect(c.space[0].value(at: 0.5) == 0.94995 && c.space[2].value(at: 0.51) == 26)
        // The rate and momentum of each point are those of the search without the extra keys.
        let plain = SearchPlan.points(.quasirandom, count: 8, rates: SearchRange(0.001, 0.1), momentum: nil, seed: 3)
        let more = SearchPlan.points(.quasirandom, count: 8, rates: SearchRange(0.001, 0.1), momentum: nil, space: c.space, seed: 3)
        #expect(more.map(\.learningRate) == plain.map(\.learningRate) && more.allSatisfy { $0.values.count == 3 })
        #expect(more.allSatisfy { p in zip(c.space, p.values).allSatisfy { $0.range.low <= $1 && $1 <= $0.range.high } })
        #expect(Set(more.map { $0.values[1] }).count == 8)

        let head = "optimizer: {name: adam}\nstudy:\n  search: quasirandom\n  search_space:\n"
        #expect(message(head + "    optimizer.wd: {range: [0.1, 1]}\n").hasPrefix(
            "study.yaml: study.search_space.optimizer.wd: expected a numeric key of the training config that takes every value in the range, found optimizer.wd: expected a known key"))
        #expect(message(head + "    optimizer.weight_decay: {range: [0, 1]}\n")
                == "study.yaml: study.search_space.optimizer.weight_decay.range: expected [low, high] with low < high and low > 0 (scale log), found [0, 1]")
        #expect(message(head + "    optimizer.betas[1]: {range: [0.9, 1.5], scale: linear}\n").contains("expected a numeric key of the training config"))
        #expect(message(head + "    optimizer.weight_decay: {scale: log}\n")
                == "study.yaml: study.search_space.optimizer.weight_decay: expected {range: [low, high], scale: log or linear} (log needs low > 0), found no range")
        #expect(message(head + "    optimizer.lr: {range: [0.1, 1]}\n").contains("expected a key other than the rate (study.lr)"))
        #expect(message("study:\n  search_space:\n    optimizer.weight_decay: {range: [0.1, 1]}\n")
                .contains("study.search_space.optimizer.weight_decay: expected study.search: quasirandom"))
    }

    @Test("bad study blocks name the key, what was expected and what was found")
    func errors() {
        #expect(message("study: {lr: []}\n") == "study.yaml: study.lr: expected [low, high] with 0 < low ≤ high, found []")
        #expect(message("study: {lr: [1, 0.1]}\n") == "study.yaml: study.lr: expected [low, high] with 0 < low ≤ high, found [1, 0.1]")
        #expect(message("study: {optimizers: [{name: sgd, lr_range: [0, 1]}]}\n")
                == "study.yaml: study.optimizers[0].lr_range: expected [low, high] with 0 < low ≤ high, found [0, 1]")
        #expect(message("study: {trials: 0}\n") == "study.yaml: study.trials: expected an integer in 1...1000, found '0'")
        #expect(message("study: {max_steps: 0}\n") == "study.yaml: study.max_steps: expected an integer in 1...2147483647, found '0'")
        #expect(message("study: {target: train_accuracy}\n")
                == "study.yaml: study.target: expected one of train_loss, test_loss, test_accuracy, val_loss, val_accuracy, found 'train_accuracy'")
        #expect(message("study: {target: test_accuracy, target_value: 1.5}\n")
                == "study.yaml: study.target_value: expected an accuracy in (0, 1), found '1.5'")
        #expect(message("study: {target: test_loss, target_value: 0}\n") == "study.yaml: study.target_value: expected a loss > 0, found '0'")
        #expect(message("study: {batches: [32, 0]}\n")
                == "study.yaml: study.batches: expected a list of global batch sizes (integers ≥ 1 or full), like [32, 128, 1024, full], found '0'")
        #expect(message("study: {momentum: [0.5, 1]}\n")
                == "study.yaml: study.momentum: expected [low, high] with 0 < low ≤ high within (0, 1), found [0.5, 1]")
        #expect(message("study: {trails: 4}\n") == "study.yaml: study.trails: expected a known key (did you mean 'study.trials'?), found an unknown key")
    }
}

/// The tiny study at three batch sizes, written into `dir`.
func studyConfig(in dir: URL, batches: String = "[16, 64, full]") throws -> StudyConfig {
    try StudyConfig.load(yaml: tinyStudyYAML(output: dir.path, batches: batches), fileName: "tiny.yaml")
}

@Suite("studies in one process", .serialized)
struct StudyRunTests {
    let quiet = Console(enabled: false, interactive: false)

    @Test("trials trained together as replicas end on the same bits and steps as each trained alone; none is dropped")
    func replicasMatchAlone() throws {
        let dir = try temporaryDirectory("study")
        defer { try? FileManager.default.removeItem(at: dir) }
        let together = try studyConfig(in: dir.appendingPathComponent("together"))
        let a = try Study(config: together, communicator: SingleProcessCommunicator(), console: quiet).run()
        let alone = try studyConfig(in: dir.appendingPathComponent("alone"))
        let b = try Study(config: alone, communicator: SingleProcessCommunicator(), together: 1, console: quiet).run()
        #expect(a.count == 12 && b.count == 12)
        func essentials(_ r: TrialRecord) -> String { "\(r.hash) \(r.learningRate) \(r.reached) \(r.diverged) \(r.steps ?? -1) \(r.stepsRun) \(r.finalHash)" }
        #expect(a.map(essentials) == b.map(essentials))
        #expect(a.contains { $0.reached } && a.contains { $0.diverged }, "\(a.map(essentials))")
        // Each trial's run folder holds the hash study.csv records.
        for r in a {
            let hash = try String(contentsOf: dir.appendingPathComponent("together/tiny/\(r.folder)/final_hash"), encoding: .utf8)
            #expect(hash.hasPrefix(r.finalHash), "\(r.folder)")
            // A trial that reached its target or diverged records its own end, not the study's longest run.
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("together/tiny/\(r.folder)/summary.json")))
            #expect((summary as? [String: Any])?["steps"] as? Int == r.stepsRun, "\(r.folder): \(r.reached) \(r.diverged)")
            // Seconds to the target leave out the evaluations: wall_s − eval_s of the row that reached it.
            let evaluations = try readCSV(dir.appendingPathComponent("together/tiny/\(r.folder)/metrics.csv")).filter { $0["kind"] == "eval" }
            let spent = evaluations.map { (wall: Double($0["wall_s"]!)!, evaluating: Double($0["eval_s"]!)!) }
            #expect(spent.allSatisfy { $0.evaluating > 0 && $0.evaluating < $0.wall }, "\(spent)")
            #expect(zip(spent, spent.dropFirst()).allSatisfy { $0.evaluating < $1.evaluating }, "\(spent)")
            if r.reached, let reaching = evaluations.firstIndex(where: { Int($0["step"]!) == r.steps }) {
                #expect(r.seconds == spent[reaching].wall - spent[reaching].evaluating, "\(r.folder)")
            } else {
                #expect(!r.reached && r.seconds == nil, "\(r.folder)")
            }
        }
        #expect(a.contains { $0.stepsRun < a.map(\.stepsRun).max()! }, "no trial ended early: \(a.map(\.stepsRun))")
        let csv = try readCSV(dir.appendingPathComponent("together/tiny/study.csv"))
        #expect(csv.count == 12 && csv.filter { $0["reached"] == "false" }.allSatisfy { $0["steps_to_target"] == "" })
        let best = try readCSV(dir.appendingPathComponent("together/tiny/best.csv"))
        #expect(best.map { $0["batch"]! } == ["16", "64", "full"])
        let html = try String(contentsOf: dir.appendingPathComponent("together/tiny/report.html"), encoding: .utf8)
        #expect(html.contains("What the numbers say") && html.contains("steps_vs_batch.svg"))
    }

    @Test("with a val_accuracy target that no trial reaches, the best trial is the one with the best final validation accuracy")
    func validationTargetTieBreak() throws {
        let dir = try temporaryDirectory("study-val")
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = tinyStudyYAML(output: dir.path, batches: "[16]")
            .replacingOccurrences(of: "noise: 2.5}", with: "noise: 2.5, validation: 64}")
            .replacingOccurrences(of: "target: test_accuracy", with: "target: val_accuracy")
        let study = try Study(config: StudyConfig.load(yaml: yaml, fileName: "tiny.yaml"), communicator: SingleProcessCommunicator(),
                              console: quiet)
        let folder = study.groups[0].folder
        // Neither reaches 0.7; the second has the better validation accuracy and the worse training and test figures.
        func record(_ trial: Int, train: Double, test: Double, validation: Double) throws -> TrialRecord {
            try #require(TrialRecord(["trial_hash": "h\(trial)", "variant": "sgd", "optimizer": "sgd", "batch": "16", "trial": "\(trial)",
                                      "lr": "0.\(trial)", "steps": "300", "train_s": "1", "final_hash": "0", "folder": "\(folder)/t\(trial)",
                                      "final_train_loss": "\(train)", "final_test_accuracy": "\(test)", "final_test_loss": "\(train)",
                                      "final_val_accuracy": "\(validation)", "final_val_loss": "\(1 - validation)"]))
        }
        let records = [try record(1, train: 0.9, test: 0.65, validation: 0.50), try record(2, train: 0.2, test: 0.55, validation: 0.66)]
        let bests = StudyReport(study: study, records: records, ranges: [:]).bests()
        #expect(bests.map(\.best.trial) == [2], "\(bests.map(\.best.trial))")
        // The validation figures are columns of study.csv, and a study.csv without them still reads back.
        let csv = TrialRecord.csv(records)
        #expect(TrialRecord.parse(csv)["h2"]?.finalValidationAccuracy == 0.66)
        let old = csv.split(separator: "\n").map { line in
            line.split(separator: ",", omittingEmptySubsequences: false).enumerated()
                .filter { !TrialRecord.addedColumns.contains(TrialRecord.columns[$0.offset]) }.map(\.element).joined(separator: ",")
        }.joined(separator: "\n")
        #expect(TrialRecord.parse(old)["h1"]?.finalTrainLoss == 0.9)
    }

    @Test("--add-trials reuses every measured trial of a quasirandom search; a searched key outside the optimizer trains apart")
    func addTrials() throws {
        let dir = try temporaryDirectory("study-add")
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = tinyStudyYAML(output: dir.path, batches: "[64]").replacingOccurrences(of: "  trials: 4", with: """
              trials: 3
              search: quasirandom
              search_space:
                optimizer.weight_decay: {range: [0.0001, 0.01]}
                schedule.warmup_steps: {range: [0, 20], scale: linear}
            """)
        let c = try StudyConfig.load(yaml: yaml, fileName: "tiny.yaml")
        let first = try Study(config: c, communicator: SingleProcessCommunicator(), console: quiet).run()
        #expect(first.count == 3 && first.allSatisfy { $0.searched.hasPrefix("optimizer.weight_decay=") && $0.searched.contains(" schedule.warmup_steps=") })
        // Each trial's folder trains alone to its recorded bits, with its own searched values.
        let trial = try RunConfig.load(yaml: String(contentsOf: dir.appendingPathComponent("tiny/\(first[1].folder)/config.yaml"), encoding: .utf8),
                                       fileName: "trial.yaml")
        #expect("optimizer.weight_decay=\(shortNumber(trial.optimizer.weightDecay)) schedule.warmup_steps=\(trial.schedule.rate.warmupSteps)"
                == first[1].searched)
        let more = try Study.extending(c, by: 2, on: SingleProcessCommunicator())
        #expect(more.trials == 5)
        let all = try Study(config: more, communicator: SingleProcessCommunicator(), extending: true, console: quiet).run()
        #expect(all.count == 5)
        // The first three are the records measured before, hash for hash and bit for bit.
        for r in first { #expect(all.contains { $0.hash == r.hash && $0.finalHash == r.finalHash && $0.trainSeconds == r.trainSeconds }) }
        #expect(try StudyConfig.load(yaml: String(contentsOf: dir.appendingPathComponent("tiny/config.yaml"), encoding: .utf8),
                                     fileName: "saved.yaml").trials == 5)
        // Another study in the folder is not extended.
        var other = c
        other.target.value = 0.6
        #expect(throws: (any Error).self) { try Study.extending(other, by: 1, on: SingleProcessCommunicator()) }
    }

    @Test("study.widen: a best rate at the edge of the range is searched beyond it once, and the report's best moves there")
    func widen() throws {
        let dir = try temporaryDirectory("study-widen")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Rates far too small for the target: the best is the highest tried.
        let yaml = tinyStudyYAML(output: dir.path, batches: "[64]").replacingOccurrences(of: "lr_range: [0.01, 30]", with: "lr_range: [0.001, 0.01]")
            .replacingOccurrences(of: "  trials: 4", with: "  trials: 3\n  widen: true")
        let c = try StudyConfig.load(yaml: yaml, fileName: "tiny.yaml")
        let records = try Study(config: c, communicator: SingleProcessCommunicator(), console: quiet).run()
        // The grid of the widened range [0.01, 0.1] shares its lowest point with the first search: 3 + 2 trials.
        #expect(records.map(\.learningRate) == [0.001, 0.003162, 0.01, 0.03162, 0.1], "\(records.map(\.learningRate))")
        #expect(records.map(\.trial) == [1, 2, 3, 5, 6])
        let best = try readCSV(dir.appendingPathComponent("tiny/best.csv"))
        #expect(Double(best[0]["best_lr"]!)! > 0.01)
    }

    @Test("successive halving keeps the best third at each rung (those at the target first), and a pruned study finds the same best trial")
    func pruning() throws {
        let halving = Pruner(first: 10, reduction: 3, budget: 300)
        #expect(halving.rungs == [10, 30, 90, 270])
        // Loss target: lower is better; a reached trial outranks every one still training; nan ranks last.
        let kept = halving.keep([(0, nil, 0.9), (1, nil, 0.5), (2, 12, 0.4), (3, nil, .nan), (4, nil, 0.7), (5, nil, 0.5)], metric: .testLoss)
        #expect(kept == [2, 1])
        #expect(halving.keep([(0, nil, 0.6), (1, nil, 0.8)], metric: .testAccuracy) == [1])
        #expect(Pruner(rungs: [5], reduction: 2).keep([(7, nil, 1)], metric: .testLoss) == [7])

        let dir = try temporaryDirectory("study-prune")
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = tinyStudyYAML(output: dir.appendingPathComponent("whole").path, batches: "[64]")
            .replacingOccurrences(of: "  trials: 4", with: "  trials: 9")
        let whole = try Study(config: StudyConfig.load(yaml: yaml, fileName: "tiny.yaml"), communicator: SingleProcessCommunicator(),
                              console: quiet).run()
        let pruned = try StudyConfig.load(yaml: yaml.replacingOccurrences(of: "/whole", with: "/pruned")
            .replacingOccurrences(of: "  trials: 9", with: "  trials: 9\n  prune: halving\n  prune_from: 5"), fileName: "tiny.yaml")
        let cut = try Study(config: pruned, communicator: SingleProcessCommunicator(), console: quiet).run()
        #expect(cut.count == 9 && cut.contains { $0.pruned } && !whole.contains { $0.pruned })
        // A pruned trial stopped at an evaluation step at or after a rung, before the budget, and reached nothing.
        for r in cut where r.pruned {
            #expect(!r.reached && r.steps == nil && r.stepsRun >= 5 && r.stepsRun < 300, "\(r.folder): \(r.stepsRun)")
        }
        #expect(cut.map(\.stepsRun).reduce(0, +) < whole.map(\.stepsRun).reduce(0, +))
        // The trials that were not pruned are those trials of the unpruned study, bit for bit.
        for r in cut where !r.pruned {
            let same = try #require(whole.first { $0.trial == r.trial })
            #expect(r.finalHash == same.finalHash && r.steps == same.steps, "\(r.folder)")
        }
        let best = { (c: [TrialRecord]) in StudyReport.best(of: c, metric: .testAccuracy)?.learningRate }
        #expect(best(cut) == best(whole))
        let csv = try readCSV(dir.appendingPathComponent("pruned/tiny/study.csv"))
        #expect(csv.filter { $0["pruned"] == "true" }.count == cut.filter(\.pruned).count)
    }

    @Test("seeds: every point is a trial per seed, its first seed's trials are the unseeded study's, and best.csv gives the spread")
    func seeds() throws {
        let dir = try temporaryDirectory("study-seeds")
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = tinyStudyYAML(output: dir.appendingPathComponent("one").path, batches: "[64]")
            .replacingOccurrences(of: "  trials: 4", with: "  trials: 3")
        let one = try Study(config: StudyConfig.load(yaml: yaml, fileName: "tiny.yaml"), communicator: SingleProcessCommunicator(),
                            console: quiet).run()
        let seeded = try StudyConfig.load(yaml: yaml.replacingOccurrences(of: "/one", with: "/three"), fileName: "tiny.yaml",
                                          overrides: ["seeds=3"])
        #expect(seeded.base.seeds == [3, 4, 5])
        let three = try Study(config: seeded, communicator: SingleProcessCommunicator(), console: quiet).run()
        #expect(three.count == 9 && Set(three.map(\.seed)) == [3, 4, 5] && Set(three.map(\.trial)) == [1, 2, 3])
        // Seed 3 is the study's own seed: those trials are the unseeded study's, hash for hash and bit for bit.
        for r in one {
            let same = try #require(three.first { $0.trial == r.trial && $0.seed == 3 })
            #expect(same.hash == r.hash && same.finalHash == r.finalHash, "trial \(r.trial)")
        }
        #expect(Set(three.filter { $0.trial == 1 }.map(\.finalHash)).count == 3)
        // The best point is judged by its median over the seeds, and best.csv gives its spread.
        let best = try readCSV(dir.appendingPathComponent("three/tiny/best.csv"))
        #expect(best.count == 1 && best[0]["seeds"] == "3")
        let (median, all) = try #require(StudyReport.bestOverSeeds(three, metric: .testAccuracy))
        #expect(all.count == 3 && all.allSatisfy { $0.trial == median.trial } && best[0]["best_lr"] == shortNumber(median.learningRate))
        let reached = all.compactMap(\.steps).sorted()
        #expect(best[0]["reached_seeds"] == "\(reached.count)")
        if reached.count == 3 { #expect(Double(best[0]["steps_median"]!) == Double(reached[1])) }
        let trialConfig = try RunConfig.load(yaml: String(contentsOf: dir.appendingPathComponent("three/tiny/\(median.folder)/config.yaml"),
                                                          encoding: .utf8), fileName: "trial.yaml")
        #expect(trialConfig.seed == median.seed && trialConfig.seeds.isEmpty)
    }

    @Test("study.objective final with rerun_seeds: DeepOBS's protocol — the best final metric chooses, its point reruns at seeds, best.csv and curves.csv give mean ± std")
    func finalObjectiveRerun() throws {
        let dir = try temporaryDirectory("study-final")
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = tinyStudyYAML(output: dir.path, batches: "[64]")
            .replacingOccurrences(of: "  trials: 4", with: "  trials: 3\n  objective: final\n  rerun_seeds: 3")
            .replacingOccurrences(of: "  target_value: 0.7\n", with: "").replacingOccurrences(of: "max_steps: 300", with: "max_steps: 40")
        let config = try StudyConfig.load(yaml: yaml, fileName: "tiny.yaml")
        #expect(config.target.final && config.rerunSeeds == 3)
        #expect(try StudyConfig.load(yaml: config.resolvedYAML, fileName: "resolved.yaml") == config)
        let records = try Study(config: config, communicator: SingleProcessCommunicator(), console: quiet).run()
        #expect(records.count == 5 && records.allSatisfy { !$0.reached && $0.steps == nil })
        // The search at seed 3 ran its whole budget (8 steps an epoch), evaluated at epoch ends only.
        let search = records.filter { $0.seed == 3 }
        #expect(search.count == 3 && search.filter { !$0.diverged }.allSatisfy { $0.stepsRun == 40 })
        let chosen = try #require(search.filter { ($0.finalTestAccuracy ?? .nan).isFinite && !$0.diverged }
            .max { a, b in (a.finalTestAccuracy!, -a.trial) < (b.finalTestAccuracy!, -b.trial) })
        let seeds = records.filter { $0.trial == chosen.trial }.sorted { $0.seed < $1.seed }
        #expect(seeds.map(\.seed) == [3, 4, 5] && Set(seeds.map(\.learningRate)) == [chosen.learningRate])
        #expect(Set(seeds.map(\.finalHash)).count == 3)
        var finals: [Double] = [], byEpoch: [String: [Double]] = [:]
        for r in seeds {
            let rows = try readCSV(dir.appendingPathComponent("tiny/\(r.folder)/metrics.csv"))
            #expect(!rows.contains { $0["kind"] == "eval" }, "\(r.folder)")
            let epochs = rows.filter { $0["kind"] == "epoch" }
            #expect(epochs.map { $0["step"]! } == ["8", "16", "24", "32", "40"])
            finals.append(Double(epochs.last!["test_accuracy"]!)!)
            for e in epochs { byEpoch[e["epoch"]!, default: []].append(Double(e["test_accuracy"]!)!) }
        }
        #expect(finals == seeds.map { $0.finalTestAccuracy! })
        func meanStd(_ v: [Double]) -> (Double, Double) {
            let m = v.reduce(0, +) / Double(v.count)
            return (m, (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot())
        }
        let best = try readCSV(dir.appendingPathComponent("tiny/best.csv"))
        let (mean, std) = meanStd(finals)
        #expect(best.count == 1 && best[0]["best_lr"] == shortNumber(chosen.learningRate) && best[0]["seeds"] == "3")
        #expect(abs(Double(best[0]["final_test_accuracy_mean"]!)! - mean) < 1e-5 && abs(Double(best[0]["final_test_accuracy_std"]!)! - std) < 1e-5)
        let curves = try readCSV(dir.appendingPathComponent("tiny/curves.csv"))
        #expect(curves.count == 5)
        for c in curves {
            let (m, s) = meanStd(try #require(byEpoch.first { Double($0.key)! == Double(c["epoch"]!)! }?.value))
            #expect(c["seeds"] == "3" && abs(Double(c["test_accuracy_mean"]!)! - m) < 1e-5 && abs(Double(c["test_accuracy_std"]!)! - s) < 1e-5)
        }
        let html = try String(contentsOf: dir.appendingPathComponent("tiny/report.html"), encoding: .utf8)
        #expect(html.contains("the highest final test_accuracy") && html.contains("rerun at 3 seeds") && html.contains("final_by_lr.svg"))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("tiny/final_by_lr.svg").path))
        // The console's line names the choice the search made at seed 3, not the best of the reruns' seeds.
        #expect(Study.groupLine(Study.Group(variant: config.variants[0], batch: config.batches[0]), records, target: config.target, choosingSeed: 3)
                .contains("the best final test_accuracy at seed 3 is \(fixed(chosen.finalTestAccuracy!, 4)) (lr \(shortNumber(chosen.learningRate)))"))
        // Run again: every trial, the rerun's too, is measured already.
        let again = try Study(config: config, communicator: SingleProcessCommunicator(), console: quiet).run()
        #expect(again == records)
        // The protocol's keys refuse what contradicts them.
        for (text, key) in [(yaml.replacingOccurrences(of: "  objective: final", with: "  objective: final\n  target_value: 0.8"), "study.target_value"),
                            (yaml.replacingOccurrences(of: "  objective: final", with: "  objective: final\n  prune: halving"), "study.prune"),
                            (yaml.replacingOccurrences(of: "seed: 3", with: "seed: 3\nseeds: 2"), "study.rerun_seeds")] {
            do {
                _ = try StudyConfig.load(yaml: text, fileName: "tiny.yaml")
                Issue.record("\(key): accepted")
            } catch let e as ConfigError {
                #expect(e.key == key, "\(e)")
            }
        }
    }

    @Test("a batch larger than the training set is refused before anything is written")
    func batchTooLarge() throws {
        let dir = try temporaryDirectory("study-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try studyConfig(in: dir, batches: "[16, 1024]")
        #expect(throws: (any Error).self) { try Study(config: c, communicator: SingleProcessCommunicator(), console: quiet) }
        do {
            _ = try Study(config: c, communicator: SingleProcessCommunicator(), console: quiet)
        } catch {
            #expect("\(error)" == "tiny.yaml: study.batches: expected batch sizes from 1 (one sample per rank) to the training set's 512 "
                    + "samples (full: the whole set), found 1024")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("tiny").path))
    }
}
