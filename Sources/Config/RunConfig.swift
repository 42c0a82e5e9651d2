// The typed, validated configuration of a training run, its defaults, and its resolved YAML form.
import Models
import Collectives
import Datasets
import Numerics
import Optimizers

/// Everything a training run is told. Built only through `load`, which validates every key.
public struct RunConfig: Equatable, Sendable {
    public enum DataSource: String, CaseIterable, Sendable { case fashionMNIST = "fashion-mnist", synthetic, idx, npy }

    public struct Data: Equatable, Sendable {
        public var source: DataSource = .fashionMNIST
        /// Folder with the four IDX files (fashion-mnist).
        public var path: String = FashionMNIST.defaultDirectory
        /// Synthetic problem: training and test samples, features, classes, noise σ.
        public var trainSamples = 4096
        public var testSamples = 1024
        public var features = 32
        /// Classes: the synthetic problem's; with idx or npy files, nil (the largest label + 1) unless set.
        public var classes: Int? = 4
        public var noise = 1.0
        /// idx: the image and label files of each split.
        public var trainImages = "", trainLabels = "", testImages = "", testLabels = ""
        /// npy: the feature and label arrays of each split (the test pair may be left out: no test set).
        public var x = "", y = "", testX = "", testY = ""
        /// Where gzipped data files are decompressed once for all ranks: empty for a `.descent-cache` folder next to
        /// the data (when writable), a folder, or `off` (each rank decompresses into its own memory).
        public var cache = ""
        /// Training samples held out for validation: a count (≥ 1) or a fraction (< 1) of the training set; 0: none.
        public var validation = 0.0
        /// Train on this many of the training samples (after the validation split), drawn once from the seed; 0: all.
        public var trainSubset = 0

        /// The validation samples out of `trainingSamples`.
        public func validationCount(of trainingSamples: Int) -> Int {
            validation >= 1 ? Int(validation) : Int((validation * Double(trainingSamples)).rounded())
        }
    }

    public struct Model: Equatable, Sendable {
        public enum Kind: String, CaseIterable, Sendable {
            /// ReLU hidden layers (`hidden`), softmax cross-entropy.
            case mlp
            /// Softmax regression: no hidden layer; the convex case.
            case logreg
            /// Convolutions, pooling and dense layers (`layers`), on images.
            case cnn
        }
        /// A cnn's layers, before the dense layer to the classes.
        public var layers: [CNN.LayerSpec] = []
        public var kind = Kind.mlp
        public var hidden: [Int] = [100, 100, 100, 100]
        /// How the weights start (biases start at 0).
        public var initialisation = Initialisation.he
        /// σ of `truncated-normal` weights, and every bias's starting value.
        public var initStd = 0.05
        /// Every layer's initial σ times this (He × 0.25 … 4).
        public var initScale = 1.0
        public var initBias = 0.0
        /// A model.safetensors file whose tensors (the model's names and shapes) are the starting parameters instead.
        public var initFrom = ""
    }

    public enum Batch: Equatable, Sendable, CustomStringConvertible {
        case samples(Int)
        case full
        public var description: String {
            switch self {
            case .samples(let n): return String(n)
            case .full: return "full"
            }
        }
        static let listExpected = "a list of global batch sizes (integers ≥ 1 or full), like [32, 128, 1024, full]"
        /// `full`, or a whole number ≥ 1.
        public init?(_ word: String) {
            if word == "full" {
                self = .full
            } else if let n = Int(word), n >= 1 {
                self = .samples(n)
            } else {
                return nil
            }
        }
    }

    public struct Training: Equatable, Sendable {
        public var batch: Batch = .samples(128)
        public var epochs = 5
        /// When set, the run stops after this many optimizer steps instead.
        public var steps: Int? = nil
        /// An earlier end when a metric stops improving.
        public var earlyStop = EarlyStop()
        public var shuffle = true
        /// How the ranks' gradients are added: bit-identical for any number of ranks, or MPI's allreduce.
        public var reduction = Reduction.deterministic
        /// Samples per forward/backward pass (nil: automatic, see `chunkSize`). With the deterministic
        /// reduction the chunks are also the fixed grid whose sums are added along one tree.
        public var chunk: Int? = nil

