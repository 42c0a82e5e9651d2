// Scaling past this machine, on paper: a measured run's compute and optimizer time per sample and per parameter,
// the exchange's α–β model on a named network, and, when a study measured it, the critical batch.
import Foundation
import Numerics
import Training

public struct ScalingProjection {
    /// What a measured run says about one step.
    public struct Measured: Sendable {
        public var ranks: Int
        public var globalBatch: Int
        public var parameters: Int
        /// Seconds per step, each the maximum over ranks.
        public var compute: Double, exchange: Double, optimizer: Double
        public var sharded: Bool
        /// Distinct hosts the run used (1 when the summary does not say).
        public var hosts: Int

        /// Reads a run folder's summary.json.
        public static func read(_ directory: String) throws -> Measured {
            let file = directory + "/summary.json"
            guard let data = FileManager.default.contents(atPath: file),
                  let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let ranks = j["ranks"] as? Int, let batch = j["global_batch"] as? Int, let steps = j["steps"] as? Int, steps > 0,
                  let p = j["parameter_count"] as? Int, let compute = j["compute_seconds"] as? Double,
                  let (exchange, update) = ScalingReport.PhaseKeys.exchangeAndUpdate(j) else {
                throw OutputError(path: file, reason: "expected the summary.json of a finished run")
            }
            let s = Double(steps)
            return Measured(ranks: ranks, globalBatch: batch, parameters: p, compute: compute / s, exchange: exchange / s,
                            optimizer: update / s, sharded: j["optimizer_sharded"] as? Bool ?? false, hosts: j["hosts"] as? Int ?? 1)
        }

        /// Compute seconds per sample on one rank, and optimizer seconds per parameter updated.
        public var computePerSample: Double { compute / (Double(globalBatch) / Double(ranks)) }
        public var optimizerPerParameter: Double { optimizer / (Double(parameters) / Double(sharded ? ranks : 1)) }
    }

    /// One projected rank count.
    public struct Row: Sendable {
        public var ranks: Int
        public var globalBatch: Double
        public var compute: Double, exchange: Double, optimizer: Double
        public var step: Double { compute + exchange + optimizer }
        public var samplesPerSecond: Double { globalBatch / step }
        /// Steps and seconds to the study's target at this batch (with a study's fit).
        public var stepsToTarget: Double?
        public var secondsToTarget: Double? { stepsToTarget.map { $0 * step } }
    }

    public var measured: Measured
    public var model: ExchangeModel
    public var fit: CriticalBatchFit?

    public init(measured: Measured, model: ExchangeModel, fit: CriticalBatchFit?) {
        (self.measured, self.model, self.fit) = (measured, model, fit)
    }

    /// Strong scaling keeps the global batch; weak scaling keeps each rank's samples (`perRank`).
    public func rows(ranks: [Int], globalBatch: Int? = nil, perRank: Double? = nil) -> [Row] {
        ranks.map { n in
            let batch = perRank.map { $0 * Double(n) } ?? Double(globalBatch ?? measured.globalBatch)
            return Row(ranks: n, globalBatch: batch, compute: measured.computePerSample * batch / Double(n),
                       exchange: model.seconds(ranks: n, parameters: measured.parameters),
                       optimizer: measured.optimizerPerParameter * Double(measured.parameters) / Double(n),
                       stepsToTarget: fit.map { $0.steps(batch: batch) })
        }
    }

    public static let header = ["ranks", "global_batch", "samples_per_rank", "compute_ms", "exchange_ms", "optimizer_ms", "step_ms",
                                "samples_per_s", "speedup", "efficiency", "steps_to_target", "seconds_to_target"]

    public static func table(_ rows: [Row]) -> [[String]] {
        let base = rows[0]
        return rows.map { r in
            let speedup = r.samplesPerSecond / base.samplesPerSecond
            return ["\(r.ranks)", fixed(r.globalBatch, 0), fixed(r.globalBatch / Double(r.ranks), 1), fixed(r.compute * 1e3, 3),
                    fixed(r.exchange * 1e3, 3), fixed(r.optimizer * 1e3, 3), fixed(r.step * 1e3, 3), fixed(r.samplesPerSecond, 0),
                    fixed(speedup, 2), fixed(speedup / (Double(r.ranks) / Double(base.ranks)), 2),
                    r.stepsToTarget.map { fixed($0, 0) } ?? "", r.secondsToTarget.map { fixed($0, 2) } ?? ""]
        }
    }

    /// Where more ranks stop paying with weak scaling: the rank count at which the global batch reaches B_crit, and
    /// the first doubling of the ranks that shortens the time to target by less than 10 %.
    public func limits(_ rows: [Row], perRank: Double) -> String? {
        guard let fit else { return nil }
        let bCrit = fit.criticalBatch
        var text = "B_crit = \(fixed(bCrit, 0)) (S_min \(fixed(fit.minimumSteps, 0)) steps, E_min \(fixed(fit.minimumExamples, 0)) samples): "
            + "the global batch reaches it at \(fixed(bCrit / perRank, 1)) ranks of \(fixed(perRank, 0)) samples each"
        let pairs = zip(rows, rows.dropFirst()).filter { $1.ranks == 2 * $0.ranks }
        if let stall = pairs.first(where: { a, b in b.secondsToTarget! > 0.9 * a.secondsToTarget! }) {
            text += "; going from \(stall.0.ranks) to \(stall.1.ranks) ranks shortens the time to target by only "
                + "\(fixed(100 * (1 - stall.1.secondsToTarget! / stall.0.secondsToTarget!), 0)) %"
                + (stall.1.secondsToTarget! > stall.0.secondsToTarget! ? " (it grows)" : "")
        } else {
            text += "; every doubling up to \(rows.last!.ranks) ranks still shortens the time to target by 10 % or more"
        }
        return text
    }

    /// The critical-batch fit of a study's best.csv: its first variant with a fit, or the named one.
    public static func studyFit(_ directory: String, variant: String?) throws -> (variant: String, fit: CriticalBatchFit) {
        let file = directory + "/best.csv"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw OutputError(path: file, reason: "no such readable file (a study writes it)")
        }
        let lines = csvRows(text)
        guard let header = lines.first, let v = header.firstIndex(of: "variant"), let s = header.firstIndex(of: "steps_to_target"),
              let e = header.firstIndex(of: "examples_to_target"), let r = header.firstIndex(of: "reached") else {
            throw OutputError(path: file, reason: "expected the columns variant, reached, steps_to_target and examples_to_target")
        }
        var points: [String: [(batch: Double, steps: Double)]] = [:], order: [String] = []
        for row in lines.dropFirst() where row.count == header.count && row[r] == "true" {
            guard let steps = Double(row[s]), let examples = Double(row[e]), steps > 0 else { continue }
            if points[row[v]] == nil { order.append(row[v]) }
            points[row[v], default: []].append((examples / steps, steps))
        }
        for name in order where variant == nil || name == variant {
            if let fit = CriticalBatchFit.fit(points[name]!) { return (name, fit) }
        }
        throw OutputError(path: file, reason: variant.map { "variant '\($0)' has no critical-batch fit (it needs two batch sizes that reached the target)" }
                          ?? "no variant has a critical-batch fit (it needs two batch sizes that reached the target)")
    }
}
