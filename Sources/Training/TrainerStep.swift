// One training step, and what the loop records around it: the epoch's sample order, the step and epoch rows,
// the progress line.
import Collectives
import Config
import Datasets
import Numerics
import Optimizers

/// An epoch's sample order, with its number and fingerprint.
struct PlannedEpoch {
    let index: Int
    let plan: EpochPlan
    let orderHash: UInt64
}

extension Trainer {
    /// The sample order of epoch `index`; a resumed run checks it against the one its checkpoint was written with.
    func epochPlan(_ index: Int) throws -> PlannedEpoch {
        let plan = samplePlan(epoch: index)
        let orderHash = Self.orderFingerprint(plan)
        if let (path, header) = resumedFrom, index == header.epoch, hexDigest(orderHash) != header.orderHash,
           // Earlier builds recorded, in a checkpoint at an epoch's end, the order of the epoch that had ended.
           !(header.batch == 0 && index > 0 && hexDigest(Self.orderFingerprint(samplePlan(epoch: index - 1))) == header.orderHash) {
            throw AgreedFailure(description: "checkpoint \(path): the sample order of epoch \(index + 1) derived again "
                                + "differs from the one it was written with (fingerprint \(hexDigest(orderHash)), "
                                + "recorded \(header.orderHash)); was it written by another build?")
        }
        return PlannedEpoch(index: index, plan: plan, orderHash: orderHash)
    }

    /// Epoch `epoch`'s sample order: a pure function of the seed and the epoch.
    func samplePlan(epoch: Int) -> EpochPlan {
        EpochPlan(seed: config.seed, epoch: epoch, sampleCount: trainSet.count, batchSize: globalBatch,
                  shuffle: config.training.shuffle)
    }

    /// The fingerprint of a sample order.
    static func orderFingerprint(_ plan: EpochPlan) -> UInt64 { plan.order.withUnsafeBytes { fingerprint(bytes: $0) } }

    /// One optimizer step on the global batch `batch` (positions in `order`), taken from `position`: every
    /// replica's gradient in one exchange, judged by the guards, then applied.
    func step(_ batch: Range<Int>, of epoch: PlannedEpoch, at position: RunPosition) throws -> Exchanged {
        let rank = communicator.rank, number = position.step + 1
        hooks?.stepStarting(rank: rank, step: number)
        communicator.setContext(step: number, phase: "gradient exchange")
        // The noise scale needs two small batches, and is measured on every n-th step only (an unbiased
        // subsample of the window's steps): the other steps skip a pass over each small batch's sums.
        let every = config.training.noiseScaleEvery
        let measure = every > 0 && position.step % every == 0 && exchange.smallBatches(count: batch.count) >= 2
        let corrupt = hooks?.corruptsSums(rank: rank, step: number) ?? false
        // The whole gradient is needed to measure its noise or clip it; otherwise a sharded step keeps a part.
        var exchanged = try pass(batch, of: epoch, measureNoise: measure, corrupt: corrupt,
                                 wholeGradient: measure || config.training.clipNorm != nil) { r in replicas[r].parameters }
        var evaluating: [(replica: Int, loss: Double, gradient: [Float])] = []
        for (r, replica) in replicas.enumerated() where replica.end == nil {
            let subject = GuardFailure.Subject(step: number, label: replicas.count > 1 ? replica.label : nil)
            let verdict: Guards.Verdict
            do {
                verdict = try guards.judge(exchanged.replicas[r], subject, &replica.guards, note: console.note)
            } catch let failure as GuardFailure where goal != nil {
                verdict = .stop(failure)
            }
            switch verdict {
            case .apply where replica.optimizer is LBFGS || replica.optimizer is Newton:
                // After the others' updates: its passes reuse the exchange's buffer.
                evaluating.append((r, exchanged.replicas[r].loss, exchange.withGradient(replica: r) { Array($0) }))
            case .apply:
                exchanged.exchangeSeconds += try update(replica, r, exchanged, measured: measure, step: number)
            case .skip:
                break
            case .stop(let failure) where goal != nil:
                // A trial that diverges is over (and shown as such); the other replicas go on.
                replica.end = .diverged(step: number, samples: position.samples + batch.count, reason: failure.description)
                console.note("\(replica.label): diverged in step \(number)")
            case .stop(let failure):
                var before = position
                before.wall = wallSeconds()
                throw failure.saved(to: try saveCheckpoint(before, in: epoch))
            }
        }
        for e in evaluating {
            if replicas[e.replica].optimizer is Newton {
                try newtonStep(e.replica, loss: e.loss, gradient: e.gradient, &exchanged, batch, of: epoch, step: number)
            } else {
                try evaluatingStep(e.replica, first: (e.loss, e.gradient), &exchanged, batch, of: epoch, step: number)
            }
        }
        return exchanged
    }