        /// The chunk size for a global batch of `globalBatch` samples: `chunk` when set; otherwise 1024 for the
        /// mpi reduction, and for the deterministic one a sixteenth of the batch as a power of two, within
        /// 64…1024 (but at most half the batch, so that two ranks share it): passes of at least 64 samples keep
        /// the matrix products efficient, and large batches get 16 chunks or more to share out. It depends on
        /// the batch only, never on the number of ranks.
        public func chunkSize(globalBatch: Int) -> Int {
            if let chunk { return chunk }
            guard reduction == .deterministic else { return 1024 }
            func powerOfTwo(atMost n: Int) -> Int { n < 1 ? 1 : 1 << (Int.bitWidth - 1 - n.leadingZeroBitCount) }
            let floor = min(64, powerOfTwo(atMost: globalBatch / 2))
            return min(1024, max(floor, powerOfTwo(atMost: globalBatch / 16)))
        }

        public init() {}
        /// Steps between metric rows.
        public var logEvery = 50
        /// Steps between cross-rank parameter-hash checks.
        public var hashCheckEvery = 100
        /// Steps between the steps that measure the gradient noise scale (0: never). Each measured step costs
        /// two extra passes over the gradient; every 10th keeps that near 1 % of a batch-128 step.
        public var noiseScaleEvery = 10
        /// Evaluate the whole training set at each epoch end (exact train loss and accuracy).
        public var evaluateTrainingSet = true
        /// Clip the averaged gradient to this global L2 norm (torch's clip_grad_norm_); nil: no clipping.
        public var clipNorm: Double? = nil
    }

    /// How the learning rate changes over the run and with the global batch.
    public struct Schedule: Equatable, Sendable {
        public var rate = LearningRateSchedule()
        public var batchScaling = BatchScaling.none
        /// The global batch the configured lr was tuned for (needed when batchScaling is not none).
        public var referenceBatch: Int? = nil
    }

    /// When and how checkpoints are written, and whether a run continues from one.
    public struct Checkpoint: Equatable, Sendable {
        /// Steps between checkpoints (0: only at the end of the run and on SIGTERM/SIGUSR1).
        public var every = 500
        /// Committed checkpoints kept; older ones are deleted once a newer one is committed.
        public var keep = 3
        /// Continue from the newest committed checkpoint of the run folder when there is one.
        public var resume = false
        /// Keep the state at the best value of this metric so far (at the epoch ends) as best.ckpt and
        /// best.safetensors; nil: no best checkpoint.
        public var best: Target.Metric? = nil
    }

    /// Stop a run whose `metric` has not improved by more than `minDelta` for `patience` epoch ends.
    public struct EarlyStop: Equatable, Sendable {
        public var metric: Target.Metric? = nil
        public var patience = 5
        public var minDelta = 0.0
    }

    /// What to do when a rank's loss or gradient is not finite.
    public enum NonFinitePolicy: String, CaseIterable, Sendable {
        /// Save the last good state (the parameters before the step) and stop every rank.
        case stop
        /// Skip the optimizer update on every rank and go on with the next batch.
        case skip
        /// Apply the update anyway (watch a run diverge).
        case ignore
    }

    /// The Hessian of the training loss, measured while training (Lanczos on exact Hessian-vector products).
    public struct Curvature: Equatable, Sendable {
        /// Steps between measurements (0: none); a fresh run also measures before its first step.
        public var every = 0
        /// Training samples the Hessian is taken over, drawn once from the seed (all of them when fewer).
        public var subset = 5000
        /// Lanczos iterations per measurement: one Hessian-vector product each.
        public var iterations = 20
        /// Eigenvalues from the top recorded (the first is the sharpness).
        public var topK = 1
        /// Hutchinson probes for the trace beyond the Lanczos start vector, which is one (a product each).
        public var traceProbes = 0
        /// For Adam, AdamW and RMSProp also λ_max(P⁻¹H) with the rule's preconditioner (a second Lanczos run).
        public var preconditioned = true
    }

