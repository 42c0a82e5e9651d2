// The trainer's side of checkpoints: what goes into one, writing it on rank 0, and continuing from one on every
// rank.
import Collectives
import Config
import Datasets
import Foundation
import Numerics
import Optimizers

/// A run stopped at a step boundary because a rank received SIGTERM or SIGUSR1; its state is committed.
public struct StopRequested: Error, CustomStringConvertible, Sendable {
    public var step: Int
    public var checkpoint: String?
    public var signal: String
    public var description: String {
        "stopped at step \(step) on \(signal)" + (checkpoint.map { "; checkpoint \($0) committed, continue with --resume" } ?? "")
    }
}

extension Trainer {
    /// Exit status after a stop on a signal with the state committed (128 + SIGTERM, as a shell reports it).
    public static let stoppedStatus: Int32 = 143

    /// Replica `r`'s whole optimizer state: with a sharded optimizer step every rank's part of each buffer,
    /// gathered (a collective: every rank calls it), so that a checkpoint does not depend on the rank count.
    func wholeOptimizerState(_ r: Replica) throws -> OptimizerState {
        var state = r.optimizer.state()
        let perTensor = tensorBuffers(r)
        let kept = Set(perTensor.map(\.name))
        for name in state.buffers.keys.sorted() where !kept.contains(name) { state.buffers[name] = try whole(state.buffers[name]!) }
        guard let ownedParameters, !perTensor.isEmpty else { return state }
        // Every rank's tensors are one run in parameter order, so their buffers are one run of the concatenation.
        var all = [Float](), counts = [Int](repeating: 0, count: communicator.size)
        for b in perTensor {
            all += ownedParameters.contains(b.start) ? state.buffers[b.name]! : [Float](repeating: 0, count: b.count)
            counts[exchange.ownership.parts.firstIndex { $0.contains(b.start) } ?? 0] += b.count
        }
        try all.withUnsafeMutableBufferPointer {
            try communicator.allGather(Pieces($0, counts: counts, offsets: Pieces<Void>.endToEnd(counts)))
        }
        var at = 0
        for b in perTensor {
            state.buffers[b.name] = Array(all[at..<(at + b.count)])
            at += b.count
        }
        return state
    }

    /// The state replica `r`'s rule keeps per tensor (Shampoo's factors), for every tensor of the model in
    /// parameter order: each buffer's name, size and its tensor's first parameter.
    func tensorBuffers(_ r: Replica) -> [(name: String, count: Int, start: Int)] {
        model.tensorLayout.sorted { ($0.indices.min() ?? 0) < ($1.indices.min() ?? 0) }.flatMap { t in
            r.config.optimizer.tensorBuffers(name: t.name, shape: t.shape).map { ($0.name, $0.count, t.indices.min() ?? 0) }
        }
    }

    /// The model replica `r` stands for: its parameters, or the point its optimizer keeps apart from them
    /// (Schedule-Free's x), made whole (a collective: every rank calls it). Evaluation, the hash and the exported
    /// weights use it; the steps and the checkpoint's parameters use the parameters.
    public func modelParameters(_ r: Replica) throws -> [Float] {
        guard let point = r.optimizer.modelPoint() else { return r.parameters }
        return try whole(point)
    }

    /// A parameter-sized buffer from this rank's part of it: with a sharded optimizer step every rank's part,
    /// gathered (a collective); otherwise `part` is already whole.
    private func whole(_ part: [Float]) throws -> [Float] {
        guard let ownedParameters else { return part }
        var whole = [Float](repeating: 0, count: model.parameterCount)
        whole.replaceSubrange(ownedParameters, with: part)
        try whole.withUnsafeMutableBufferPointer { try exchange.gatherParts($0, over: communicator) }
        return whole
    }

