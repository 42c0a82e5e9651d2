// What a run leaves: evaluation over a whole data set, the cross-rank parameter check, and at the end the
// measurements, the summary, the weights, the hash and the report.
import Collectives
import Config
import Datasets
import Foundation
import Models
import Numerics
import Optimizers

extension Trainer {
    /// Loss and accuracy of `parameters` (the first replica's by default) over a whole data set (`Evaluator`).
    public func evaluate(_ dataset: Dataset, _ parameters: [Float]? = nil) throws -> (loss: Double, accuracy: Double) {
        try evaluator.evaluate(dataset, parameters ?? self.parameters)
    }

    /// Compares a hash of every replica's θ across ranks; a mismatch stops every rank with the step at which it
    /// was seen.
    public func checkReplicasAgree(step: Int) throws {
        for replica in replicas {
            let hash = fingerprint(replica.parameters)
            guard try communicator.allAgree(on: hash) else {
                let all = try communicator.allGather(Int64(bitPattern: hash)).map { hexDigest(UInt64(bitPattern: $0)) }
                throw AgreedFailure(description: "parameters" + (replicas.count > 1 ? " of \(replica.label)" : "")
                                    + " differ between ranks at step \(step) "
                                    + "(hashes by rank: \(all.joined(separator: ", "))); the replicas are no longer identical")
            }
        }
    }

    /// Every replica's measurements after the last step (the same on all ranks), with its files written.
    func results(_ position: RunPosition, writing: Bool = true) throws -> RunResult {
        communicator.setContext(step: position.step, phase: "results")
        try checkReplicasAgree(step: position.step)
        let loads = try communicator.allGather(dataLoadSeconds)
        let use = MemoryUse.current()
        let memory = try [use.peak, use.anonymous, use.file, use.proportional].map { try communicator.allGather(Double($0)).map { Int($0) } }
        let hosts = Set(try communicator.allGather(Int64(bitPattern: fingerprint(bytesOf: Array(hostName().utf8))))).count
        for (r, replica) in replicas.enumerated() {
            let point = try modelParameters(replica)
            let hash = fingerprint(point)
            let hashes = try communicator.allGather(Int64(bitPattern: hash)).map { UInt64(bitPattern: $0) }
            // Shared phases (compute, exchange) are split evenly between replicas; each has its own optimizer time.
            let share = 1 / Double(replicas.count), p = replica.progress
            // A replica whose target run ended early (reached or diverged) trained no further than that.
            let trained = replica.end?.trained ?? (steps: position.step, samples: position.samples)
            let (compute, exchange) = (position.compute, position.exchange)
            var phases = [(compute + exchange) * share + p.updateSeconds, compute * share, exchange * share, p.updateSeconds]
            try communicator.allreduce(&phases, .max)
            var result = RunResult(
                finalHash: hash, rankHashes: hashes, steps: trained.steps, samples: trained.samples, trainSeconds: phases[0],
                phases: PhaseSeconds(compute: phases[1], exchange: phases[2], update: phases[3]),
                peakResidentBytes: memory[0], lastTestLoss: p.lastTestLoss, lastTestAccuracy: p.lastTestAccuracy,
                lastValidationLoss: p.lastValidationLoss, lastValidationAccuracy: p.lastValidationAccuracy,
                lastTrainLoss: p.lastTrainLoss, lastNoiseScale: p.lastNoise,
                distinctHiddenUnits: (model as? MLP)?.distinctUnits(point))
            result.hosts = hosts
            result.dataLoadSeconds = loads
            result.memory = (0..<communicator.size).map {
                MemoryUse(peak: memory[0][$0], anonymous: memory[1][$0], file: memory[2][$0], proportional: memory[3][$0])
            }
            replica.result = result
            if writing { try finish(r, result, point) }
        }
        return replicas[0].result!
    }