    /// Collective guards against bad numbers and hung ranks.
    public struct Guards: Equatable, Sendable {
        public var nonFinite = NonFinitePolicy.stop
        /// With `skip`: stop after this many skipped steps in a row.
        public var maxSkips = 10
        /// Stop when the mean loss stays above this multiple of the first step's loss (0: never) …
        public var divergence = 100.0
        /// … for this many steps in a row (a single spike, like RMSProp's second step, is not divergence).
        public var divergenceSteps = 10
        /// Seconds a collective may wait for the other ranks before the job is aborted (0: wait forever).
        public var collectiveTimeout = 300.0
    }

    public var name = "fashion-momentum"
    public var seed: UInt64 = 1
    /// The seeds a launch repeats the run with (`seeds: 5` or a list); empty: once, with `seed`.
    public var seeds: [UInt64] = []
    public var data = Data()
    public var model = Model()
    public var optimizer = OptimizerSettings(.momentum)
    public var schedule = Schedule()
    public var training = Training()
    public var checkpoint = Checkpoint()
    public var guards = Guards()
    public var curvature = Curvature()
    /// The matrix kernels: descent's portable ones (the same bits on every x86-64 CPU) or OpenBLAS's native ones.
    public var kernels = KernelMode.portable
    /// OpenBLAS threads per rank (native kernels); nil chooses from the cores and the ranks on this node.
    public var blasThreads: Int? = nil
    /// Folder that receives `<name>/`.
    public var outputDirectory = "runs"
    /// Where the config's values came from, for messages; not part of what the config is.
    public var origin = Origin()

    /// Where each given key's value came from: a file name or `--set`; a key not given is the file's (its default).
    /// Two configs with the same values are equal wherever they came from.
    public struct Origin: Equatable, Sendable {
        public var file = "config"
        var keys: [String: String] = [:]

        /// The source to name in a message about `key`.
        public func of(_ key: String) -> String { keys[key] ?? file }

        public static func == (_: Origin, _: Origin) -> Bool { true }
    }

    public init() {}

    /// One config per seed of `seeds`, each with its own seed and no list; just this one when there is no list.
    public var perSeed: [RunConfig] {
        seeds.isEmpty ? [self] : seeds.map { s in
            var c = self
            (c.seed, c.seeds) = (s, [])
            return c
        }
    }

    /// The optimizer names this build knows.
    public static let optimizerNames = OptimizerKind.allCases.map(\.rawValue)

    /// Reads `text` (the content of `fileName`), applies `overrides` ("key=value"), validates every key.
    public static func load(yaml text: String, fileName: String, overrides: [String] = []) throws -> RunConfig {
        var r = try ConfigReader(yaml: text, fileName: fileName, overrides: overrides, for: .train)
        let c = try read(&r)
        try r.rejectUnknownKeys()
        return c
    }

    /// Reads and validates every training key from `r`, leaving other keys for the caller (which then rejects
    /// what nobody read).
    static func read(_ r: inout ConfigReader) throws -> RunConfig {
        var c = RunConfig()
        try keys.read(into: &c, from: &r)
        c.origin = Origin(file: r.fileName, keys: r.sources)
        if let error = ConfigError.invalidRunFolder(c.name, source: r.fileName) { throw error }
        if c.training.reduction == .deterministic, let n = c.blasThreads, n > 1 {
            throw ConfigError(source: r.source(of: "runtime.blas_threads") ?? r.fileName, key: "runtime.blas_threads",
                              expected: "1 or auto with training.reduction: deterministic (OpenBLAS splits a product "
                                  + "between its threads in a way that changes its last bits; run more ranks instead, "
                                  + "or set training.reduction: mpi)", found: "\(n)")
        }
        return c
    }