    /// One data-parallel pass over the global batch `batch`: every rank's sums of each replica at the point
    /// `point(r)` (nil: the replica adds nothing to this pass), in one exchange.
    private func pass(_ batch: Range<Int>, of epoch: PlannedEpoch, measureNoise: Bool, corrupt: Bool = false,
                      wholeGradient: Bool, at point: (Int) -> [Float]?) throws -> Exchanged {
        try epoch.plan.order.withUnsafeBufferPointer { order in
            try exchange.exchange(count: batch.count, measureNoise: measureNoise, requestStop: StopSignals.pending != 0,
                                  wholeGradient: wholeGradient, over: communicator) { r, positions, gradient in
                // A replica whose target run is over contributes nothing (its gradient slots stay zero).
                guard replicas[r].end == nil else { return 0 }
                // A rank without samples in this batch (mpi reduction, a batch smaller than the ranks), or a replica
                // this pass leaves out, adds zeros.
                guard !positions.isEmpty, let theta = point(r) else {
                    gradient.update(repeating: 0, count: model.parameterCount)
                    return 0
                }
                let loss = theta.withUnsafeBufferPointer { theta in
                    let indices = (batch.lowerBound + positions.lowerBound)..<(batch.lowerBound + positions.upperBound)
                    return model.accumulateGradient(
                        parameters: theta.baseAddress!, gradient: gradient, dataset: trainSet,
                        indices: UnsafeBufferPointer(rebasing: order[indices]), workspace: workspace, overwrite: true).lossSum
                }
                guard corrupt else { return loss }
                gradient[0] = .nan
                return .nan
            }
        }
    }

    /// Replica `r`'s step with a rule that evaluates again (L-BFGS): the step's exchange was its first evaluation
    /// (`first`); each further one is a pass of the same global batch at the rule's trial point, for this replica
    /// alone. Every rank holds the whole gradient and runs the rule on the same values, so the parameters stay
    /// identical.
    private func evaluatingStep(_ r: Int, first: LBFGS.Evaluation, _ exchanged: inout Exchanged, _ batch: Range<Int>,
                                of epoch: PlannedEpoch, step: Int) throws {
        let replica = replicas[r]
        let lbfgs = replica.optimizer as! LBFGS  // swiftlint:disable:this force_cast (the caller checked)
        let u0 = monotonicSeconds()
        var passes = (compute: 0.0, exchange: 0.0)
        var evaluations = 0
        lbfgs.learningRate = rates.rate(replica: r, step: step)
        communicator.setContext(step: step, phase: "gradient exchange (line search)")
        _ = try replica.parameters.withUnsafeMutableBufferPointer { θ in
            try lbfgs.step(θ) { point in
                evaluations += 1
                guard evaluations > 1 else { return first }
                let trial = Array(point)
                let again = try pass(batch, of: epoch, measureNoise: false, wholeGradient: true) { $0 == r ? trial : nil }
                passes.compute += again.computeSeconds
                passes.exchange += again.exchangeSeconds
                return (again.replicas[r].loss, exchange.withGradient(replica: r) { Array($0) })
            }
        }
        exchanged.computeSeconds += passes.compute
        exchanged.exchangeSeconds += passes.exchange
        replica.progress.updateSeconds += monotonicSeconds() - u0 - passes.compute - passes.exchange
        replica.progress.windowLoss += first.loss
        replica.progress.epochLoss += first.loss
    }

