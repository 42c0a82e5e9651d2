// Setting up a run, in named pieces: the data every rank agrees on, the global batch, BLAS threads, the replicas
// with rank 0's initial parameters, the run folder and its records, and the opening line.
import Collectives
import Config
import Datasets
import Foundation
import Models
import Numerics
import Optimizers

extension Trainer {
    /// The training, validation and test sets, after every rank has checked that it runs the same config on the
    /// same files.
    static func agreedData(_ config: RunConfig, on communicator: Communicator) throws -> (Dataset, Dataset?, Dataset) {
        try Agreement.check(config, on: communicator)
        let (trainSet, validationSet, testSet) = try communicator.collectively { try splitData(config) }
        for file in trainSet.files + testSet.files {
            try Agreement.check("data file \(file.path)", file.identity, on: communicator)
        }
        return (trainSet, validationSet, testSet)
    }

    /// The number of training samples the config's data holds, validation held out (loading it to count).
    public static func trainingSetCount(_ config: RunConfig) throws -> Int { try splitData(config).0.count }

    /// The config's data with `data.validation` samples of the training set held out, and the training set cut to
    /// `data.train_subset` samples.
    static func splitData(_ config: RunConfig) throws -> (Dataset, Dataset?, Dataset) {
        let (all, test) = try loadData(config)
        let held = config.data.validationCount(of: all.count)
        guard held < all.count else {
            throw ConfigError(source: config.origin.of("data.validation"), key: "data.validation",
                              expected: "fewer samples than the training set's \(all.count)", found: "\(held)")
        }
        var (train, validation): (Dataset, Dataset?) = (all, nil)
        if held > 0 { (train, validation) = SubsetDataset.split(all, holdingOut: held, seed: config.seed) }
        if config.data.trainSubset > 0 {
            guard config.data.trainSubset <= train.count else {
                throw ConfigError(source: config.origin.of("data.train_subset"), key: "data.train_subset",
                                  expected: "at most the \(train.count) training samples" + (held > 0 ? " that validation leaves" : ""),
                                  found: "\(config.data.trainSubset)")
            }
            train = SubsetDataset.sample(train, count: config.data.trainSubset, seed: config.seed)
        }
        return (train, validation, test)
    }

    static func loadData(_ config: RunConfig) throws -> (Dataset, Dataset) {
        let d = config.data, cache = DecompressCache(setting: d.cache)
        switch d.source {
        case .fashionMNIST:
            return (try FashionMNIST.load(.train, from: d.path, cache: cache), try FashionMNIST.load(.test, from: d.path, cache: cache))
        case .synthetic:
            func make(_ n: Int, test: Bool) -> Dataset {
                SyntheticClassification(count: n, featureCount: d.features, classCount: d.classes ?? 4,
                                        noise: Float(d.noise), seed: config.seed, test: test)
            }
            return (make(d.trainSamples, test: false), make(d.testSamples, test: true))
        case .idx:
            let files = try requiredFiles(config, [("data.train_images", d.trainImages), ("data.train_labels", d.trainLabels),
                                              ("data.test_images", d.testImages), ("data.test_labels", d.testLabels)])
            let classes = try d.classes ?? ArrayDataset.classesInLabels([files[1], files[3]], npy: false, cache: cache)
            return (try ArrayDataset(images: files[0], labels: files[1], classCount: classes, name: "idx train", cache: cache),
                    try ArrayDataset(images: files[2], labels: files[3], classCount: classes, name: "idx test", cache: cache))
        case .npy:
            let files = try requiredFiles(config, [("data.x", d.x), ("data.y", d.y)])
            let test = d.testX.isEmpty && d.testY.isEmpty ? nil
                : try requiredFiles(config, [("data.test_x", d.testX), ("data.test_y", d.testY)])
            let classes = try d.classes ?? ArrayDataset.classesInLabels([files[1]] + (test.map { [$0[1]] } ?? []), npy: true, cache: cache)
            let train = try ArrayDataset(npyFeatures: files[0], labels: files[1], classCount: classes, name: "npy train", cache: cache)
            guard let test else { return (train, EmptyDataset(like: train)) }
            let testSet = try ArrayDataset(npyFeatures: test[0], labels: test[1], classCount: classes, name: "npy test", cache: cache)
            guard testSet.featureCount == train.featureCount else {
                throw DataFileError(file: test[0], field: "header: shape", expected: "samples of \(train.featureCount) features, as in \(files[0])",
                                    found: "\(testSet.featureCount) features per sample")
            }
            return (train, testSet)
        }
    }