    /// The configuration with every default filled in, as YAML that `load` reads back to the same value.
    public var resolvedYAML: String { Self.keys.resolvedYAML(self) }

    /// The resolved YAML with the keys that do not apply too (at their defaults): what fingerprints the config, so
    /// its hash does not depend on which keys the written form leaves out.
    public var completeYAML: String { Self.keys.resolvedYAML(self, complete: true) }

    var scheduleYAMLLines: [String] { Self.scheduleKeys.flatMap { $0.yaml(schedule) } }
}

// MARK: optimizer and schedule blocks

extension RunConfig {
    /// Reads an optimizer block (`<prefix>name`, `<prefix>variant`, then the keys that optimizer reads) and
    /// checks it; a key that belongs to another optimizer is named as such.
    static func readOptimizer(_ r: inout ConfigReader, prefix: String) throws -> OptimizerSettings {
        let name = try r.string(prefix + "name", default: OptimizerKind.momentum.rawValue, allowed: optimizerNames)
        let kind = OptimizerKind(rawValue: name)!
        var o = OptimizerSettings(kind)
        let variant = try r.string(prefix + "variant", default: o.variant.rawValue)
        guard let typed = OptimizerVariant(rawValue: variant), kind.variants.contains(typed) else {
            throw ConfigError(source: r.source(of: prefix + "variant") ?? r.fileName, key: prefix + "variant",
                              expected: kind.variantsExpected, found: "'\(variant)'")
        }
        o.variant = typed
        for key in kind.keys {
            let rule = OptimizerSettings.rule(for: key)
            switch OptimizerSettings.fields[key]! {
            case .pair(let a, let b):
                let pair = try r.numberList(prefix + key, count: 2, default: [o[keyPath: a], o[keyPath: b]],
                                            expected: rule.expected, rule.valid)
                (o[keyPath: a], o[keyPath: b]) = (pair[0], pair[1])
            case .flag(let f):
                o[keyPath: f] = try r.boolean(prefix + key, default: o[keyPath: f])
            case .number(let f):
                o[keyPath: f] = try r.number(prefix + key, default: o[keyPath: f], expected: rule.expected, rule.valid)
            case .rule(let f):
                let name = try r.string(prefix + key, default: o[keyPath: f].rawValue)
                guard let kind = OptimizerKind(rawValue: name), OptimizerKind.elementwise.contains(kind) else {
                    throw ConfigError(source: r.source(of: prefix + key) ?? r.fileName, key: prefix + key,
                                      expected: OptimizerSettings.othersExpected, found: "'\(name)'")
                }
                o[keyPath: f] = kind
            case .word(let f, let allowed):
                o[keyPath: f] = try r.string(prefix + key, default: o[keyPath: f], allowed: allowed)
            }
        }
        if let e = o.validate() {
            let key = prefix + e.key
            throw ConfigError(source: r.source(of: key) ?? r.source(of: prefix + "name") ?? r.fileName, key: key,
                              expected: e.expected, found: e.found)
        }
        var owners: [String: [String]] = [:]
        for k in OptimizerKind.allCases where k != kind {
            for key in k.keys where !kind.keys.contains(key) { owners[key, default: []].append(k.rawValue) }
        }
        try r.rejectKeys(owners, prefix: prefix,
                         expected: "a key that \(name) reads (" + (["variant"] + kind.keys).joined(separator: ", ") + ")")
        return o
    }

    /// One entry of an optimizer list: its label, its own keys before and after its optimizer block, and the block.
    public struct ListedOptimizer: Equatable, Sendable {
        public var label: String
        public var settings: OptimizerSettings
        public var before: [String] = []
        public var after: [String] = []
    }