    /// Replica `r`'s step with a rule of the Newton family: every Hessian-vector product it asks for is a pass over
    /// the step's batch at the step's point, every loss a pass at its trial point, for this replica alone; every
    /// rank runs the rule on the same values.
    private func newtonStep(_ r: Int, loss: Double, gradient: [Float], _ exchanged: inout Exchanged, _ batch: Range<Int>,
                            of epoch: PlannedEpoch, step: Int) throws {
        let replica = replicas[r]
        let newton = replica.optimizer as! Newton  // swiftlint:disable:this force_cast (the caller checked)
        let u0 = monotonicSeconds()
        var passes = 0.0
        newton.learningRate = rates.rate(replica: r, step: step)
        communicator.setContext(step: step, phase: "Hessian-vector products")
        let point = replica.parameters, samples = Array(epoch.plan.order[batch])
        try replica.parameters.withUnsafeMutableBufferPointer { θ in
            try newton.step(θ, loss: loss, gradient: gradient, product: { v in
                let t0 = monotonicSeconds()
                defer { passes += monotonicSeconds() - t0 }
                return try self.hessianProduct(r, at: point, v, samples: samples, gaussNewton: replica.config.optimizer.gaussNewton)
            }, evaluate: { trial in
                let t0 = monotonicSeconds()
                defer { passes += monotonicSeconds() - t0 }
                let at = Array(trial)
                return try self.pass(batch, of: epoch, measureNoise: false, wholeGradient: true) { $0 == r ? at : nil }.replicas[r].loss
            })
        }
        exchanged.computeSeconds += passes
        replica.progress.updateSeconds += monotonicSeconds() - u0 - passes
        replica.progress.windowLoss += loss
        replica.progress.epochLoss += loss
    }

    /// Applies replica `r`'s averaged gradient: the noise-scale estimate, clipping, the scheduled rate, and the update,
    /// which the exchange applies to the parameters this rank owns and gathers. Returns the seconds of the gather.
    private func update(_ replica: Replica, _ r: Int, _ exchanged: Exchanged, measured: Bool, step: Int) throws -> Double {
        let u0 = monotonicSeconds()
        let share = exchanged.replicas[r]
        if measured || config.training.clipNorm != nil {
            exchange.withGradient(replica: r) { g in
                if measured, let e = NoiseScale.estimate(
                    localSquaredNormSum: share.smallBatchSquaredNormSum, localCounts: exchanged.smallBatchCounts,
                    globalSquaredNorm: Kernels.sumOfSquares(g.baseAddress!, count: g.count)) {
                    replica.progress.windowNoise.add(e)
                    replica.progress.epochNoise.add(e)
                }
                if let maxNorm = config.training.clipNorm { Kernels.clip(g.baseAddress!, count: g.count, toNorm: maxNorm) }
            }
        }
        replica.optimizer.learningRate = rates.rate(replica: r, step: step)
        communicator.setContext(step: step, phase: "parameter gather")
        let seconds = try replica.parameters.withUnsafeMutableBufferPointer { θ in
            try exchange.update(replica: r, θ, over: communicator) { θ, g in replica.optimizer.update(θ, gradient: g) }
        }
        replica.progress.updateSeconds += monotonicSeconds() - u0 - seconds.gather
        replica.progress.windowLoss += share.loss
        replica.progress.epochLoss += share.loss
        return seconds.gather
    }

    /// A step row per replica: the mean batch loss and noise scale since the last one.
    func writeStepRows(_ position: inout RunPosition, wall: Double) throws {
        for (r, replica) in replicas.enumerated() where replica.end == nil {
            try replica.write(MetricsRow(
                kind: .step, step: position.step, epoch: Double(position.samples) / Double(trainSet.count),
                samples: position.samples, wallSeconds: wall, learningRate: rates.rate(replica: r, step: position.step),
                batchLoss: replica.progress.windowLoss / Double(position.windowSteps), noiseScale: replica.progress.windowNoise.value))
            replica.progress.windowLoss = 0
            replica.progress.windowNoise = NoiseScale()
        }
        position.windowSteps = 0
    }