    /// The paths of the files a data source needs, each named by its key when it is missing.
    private static func requiredFiles(_ config: RunConfig, _ keys: [(key: String, path: String)]) throws -> [String] {
        try keys.map { k in
            guard !k.path.isEmpty else {
                throw ConfigError(source: config.origin.of("data.source"), key: k.key,
                                  expected: "a file path (data.source \(config.data.source.rawValue) needs it)",
                                  found: "nothing")
            }
            return k.path
        }
    }

    /// The config's model for the data's samples and classes; shapes that do not fit stop every rank alike.
    static func makeModel(_ config: RunConfig, _ data: Dataset) throws -> any Model {
        switch config.model.kind {
        case .mlp, .logreg:
            return MLP(sizes: [data.featureCount] + config.model.hidden + [data.classCount], initialisation: config.model.initialisation,
                       initialStd: config.model.initStd, initialScale: config.model.initScale, initialBias: Float(config.model.initBias))
        case .cnn:
            do {
                return try CNN(input: data.sampleShape, classes: data.classCount, specs: config.model.layers,
                               initialisation: config.model.initialisation, initialStd: config.model.initStd, initialScale: config.model.initScale,
                               initialBias: Float(config.model.initBias))
            } catch let error as CNN.ShapeError {
                throw AgreedFailure(description: "\(error) (samples of \(data.summary))")
            }
        }
    }

    /// Samples per optimizer step: the configured batch, or the whole training set; with the mpi reduction at
    /// least one per rank (the deterministic one cuts a batch into chunks, and a rank may hold none).
    static func globalBatch(_ config: RunConfig, samples: Int, ranks: Int) throws -> Int {
        let batch: Int
        switch config.training.batch {
        case .full: batch = samples
        case .samples(let n): batch = min(n, samples)
        }
        guard batch >= ranks || config.training.reduction == .deterministic else {
            throw AgreedFailure(description: ConfigError(
                source: config.origin.of("training.batch"), key: "training.batch",
                expected: "a global batch of at least \(ranks) samples (one per rank) with reduction mpi",
                found: "\(batch)").description)
        }
        return batch
    }

    /// The config's matrix kernels on every rank, agreed: ranks whose products would differ (native kernels of
    /// two kinds) stop before step 0 with one message naming them. Returns every rank's kernels, by rank.
    static func agreedKernels(_ config: RunConfig, on communicator: Communicator) throws -> [RankKernels] {
        let mine = try communicator.collectively { try RankKernels(MatrixKernels.use(config.kernels), rank: communicator.rank) }
        let all = try communicator.allGather(text: mine.json).map(RankKernels.init(json:))
        if let conflict = RankKernels.conflict(all) { throw AgreedFailure(description: conflict) }
        return all
    }

    /// OpenBLAS threads per rank (native kernels): the config's; one with the deterministic reduction (the bits
    /// of a product must not depend on how many cores a rank was given); otherwise the node's cores shared
    /// between its ranks. The portable kernels run on the calling thread.
    static func chooseBLASThreads(_ config: RunConfig, ranks: Int) {
        if let threads = config.blasThreads {
            MatrixKernels.threads = threads
        } else if config.training.reduction == .deterministic {
            MatrixKernels.threads = 1
        } else if ranks > 1 {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            MatrixKernels.threads = max(1, cores / max(Launcher.current.ranksOnThisNode ?? 1, 1))
        }
    }

    /// One replica per (label, optimizer), all from rank 0's initial parameters (the broadcast makes that true
    /// whatever the other ranks drew); each optimizer keeps state for the parameters `owned`, and sees their tensors.
    static func makeReplicas(_ plan: [ReplicaPlan], single: Bool, config: RunConfig,
                             model: any Model, owned: Range<Int>, runDirectory: String?,
                             on communicator: Communicator) throws -> [Replica] {
        var initial = try communicator.collectively { () throws -> [Float] in
            if !config.model.initFrom.isEmpty { return try startingParameters(config.model.initFrom, model: model) }
            return communicator.rank == 0 ? model.initialParameters(seed: config.seed) : [Float](repeating: 0, count: model.parameterCount)
        }
        try communicator.broadcast(&initial, root: 0)
        return plan.map { entry in
            var c = config
            c.optimizer = entry.settings
            if !single { c.name = RunConfig.folderName(entry.label) }
            let folder = single ? runDirectory : runDirectory.map { $0 + "/" + c.name }
            let optimizer = entry.settings.makeOptimizer(parameterCount: owned.count, layout: tensors(of: model, in: owned))
            return Replica(label: entry.label, config: c, optimizer: optimizer, parameters: initial, directory: folder)
        }
    }