    /// `state` cut to the part of each buffer this rank keeps.
    func ownedPart(of state: OptimizerState, _ r: Replica) -> OptimizerState {
        guard let ownedParameters else { return state }
        var part = state
        let perTensor = tensorBuffers(r), mine = Set(perTensor.filter { ownedParameters.contains($0.start) }.map(\.name))
        let others = Set(perTensor.map(\.name)).subtracting(mine)
        part.buffers = [:]
        for (name, values) in state.buffers where !others.contains(name) {
            part.buffers[name] = mine.contains(name) || values.count != model.parameterCount ? values : Array(values[ownedParameters])
        }
        return part
    }

    /// The checkpoint bytes for the state at `p` (the next step at its epoch and batch), with each replica's whole
    /// optimizer state in `states`.
    func snapshot(_ p: RunPosition, orderHash: UInt64, states: [OptimizerState]) throws -> [UInt8] {
        var buffers: [CheckpointHeader.Buffer] = [], data: [[Float]] = []
        var records: [CheckpointHeader.ReplicaRecord] = []
        for (k, (r, state)) in zip(replicas, states).enumerated() {
            buffers.append(.init(name: "\(k)/parameters", count: r.parameters.count))
            data.append(r.parameters)
            for name in state.buffers.keys.sorted() {
                buffers.append(.init(name: "\(k)/optimizer/\(name)", count: state.buffers[name]!.count))
                data.append(state.buffers[name]!)
            }
            records.append(.init(label: r.label, optimizer: state.name, optimizerStep: state.step, scalars: state.scalars,
                                 progress: r.progress, guards: r.guards))
        }
        let header = CheckpointHeader(
            format: Int(CheckpointStore.formatVersion), position: p, ranks: communicator.size,
            configHash: hexDigest(config.hash), config: config.resolvedYAML,
            random: .init(generator: "xoshiro256** (seed, stream = epoch), Fisher-Yates", seed: config.seed, stream: p.epoch),
            orderHash: hexDigest(orderHash), parameterCount: model.parameterCount, replicas: records, buffers: buffers)
        return try CheckpointStore.encode(header, buffers: data)
    }

    /// At an epoch end (`p`, committed): keeps each replica's state at `checkpoint.best`'s best value so far, and
    /// counts the epoch ends since `training.early_stop`'s metric last improved. True when every replica has waited
    /// `patience` of them: the run ends here.
    func judgeEpoch(_ p: RunPosition, in epoch: PlannedEpoch) throws -> Bool {
        if let metric = config.checkpoint.best {
            for replica in replicas {
                guard let row = replica.history.last(where: { $0.kind == .epoch }), metric.improves(row.value(of: metric), on: replica.progress.bestValue)
                else { continue }
                (replica.progress.bestValue, replica.progress.bestStep) = (row.value(of: metric), p.step)
                try saveBest(replica, p, in: epoch, metric: metric)
            }
        }
        guard let metric = config.training.earlyStop.metric else { return false }
        let stop = config.training.earlyStop
        for replica in replicas {
            let value = replica.history.last(where: { $0.kind == .epoch })?.value(of: metric) ?? .nan
            if metric.improves(value, on: replica.progress.stopBest, by: stop.minDelta) {
                (replica.progress.stopBest, replica.progress.stopWait) = (value, 0)
            } else {
                replica.progress.stopWait = (replica.progress.stopWait ?? 0) + 1
            }
        }
        guard stoppedEarly else { return false }
        console.note("early stop at step \(p.step): \(metric.rawValue) has not improved by more than \(stop.minDelta) "
                     + "for \(stop.patience) epoch\(stop.patience == 1 ? "" : "s")")
        return true
    }

    /// best.safetensors in the replica's folder, and for a single run best.ckpt beside it (resume from it with
    /// --resume-from): the state at `p`, the best so far by `metric`.
    private func saveBest(_ replica: Replica, _ p: RunPosition, in epoch: PlannedEpoch, metric: Target.Metric) throws {
        let value = replica.progress.bestValue ?? .nan
        let checkpoint = checkpointDirectory == nil ? nil : try snapshotState(p, in: epoch)
        let point = try modelParameters(replica)
        try communicator.collectively {
            guard let dir = replica.directory else { return }
            try writeModel(replica, point, step: p.step, extra: ["best_metric": metric.rawValue, "best_value": "\(value)"],
                           to: dir + "/best.safetensors")
            if let checkpoint { try writeAtomically(Data(checkpoint()), to: dir + "/best.ckpt") }
        }
        console.note((replicas.count > 1 ? "\(replica.label): " : "") + "best \(metric.rawValue) so far, \(fixed(value, 4)) at step \(p.step): "
                     + "best.safetensors" + (checkpoint == nil ? "" : " and best.ckpt"))
    }