    /// An epoch row per replica after evaluating it, and its console line; a finished epoch starts the next
    /// epoch's sums.
    func writeEpochRows(_ position: inout RunPosition, epochDone: Bool, wall: () -> Double) throws {
        communicator.setContext(step: position.step, phase: "evaluation")
        let start = monotonicSeconds()
        defer { position.evaluation += monotonicSeconds() - start }
        for (r, replica) in replicas.enumerated() where replica.end == nil {
            let point = try modelParameters(replica)
            let train = config.training.evaluateTrainingSet ? try evaluate(trainSet, point) : nil
            let (test, validation) = try heldOut(point)
            let evaluated = position.evaluation + monotonicSeconds() - start
            let row = MetricsRow(kind: .epoch, step: position.step, epoch: Double(position.samples) / Double(trainSet.count),
                                 samples: position.samples, wallSeconds: wall(), learningRate: rates.rate(replica: r, step: position.step),
                                 batchLoss: replica.progress.epochLoss / Double(position.epochSteps),
                                 trainLoss: train?.loss, trainAccuracy: train?.accuracy,
                                 testLoss: test?.loss, testAccuracy: test?.accuracy, noiseScale: replica.progress.epochNoise.value,
                                 validationLoss: validation?.loss, validationAccuracy: validation?.accuracy, evaluationSeconds: evaluated)
            replica.progress.recordEvaluation(row, epochDone: epochDone)
            try replica.write(row)
            console.note((replicas.count > 1 ? "\(replica.label): " : "") + Self.epochLine(row, skipped: replica.guards.skipped))
        }
        if epochDone { position.epochSteps = 0 }
    }

    /// An evaluation row per replica still training towards `goal`; a replica that reaches it (or whose metric is
    /// no longer finite) trains no further.
    func evaluateTargets(_ position: inout RunPosition, _ goal: Target) throws {
        communicator.setContext(step: position.step, phase: "evaluation")
        let start = monotonicSeconds()
        defer { position.evaluation += monotonicSeconds() - start }
        for (r, replica) in replicas.enumerated() where replica.end == nil {
            let point = try modelParameters(replica)
            let train = goal.metric.onTrainingSet ? try evaluate(trainSet, point) : nil
            let (test, validation) = try heldOut(point)
            let evaluated = position.evaluation + monotonicSeconds() - start
            let row = MetricsRow(kind: .evaluation, step: position.step, epoch: Double(position.samples) / Double(trainSet.count),
                                 samples: position.samples, wallSeconds: wallSeconds(),
                                 learningRate: rates.rate(replica: r, step: position.step),
                                 trainLoss: train?.loss, trainAccuracy: train?.accuracy, testLoss: test?.loss, testAccuracy: test?.accuracy,
                                 validationLoss: validation?.loss, validationAccuracy: validation?.accuracy, evaluationSeconds: evaluated)
            (replica.progress.lastTestLoss, replica.progress.lastTestAccuracy) = (test?.loss, test?.accuracy)
            (replica.progress.lastValidationLoss, replica.progress.lastValidationAccuracy) = (validation?.loss, validation?.accuracy)
            if let train { (replica.progress.lastTrainLoss, replica.progress.lastTrainAccuracy) = (train.loss, train.accuracy) }
            try replica.write(row)
            let value = row.value(of: goal.metric)
            if !value.isFinite {
                replica.end = .diverged(step: position.step, samples: position.samples, reason: "the \(goal.metric.rawValue) is \(value) at step \(position.step)")
            } else if goal.reached(value) {
                replica.end = .reached(row)
                console.note((replicas.count > 1 ? "\(replica.label): " : "") + "reached \(goal.text) at step \(position.step) "
                             + "(\(goal.metric.rawValue) \(fixed(value, 4)))")
            }
        }
    }