    /// The model's tensors that lie in `part` of its flat parameters, with where they lie in the part (a tensor
    /// that an element slice cuts keeps the piece inside it).
    static func tensors(of model: any Model, in part: Range<Int>) -> [TensorShape] {
        model.tensorLayout.compactMap { t in
            guard let lo = t.indices.min(), let hi = t.indices.max() else { return nil }
            let inside = (lo..<(hi + 1)).clamped(to: part)
            guard !inside.isEmpty else { return nil }
            // Element k of the tensor (row-major in its shape) is at indices[k]; the positions say so where that
            // is not the order of the range.
            let range = (inside.lowerBound - part.lowerBound)..<(inside.upperBound - part.lowerBound)
            let inOrder = t.indices.enumerated().allSatisfy { $0.element == lo + $0.offset }
            return TensorShape(name: t.name, shape: t.shape, range: range,
                               positions: inOrder || range.count != t.indices.count ? nil : t.indices.map { $0 - part.lowerBound })
        }
    }

    /// The parameters in a weights file (`model.init_from`, or a run's model.safetensors), checked against the
    /// model's tensor names and shapes.
    public static func startingParameters(_ path: String, model: any Model) throws -> [Float] {
        let (tensors, _) = try SafeTensors.read(path: path, names: model.tensorLayout.map(\.name))
        switch model.importTensors(tensors) {
        case .success(let parameters): return parameters
        case .failure(let mismatch):
            let p = mismatch.parts
            throw DataFileError(file: path, field: p.field, expected: p.expected + " (model \(model.shapeText))", found: p.found)
        }
    }

    /// Rank 0 creates the run folder (or keeps a resumed one), writes the resolved config and opens the metrics;
    /// a resumed run that is already at its end leaves the folder untouched.
    func openRecords(single: Bool, overwrite: Bool, resuming: Bool) throws {
        let resumed = resumedFrom != nil, untouched = finishedAlready
        // config.yaml records the run, which trains alone from it: how this launch continues it is not part of it.
        var recorded = config
        recorded.checkpoint.resume = false
        try communicator.collectively {
            guard let runDirectory, !untouched else { return }
            if resuming && !resumed && !overwrite && FileManager.default.fileExists(atPath: runDirectory + "/summary.json") {
                throw OutputError(path: runDirectory, reason: "it holds a finished run but no committed checkpoint to continue "
                                  + "from; train it again with --overwrite, or choose another name with --set name=...")
            }
            if resumed {
                // The folder stays; its record is rewritten up to the checkpoint and continues from there.
                try writeAtomically(recorded.resolvedYAML, to: runDirectory + "/config.yaml")
                replicas[0].metrics = try MetricsWriter(directory: runDirectory, rows: replicas[0].history)
                return
            }
            if !single {
                // The replicas' parent (a comparison's or a study group's folder) keeps what is already in it: its
                // config.yaml, other launches' trials. Each replica's own folder is made anew.
                do {
                    try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
                } catch {
                    throw OutputError(path: runDirectory, reason: error.localizedDescription)
                }
                for r in replicas {
                    try Self.createRunDirectory(r.directory!, overwrite: true)
                    // Each replica's folder is a complete run record: its config trains it alone.
                    try writeAtomically(r.config.resolvedYAML, to: r.directory! + "/config.yaml")
                    r.metrics = try MetricsWriter(directory: r.directory!)
                }
                return
            }
            // With resume requested but nothing committed yet (nor finished), the folder holds no work to lose.
            try Self.createRunDirectory(runDirectory, overwrite: overwrite || resuming)
            try writeAtomically(recorded.resolvedYAML, to: runDirectory + "/config.yaml")
            replicas[0].metrics = try MetricsWriter(directory: runDirectory)
        }
    }