    /// The checkpoint bytes of the state at `p` (every rank gathers the optimizer states; rank 0 encodes them).
    private func snapshotState(_ p: RunPosition, in epoch: PlannedEpoch) throws -> () throws -> [UInt8] {
        let orderHash = p.epoch == epoch.index ? epoch.orderHash : Self.orderFingerprint(samplePlan(epoch: p.epoch))
        let states = try replicas.map(wholeOptimizerState)
        return { try self.snapshot(p, orderHash: orderHash, states: states) }
    }

    /// Commits a checkpoint of the state at `p`, taken during `epoch` (rank 0 writes; a failure stops every rank).
    /// Returns its path. A position at an epoch's end continues in the next epoch, whose order it records.
    @discardableResult
    func saveCheckpoint(_ p: RunPosition, in epoch: PlannedEpoch) throws -> String? {
        guard let directory = checkpointDirectory else { return nil }
        let path = directory + "/" + CheckpointStore.fileName(step: p.step)
        // A stop right after a checkpoint finds the same state already committed.
        if lastCheckpointStep == p.step { return path }
        lastCheckpointStep = p.step
        communicator.setContext(step: p.step, phase: "checkpoint")
        let rank = communicator.rank
        let hooks = self.hooks
        let bytes = try snapshotState(p, in: epoch)
        let written: String? = try communicator.collectively {
            guard rank == 0 else { return nil }
            return try CheckpointStore.commit(try bytes(), step: p.step, directory: directory, keep: config.checkpoint.keep) {
                hooks?.checkpointWritten(step: p.step)
            }
        }
        if let written { console.note("checkpoint \(written) (step \(p.step))") }
        return path
    }

    /// Rank 0 finds and verifies the checkpoint, every rank receives its bytes, checks that it fits this run
    /// and restores it. Returns nil (start at step 0) when resume was asked for but nothing is committed yet.
    func resume(from explicit: String?, directory: String) throws -> (path: String, header: CheckpointHeader)? {
        let rank = communicator.rank
        let found: (path: String, bytes: [UInt8])? = try communicator.collectively {
            guard rank == 0 else { return nil }
            if let explicit { return (explicit, try CheckpointStore.load(explicit)) }
            guard let record = try CheckpointStore.latest(in: directory) else { return nil }
            let path = directory + "/" + record.file
            let bytes: [UInt8]
            do {
                bytes = try CheckpointStore.load(path)
            } catch let error as CheckpointError {
                let older = CheckpointStore.others(in: directory, except: record.file)
                throw CheckpointError(file: error.file, problem: error.problem + (older.isEmpty ? "" :
                    "; older checkpoints: " + older.joined(separator: ", ") + " (continue from one with --resume-from FILE)"))
            }
            guard hexDigest(CheckpointStore.storedFingerprint(bytes)) == record.fingerprint else {
                throw CheckpointError(file: path, problem: "its fingerprint differs from the one in the commit record LATEST")
            }
            return (path, bytes)
        }
        let path = try communicator.broadcast(text: found?.path ?? "", root: 0)
        if path.isEmpty {
            console.note("no committed checkpoint in \(directory); starting at step 0")
            return nil
        }
        let bytes = try communicator.broadcast(bytes: found?.bytes, root: 0)
        return try communicator.collectively {
            let (header, buffers) = try CheckpointStore.decode(bytes, file: path)
            try restore(header, buffers, file: path)
            console.note("resuming from \(path): step \(header.step), epoch \(header.epoch + 1), batch \(header.batch) "
                         + "(written by \(header.ranks) rank\(header.ranks == 1 ? "" : "s"))")
            return (path, header)
        }
    }