    /// At the first evaluation at or after the pruner's next rung: the replicas behind stop training.
    func prune(_ position: RunPosition, _ goal: Target) {
        guard let pruner, rung < pruner.rungs.count, position.step >= pruner.rungs[rung] else { return }
        while rung < pruner.rungs.count && pruner.rungs[rung] <= position.step { rung += 1 }
        let candidates = replicas.indices.compactMap { r -> (index: Int, reached: Int?, value: Double)? in
            let value = replicas[r].history.last { $0.kind == .evaluation }?.value(of: goal.metric) ?? .nan
            switch replicas[r].end {
            case nil: return (r, nil, value)
            case .reached(let row)?: return (r, row.step, value)
            default: return nil
            }
        }
        let kept = Set(pruner.keep(candidates, metric: goal.metric))
        var retired = 0
        for c in candidates where c.reached == nil && !kept.contains(c.index) {
            replicas[c.index].end = .pruned(step: position.step, samples: position.samples)
            retired += 1
        }
        if retired > 0 {
            console.note("step \(position.step): \(retired) of \(candidates.count) trials retired behind the best "
                         + "\(kept.count) (successive halving, 1/\(pruner.reduction) go on)")
        }
    }

    /// The console line of an epoch row.
    /// Loss and accuracy on the test set (when there is one) and on the validation split (when held out).
    private func heldOut(_ parameters: [Float]) throws -> (test: (loss: Double, accuracy: Double)?, validation: (loss: Double, accuracy: Double)?) {
        (testSet.count > 0 ? try evaluate(testSet, parameters) : nil, try validationSet.map { try evaluate($0, parameters) })
    }

    static func epochLine(_ row: MetricsRow, skipped: Int) -> String {
        "epoch \(fixed(row.epoch, 2)) step \(row.step): batch loss \(fixed(row.batchLoss ?? .nan, 4))"
            + (row.trainLoss.map { ", train loss \(fixed($0, 4)) acc \(fixed(row.trainAccuracy ?? .nan, 4))" } ?? "")
            + (row.testLoss.map { ", test loss \(fixed($0, 4)) acc \(fixed(row.testAccuracy ?? .nan, 4))" } ?? "")
            + (row.validationLoss.map { ", val loss \(fixed($0, 4)) acc \(fixed(row.validationAccuracy ?? .nan, 4))" } ?? "")
            + (row.noiseScale.map { ", noise scale \(fixed($0, 0))" } ?? "")
            + (skipped > 0 ? ", \(skipped) skipped step\(skipped == 1 ? "" : "s")" : "")
    }

    /// The step's losses for the progress line: one replica's alone, a few by their labels, many as the best and
    /// the median of those still training.
    func lossText(_ exchanged: Exchanged) -> String {
        guard replicas.count > 1 else { return "loss " + fixed(exchanged.replicas[0].loss, 4) }
        let training = replicas.indices.filter { replicas[$0].end == nil }
        let losses = training.map { (label: replicas[$0].label, loss: exchanged.replicas[$0].loss) }
        guard losses.count > 8 else { return "loss " + losses.map { "\($0.label) \(fixed($0.loss, 4))" }.joined(separator: ", ") + "," }
        let sorted = losses.filter { $0.loss.isFinite }.sorted { $0.loss < $1.loss }
        guard let best = sorted.first else { return "loss not finite in \(losses.count) replicas," }
        return "loss best \(fixed(best.loss, 4)) (\(best.label)), median \(fixed(sorted[sorted.count / 2].loss, 4)) of \(losses.count) replicas,"
    }

    /// The progress line: step, the step's losses, throughput and time left (built only when it is printed).
    func showProgress(_ position: RunPosition, epoch: Int, _ exchanged: Exchanged, now: Double) {
        console.progress({
            let busy = position.compute + position.exchange + replicas.map(\.progress.updateSeconds).reduce(0, +)
            let rate = Double(position.samples) / max(busy, 1e-9)
            return "epoch \(epoch + 1) step \(position.step)/\(plannedSteps) " + lossText(exchanged)
                + " \(Int(rate)) samples/s ETA \(durationText(Double((plannedSteps - position.step) * globalBatch) / rate))"
        }(), now: now)
    }
}