    /// Rank 0: the closing lines, then the summary file, the final parameters (the model `point`) and hash, and the
    /// report.
    private func finish(_ r: Int, _ result: RunResult, _ point: [Float]) throws {
        let replica = replicas[r]
        let who = replicas.count > 1 ? "\(replica.label): " : ""
        let mb = result.peakResidentBytes.map { fixed(Double($0) / 1e6, 1) }
        console.note(who + "done: \(result.steps) steps, \(result.samples) samples in \(fixed(result.trainSeconds, 2)) s of training "
                     + "(\(Int(result.samplesPerSecond)) samples/s; \(result.phases.text)), "
                     + "peak RSS per rank \(mb.joined(separator: ", ")) MB")
        if let lbfgs = replica.optimizer as? LBFGS {
            // Its samples count steps × batch; every evaluation was a pass over the batch.
            console.note(who + "\(lbfgs.evaluations) function evaluations in \(lbfgs.iterations) L-BFGS iterations "
                         + "(\(fixed(Double(lbfgs.evaluations) / Double(max(result.steps, 1)), 1)) passes of the batch a step)")
        }
        if let newton = replica.optimizer as? Newton {
            console.note(who + "\(newton.products) Hessian-vector products and \(newton.evaluations) loss evaluations, passes of the batch "
                         + "(\(fixed(Double(newton.products + newton.evaluations) / Double(max(result.steps, 1)), 1)) a step)"
                         + (newton.settings.kind == .newtonCG ? "; \(newton.rejected) steps rejected, damping now \(significant(newton.damping, 3))" : ""))
        }
        console.note(who + "final parameter hash \(hexDigest(result.finalHash)) (equal on all \(communicator.size) ranks)")
        guard let dir = replica.directory else { return }
        try writeAtomically(try summaryJSON(replica, result), to: dir + "/summary.json")
        try writeAtomically(hexDigest(result.finalHash) + "\n", to: dir + "/final_hash")
        try writeAtomically(point.withUnsafeBytes { Data($0) }, to: dir + "/parameters.f32")
        try writeModel(replica, point, step: result.steps, to: dir + "/model.safetensors")
        try RunReport.write(directory: dir, name: replica.config.name,
                            subtitle: "\(trainSet.summary), model " + model.shapeText
                                + ", \(optimizerText(r))\(rates.scheduleText), batch \(config.training.batch)",
                            figures: Self.figures(result, ranks: communicator.size, replica.history), rows: replica.history,
                            config: replica.config.resolvedYAML)
        console.note(who + "results in \(dir)/ (report.html, metrics.csv, metrics.jsonl, summary.json, model.safetensors, *.svg)")
    }

    /// The replica's model `point` (`modelParameters`) as PyTorch's tensors in a safetensors file, with the version,
    /// config hash, step and model (and `extra`) in its metadata: model.safetensors and best.safetensors.
    func writeModel(_ replica: Replica, _ point: [Float], step: Int, extra: [String: String] = [:], to path: String) throws {
        let metadata = ["format": "pt", "descent_version": descentVersion, "config_hash": hexDigest(replica.config.hash),
                        "step": "\(step)", "model": model.shapeText].merging(extra) { $1 }
        try writeAtomically(SafeTensors.encode(model.exportTensors(point), metadata: metadata), to: path)
    }