    /// A resumed run can be extended but not shortened: a checkpoint beyond the configured end is refused.
    func checkLength(_ resumed: (path: String, header: CheckpointHeader)?) throws {
        guard let (path, header) = resumed, header.step > plannedSteps else { return }
        let length = config.training.steps.map { "training.steps: \($0)" } ?? "training.epochs: \(config.training.epochs)"
        throw CheckpointError(file: path, problem: "it is at step \(header.step), beyond this run's end at step \(plannedSteps) "
                              + "(\(length)); a resumed run can be extended, not shortened: resume with the checkpoint's length "
                              + "or more, or start a new run (--set name=... or --overwrite)")
    }

    /// Resumed from the run's last step: there is nothing to train, and nothing is rewritten.
    var finishedAlready: Bool { resumedFrom.map { $0.header.step == plannedSteps || stoppedEarly } ?? false }

    /// Every replica has waited `training.early_stop.patience` epoch ends without improving.
    var stoppedEarly: Bool {
        config.training.earlyStop.metric != nil
            && replicas.allSatisfy { ($0.progress.stopWait ?? 0) >= config.training.earlyStop.patience }
    }

    /// Checks that a decoded checkpoint belongs to this run and loads it into the replicas.
    func restore(_ h: CheckpointHeader, _ buffers: [String: [Float]], file: String) throws {
        func fail(_ problem: String) -> CheckpointError { CheckpointError(file: file, problem: problem) }
        let saved: RunConfig
        do {
            // Checkpoints from before training.reduction existed were written with MPI's allreduce.
            let before = try ConfigReader(yaml: h.config, fileName: file).values["training.reduction"] == nil
            saved = try RunConfig.load(yaml: h.config, fileName: file + " (its config)",
                                       overrides: before ? ["training.reduction=mpi", "training.chunk=1024"] : [])
        } catch {
            throw fail("its config cannot be read by this build (\(error))")
        }
        let changed = config.trajectoryDifferences(from: saved)
        guard changed.isEmpty else {
            throw fail("the config differs from the checkpoint's in keys that change the trajectory: "
                       + changed.map { "\($0.key) (checkpoint: \($0.other), now: \($0.this))" }.joined(separator: ", ")
                       + "; resume with the checkpoint's values, or start a new run (--set name=... or --overwrite)")
        }
        if h.ranks != communicator.size && config.training.reduction == .mpi {
            console.note("\(file) was written by \(h.ranks) rank\(h.ranks == 1 ? "" : "s") and this job has \(communicator.size): "
                         + "with training.reduction: mpi the gradient sums are added in another order, so the run goes on "
                         + "within float rounding of the \(h.ranks)-rank run, not bit for bit")
        }
        guard h.parameterCount == model.parameterCount, h.replicas.count == replicas.count else {
            throw fail("it holds \(h.replicas.count) model(s) of \(h.parameterCount) parameters; this run has "
                       + "\(replicas.count) of \(model.parameterCount)")
        }
        for (k, (r, saved)) in zip(replicas, h.replicas).enumerated() {
            guard let theta = buffers["\(k)/parameters"], theta.count == model.parameterCount else {
                throw fail("parameters of model \(k) are missing or of the wrong length")
            }
            var state: [String: [Float]] = [:]
            let prefix = "\(k)/optimizer/"
            for (name, b) in buffers where name.hasPrefix(prefix) { state[String(name.dropFirst(prefix.count))] = b }
            do {
                try r.optimizer.restore(ownedPart(of: OptimizerState(name: saved.optimizer, step: saved.optimizerStep,
                                                                     buffers: state, scalars: saved.scalars), r))
            } catch {
                throw fail("\(error)")
            }
            r.parameters = theta
            r.progress = saved.progress
            r.guards = saved.guards
        }
    }
}