    /// The YAML of an optimizer list (`compare.optimizers`, `study.optimizers`, the lab's `optimizers`), the one
    /// writer of them all: `- label: "…"` per entry, then its lines, relative to the list's key.
    public static func optimizerListYAML(_ entries: [ListedOptimizer]) -> [String] {
        entries.flatMap { e -> [String] in
            let lines: [String] = e.before + e.settings.yamlLines() + e.after
            return ["- label: \(yamlQuoted(e.label))"] + lines.map { "  " + $0 }
        }
    }

    /// A folder name for a label: spaces and slashes become '-'.
    public static func folderName(_ label: String) -> String {
        label.replacingOccurrences(of: " ", with: "-").replacingOccurrences(of: "/", with: "-")
    }

    /// Reads a list of optimizer blocks (`<key>[0].name`, …, each with an optional `label`), or nil when `key`
    /// is not given. A label defaults to the name, or to name and rate when a name appears more than once;
    /// labels must differ.
    static func readOptimizerList(_ r: inout ConfigReader, key: String) throws -> [(label: String, settings: OptimizerSettings)]? {
        guard let count = try r.blockCount(key, expected: PathConfig.listExpected) else { return nil }
        var list: [(label: String, settings: OptimizerSettings)] = []
        for k in 0..<count {
            let prefix = "\(key)[\(k)]."
            guard r.source(of: prefix + "name") != nil else {
                throw ConfigError(source: r.keys(under: prefix).first.flatMap(r.source(of:)) ?? r.fileName, key: prefix + "name",
                                  expected: "an optimizer name (" + optimizerNames.joined(separator: ", ") + ")", found: "no name")
            }
            let label = try r.string(prefix + "label", default: "")
            list.append((label, try readOptimizer(&r, prefix: prefix)))
        }
        let names = list.map(\.settings.kind.rawValue)
        for k in list.indices where list[k].label.isEmpty {
            let s = list[k].settings
            list[k].label = names.filter { $0 == s.kind.rawValue }.count > 1
                ? "\(s.kind.rawValue) lr \(shortNumber(s.learningRate))" : s.kind.rawValue
        }
        for k in list.indices {
            if let first = list[..<k].firstIndex(where: { $0.label == list[k].label }) {
                let labelKey = "\(key)[\(k)].label"
                throw ConfigError(source: r.source(of: labelKey) ?? r.source(of: "\(key)[\(k)].name") ?? r.fileName, key: labelKey,
                                  expected: "a label that tells it apart from \(key)[\(first)]",
                                  found: "'\(list[k].label)' twice")
            }
        }
        return list
    }

    typealias ScheduleKey = ConfigKey<Schedule>

    /// The keys each schedule kind reads besides name, warmup and batch scaling, in the resolved YAML's order.
    static let scheduleParameters: [(key: ScheduleKey, kinds: Set<LearningRateSchedule.Kind>)] = [
        (.integer("schedule.step_size", \.rate.stepSize, 1...Int(Int32.max), when: { $0.rate.kind == .step }), [.step]),
        (.number("schedule.gamma", \.rate.gamma, "a factor > 0 (below 1 the rate decays, above 1 it grows)", { $0 > 0 },
                 when: { [.step, .exponential].contains($0.rate.kind) }), [.step, .exponential]),
        (ScheduleKey("schedule.decay_steps", read: { s, r in
            s.rate.decaySteps = Int(try r.integerOrWord("schedule.decay_steps", default: "auto", words: ["auto"], range: 1...Int(Int32.max)))
        }, value: { $0.rate.decaySteps.map(String.init) ?? "auto" }, when: { $0.rate.kind == .cosine }), [.cosine]),
        (.number("schedule.min_lr", \.rate.minimumRate, "a number ≥ 0", { $0 >= 0 }, when: { $0.rate.kind == .cosine }), [.cosine]),
    ]