    /// Creates an empty run folder. The one rule of every command that writes a folder of its own (train, compare, study, path): an existing
    /// folder is kept unless `overwrite`, which replaces it whole. `kind` names it in the message ("run folder").
    public static func createRunDirectory(_ path: String, overwrite: Bool, kind: String = "run folder") throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) {
            guard overwrite else {
                throw OutputError(path: path, reason: "the \(kind) already exists (pass --overwrite to replace it, "
                                  + "or choose another name with --set name=...)")
            }
            do { try fm.removeItem(atPath: path) } catch {
                throw OutputError(path: path, reason: "cannot remove the old \(kind): \(error.localizedDescription)")
            }
        }
        do {
            try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw OutputError(path: path, reason: error.localizedDescription)
        }
    }

    /// Replica `r`'s optimizer at its batch-scaled rate, as titles name it: "adam (kingma-ba) lr 0.001".
    func optimizerText(_ r: Int) -> String {
        let o = replicas[r].config.optimizer
        let variant = o.variant == o.kind.variants[0] ? "" : " (\(o.variant))"
        return "\(o.kind.rawValue)\(variant) lr \(rates.base[r])"
    }

    /// Every replica's optimizer and rate, then how the rates are scaled and scheduled.
    var optimizerText: String {
        replicas.indices.map(optimizerText).joined(separator: ", ") + rates.scheduleText
    }

    /// The opening line: ranks, data, model, optimizers, batch, steps.
    func announce() {
        let size = communicator.size, n = trainSet.count
        console.note("descent: \(size) rank\(size == 1 ? "" : "s"), \(trainSet.summary), model "
                     + model.shapeText + " (\(model.parameterCount) parameters), "
                     + (replicas.count > 1 ? "\(replicas.count) replicas on the same batches: " : "")
                     + optimizerText + ", batch \(config.training.batch), \(plannedSteps) steps "
                     + "(\((n + globalBatch - 1) / globalBatch) per epoch), kernels \(kernels[0].choice.description)"
                     + (kernels[0].choice.mode == .native ? ", BLAS threads \(MatrixKernels.threads)" : "")
                     + (ownedParameters == nil ? "" : ", optimizer state sharded over \(size) ranks"))
        if case .tensors = exchange.ownership.unit { console.note("whole tensors by rank: " + tensorAssignment) }
    }

    /// With whole tensors per rank: each rank's tensors and its share of the update's cost.
    var tensorAssignment: String {
        let plan = exchange.ownership
        guard case let .tensors(sizes, costs) = plan.unit else { return "" }
        let names = Self.tilingTensors(of: model)?.map(\.name) ?? []
        let starts = Pieces<Void>.endToEnd(sizes)
        let total = costs.reduce(0, +)
        return plan.parts.enumerated().map { q, part in
            let mine = sizes.indices.filter { part.contains(starts[$0]) }
            let share = mine.map { costs[$0] }.reduce(0, +) / total
            return "rank \(q): " + (mine.isEmpty ? "none" : mine.map { names[$0] }.joined(separator: ", ")) + " (\(Int((share * 100).rounded())) %)"
        }.joined(separator: "; ")
    }

    /// Who updates what in a sharded step: equal element slices, or, for a rule that updates a matrix at a time,
    /// whole tensors balanced by their cost. Tensors that do not tile the parameters in order are updated by every
    /// rank.
    static func ownershipUnit(_ plan: [ReplicaPlan], model: any Model) -> OwnershipPlan.Unit {
        guard let settings = plan.first?.settings, plan.count == 1 else { return .elements }
        if settings.kind.evaluatesAgain { return .everything }  // L-BFGS needs every parameter on every rank
        guard settings.kind.updatesWholeTensors else { return .elements }
        guard let tensors = tilingTensors(of: model) else { return .everything }
        return .tensors(sizes: tensors.map(\.indices.count), costs: tensors.map { settings.updateCost(shape: $0.shape) })
    }

    /// The model's tensors in parameter order when each is one contiguous run and together they tile the parameters.
    static func tilingTensors(of model: any Model) -> [TensorLayout]? {
        let tensors = model.tensorLayout.sorted { ($0.indices.min() ?? 0) < ($1.indices.min() ?? 0) }
        var next = 0
        for t in tensors {
            guard let lo = t.indices.min(), let hi = t.indices.max(), lo == next, hi - lo + 1 == t.indices.count else { return nil }
            next = hi + 1
        }
        return next == model.parameterCount ? tensors : nil
    }
}