    /// `summary.json`: the run's measurements, its hash and the parameter layout.
    private func summaryJSON(_ replica: Replica, _ r: RunResult) throws -> Data {
        var summary: [String: Any] = [
            "name": replica.config.name, "ranks": communicator.size, "global_batch": globalBatch,
            "blas_threads": MatrixKernels.threads, "kernels": kernels.map(\.summary), "steps": r.steps, "samples": r.samples,
            "train_seconds": r.trainSeconds, "samples_per_second": r.samplesPerSecond,
            "compute_seconds": r.phases.compute, "exchange_seconds": r.phases.exchange,
            "update_seconds": r.phases.update, "exchange_transport": exchange.transport, "peak_rss_bytes": r.peakResidentBytes,
            "final_hash": hexDigest(r.finalHash), "rank_hashes": r.rankHashes.map(hexDigest),
            "parameter_count": model.parameterCount, "parameter_layout": model.parameterSummary,
            "optimizer_sharded": ownedParameters != nil, "hosts": r.hosts, "data_load_seconds": r.dataLoadSeconds,
            "rss_anon_bytes": r.memory.map(\.anonymous), "rss_file_bytes": r.memory.map(\.file), "pss_bytes": r.memory.map(\.proportional),
        ]
        // JSON has no inf or nan: a diverged run records them as text, as metrics.jsonl does.
        func number(_ v: Double) -> Any { v.isFinite ? v : (v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf")) }
        if let v = r.lastTestLoss { summary["test_loss"] = number(v) }
        if let v = r.lastTestAccuracy { summary["test_accuracy"] = number(v) }
        if let v = r.lastValidationLoss { summary["val_loss"] = number(v) }
        if let v = r.lastValidationAccuracy { summary["val_accuracy"] = number(v) }
        if let v = r.lastTrainLoss { summary["train_loss"] = number(v) }
        if let v = r.lastNoiseScale { summary["noise_scale"] = number(v) }
        if let units = r.distinctHiddenUnits { summary["distinct_hidden_units"] = units }
        if let (path, header) = resumedFrom { summary["resumed_from"] = ["checkpoint": path, "step": header.step] }
        if replica.guards.skipped > 0 { summary["skipped_steps"] = replica.guards.skipped }
        if let newton = replica.optimizer as? Newton {
            summary["hessian_vector_products"] = newton.products
            summary["function_evaluations"] = newton.evaluations
            if newton.settings.kind == .newtonCG { (summary["rejected_steps"], summary["damping"]) = (newton.rejected, newton.damping) }
        }
        if let lbfgs = replica.optimizer as? LBFGS {
            summary["function_evaluations"] = lbfgs.evaluations
            summary["lbfgs_iterations"] = lbfgs.iterations
        }
        if let c = replica.history.last(where: { $0.kind == .curvature }) {
            let edge = StabilityEdge(replica.history)
            summary["curvature"] = ["step": c.step, "top_eigenvalues": (c.topEigenvalues ?? []).map(number),
                                    "lambda_min": number(c.lambdaMin ?? .nan), "hessian_trace": number(c.hessianTrace ?? .nan),
                                    "learning_rate": c.learningRate, "first_step_at_0.9_threshold": edge.firstStep ?? NSNull(),
                                    "median_sharpness_over_threshold": edge.medianRatio.map(number) ?? NSNull()] as [String: Any]
        }
        if let metric = config.checkpoint.best, let v = replica.progress.bestValue, let step = replica.progress.bestStep {
            summary["best"] = ["metric": metric.rawValue, "value": number(v), "step": step, "file": "best.safetensors"]
        }
        if let metric = config.training.earlyStop.metric, stoppedEarly {
            summary["early_stopped"] = ["metric": metric.rawValue, "step": r.steps]
        }
        return try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
    }

    /// The report's table of figures.
    private static func figures(_ r: RunResult, ranks: Int, _ history: [MetricsRow]) -> [(String, String)] {
        var figures: [(String, String)] = [
            ("ranks", "\(ranks)"), ("steps", "\(r.steps)"), ("samples", "\(r.samples)"),
            ("training seconds", fixed(r.trainSeconds, 2)), ("samples/s", "\(Int(r.samplesPerSecond))"),
            ("compute / exchange / update s", "\(fixed(r.phases.compute, 2)) / \(fixed(r.phases.exchange, 2)) / \(fixed(r.phases.update, 2))"),
        ]
        if let v = r.lastTrainLoss { figures.append(("final training loss", fixed(v, 4))) }
        if let v = r.lastTestLoss { figures.append(("final test loss", fixed(v, 4))) }
        if let v = r.lastTestAccuracy { figures.append(("final test accuracy", fixed(v, 4))) }
        if let v = r.lastNoiseScale { figures.append(("noise scale B_simple, last epoch", "\(fixed(v, 0))")) }
        if let c = history.last(where: { $0.kind == .curvature }), let sharpness = c.sharpness {
            figures.append(("sharpness λ_max, last measurement", "\(significant(sharpness, 4)) at step \(c.step) (2/η \(significant(2 / c.learningRate, 4)))"))
            figures.append(("edge of stability", StabilityEdge(history).text))
        }
        figures.append(("final parameter hash", hexDigest(r.finalHash)))
        return figures
    }
}