    /// The schedule block, in order: the kind (which sets every other key's default), warmup, the kind's own keys,
    /// then the batch scaling.
    static let scheduleKeys: [ScheduleKey] = [
        ScheduleKey("schedule.name", read: { s, r in
            let name = try r.string("schedule.name", default: s.rate.kind.rawValue, allowed: LearningRateSchedule.Kind.allCases.map(\.rawValue))
            s.rate = LearningRateSchedule(kind: LearningRateSchedule.Kind(rawValue: name) ?? .constant)
            // A key of another kind is refused, naming the kinds that read it.
            let mine = scheduleParameters.filter { $0.kinds.contains(s.rate.kind) }.map { String($0.key.name.dropFirst("schedule.".count)) }
            var owners: [String: [String]] = [:]
            for (key, kinds) in scheduleParameters where !kinds.contains(s.rate.kind) {
                owners[String(key.name.dropFirst("schedule.".count)), default: []] = LearningRateSchedule.Kind.allCases.filter(kinds.contains).map(\.rawValue)
            }
            try r.rejectKeys(owners, prefix: "schedule.", expected: "a key that the \(name) schedule reads ("
                             + (["warmup_steps"] + mine + ["batch_scaling", "reference_batch"]).joined(separator: ", ") + ")")
        }, value: { $0.rate.kind.rawValue }),
        .integer("schedule.warmup_steps", \.rate.warmupSteps, 0...Int(Int32.max)),
    ] + scheduleParameters.map(\.key) + [
        .choice("schedule.batch_scaling", \.batchScaling),
        ScheduleKey("schedule.reference_batch", read: { s, r in
            let reference = try r.integer("schedule.reference_batch", default: 0, range: 0...Int(Int32.max))
            guard s.batchScaling != .none else { return }
            guard reference > 0 else {
                throw ConfigError(source: r.source(of: "schedule.reference_batch") ?? r.source(of: "schedule.batch_scaling") ?? r.fileName,
                                  key: "schedule.reference_batch",
                                  expected: "the global batch the lr was tuned for (an integer ≥ 1) with batch_scaling \(s.batchScaling.rawValue)",
                                  found: reference == 0 && r.source(of: "schedule.reference_batch") == nil ? "no value" : "\(reference)")
            }
            s.referenceBatch = reference
        }, value: { "\($0.referenceBatch ?? 0)" }, when: { $0.referenceBatch != nil }),
    ]

    static func readSchedule(_ r: inout ConfigReader) throws -> Schedule {
        var s = Schedule()
        try scheduleKeys.read(into: &s, from: &r)
        return s
    }
}

// MARK: comparing configs

extension RunConfig {
    /// One key whose value differs between two configs.
    public struct Difference: Equatable, Sendable {
        public var key: String
        public var this: String
        public var other: String
    }

    /// The keys of the resolved form whose values differ, sorted.
    public func differences(from other: RunConfig) -> [Difference] {
        // Both texts come from `resolvedYAML`, which always parses.
        let a = (try? ConfigReader(yaml: resolvedYAML, fileName: "this"))?.values ?? [:]
        let b = (try? ConfigReader(yaml: other.resolvedYAML, fileName: "other"))?.values ?? [:]
        return Set(a.keys).union(b.keys).sorted().compactMap { key in
            let x = a[key] ?? "(none)", y = b[key] ?? "(none)"
            return x == y ? nil : Difference(key: key, this: x, other: y)
        }
    }

    /// Keys that change what is computed from a checkpoint on: every key whose role is `.trajectory`, and the
    /// run's length when the schedule depends on it (a cosine schedule without `decay_steps`).
    public func trajectoryDifferences(from other: RunConfig) -> [Difference] {
        let lengthMatters = schedule.rate.kind == .cosine && schedule.rate.decaySteps == nil
            || other.schedule.rate.kind == .cosine && other.schedule.rate.decaySteps == nil
        return differences(from: other).filter { d in
            switch Self.keys.role(of: d.key) {
            case .trajectory: return true
            case .free: return false
            case .length: return lengthMatters
            }
        }
    }

    /// A fingerprint of the resolved config.
    public var hash: UInt64 { fingerprint(bytesOf: Array(completeYAML.utf8)) }
}
