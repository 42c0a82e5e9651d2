// Every key of a training config, once: name, role on resume, how it is read (the default is `RunConfig()`'s
// value) and how the resolved YAML writes it. The order is the resolved YAML's order.
import Collectives
import Models
import Numerics
import Optimizers

extension RunConfig {
    typealias Key = ConfigKey<RunConfig>

    static let keys: [Key] = [
        Key("name", .free, read: { c, r in c.name = try r.string("name", default: c.name) }, value: { $0.name }),
        Key("seed", read: { c, r in c.seed = UInt64(try r.integer("seed", default: Int(c.seed), range: 0...Int.max)) },
            value: { "\($0.seed)" }),
        Key("seeds", .free, read: { c, r in
            c.seeds = try r.countOrList("seeds", first: Int(c.seed), expected: "a number of seeds (1...10000, counting up from seed) "
                                        + "or a list of distinct seeds ≥ 0, like 5 or [1, 2, 3]", element: 0...Int.max)?.map(UInt64.init) ?? []
        }, value: { "[" + $0.seeds.map(String.init).joined(separator: ", ") + "]" }, when: { !$0.seeds.isEmpty }),
    ] + dataKeys + [
        Key("model.kind", read: { c, r in
            c.model.kind = RunConfig.Model.Kind(rawValue: try r.string(
                "model.kind", default: c.model.kind.rawValue, allowed: RunConfig.Model.Kind.allCases.map(\.rawValue)))!
            if c.model.kind == .logreg { c.model.hidden = [] }
        }, value: { $0.model.kind.rawValue }, when: { $0.model.kind != .mlp }),
        Key("model.hidden", read: { c, r in
            c.model.hidden = try r.integerList("model.hidden", default: c.model.hidden, element: 1...1_000_000)
            if c.model.kind == .logreg && !c.model.hidden.isEmpty {
                throw ConfigError(source: r.fileName, key: "model.hidden", expected: "[] (model.kind logreg has no hidden layer)",
                                  found: "[" + c.model.hidden.map(String.init).joined(separator: ", ") + "]")
            }
        }, value: { "[" + $0.model.hidden.map(String.init).joined(separator: ", ") + "]" }, when: { $0.model.kind != .cnn }),
        Key("model.layers", read: { c, r in
            let expected = "a list of layers: conv FILTERS KERNEL, relu, pool (2×2), dense UNITS, like [conv 32 5, relu, pool, dense 1024, relu]"
            guard let words = try r.wordList("model.layers", expected: expected) else {
                if c.model.kind == .cnn {
                    throw ConfigError(source: r.fileName, key: "model.layers", expected: expected + " (model.kind cnn needs them)", found: "nothing")
                }
                return
            }
            guard c.model.kind == .cnn else {
                throw ConfigError(source: r.fileName, key: "model.layers", expected: "no layers list unless model.kind is cnn",
                                  found: "[" + words.joined(separator: ", ") + "]")
            }
            c.model.layers = try words.map { w in
                guard let spec = CNN.LayerSpec(w) else { throw ConfigError(source: r.fileName, key: "model.layers", expected: expected, found: "'\(w)'") }
                return spec
            }
        }, value: { "[" + $0.model.layers.map(\.description).joined(separator: ", ") + "]" }, when: { $0.model.kind == .cnn }),
        .choice("model.init", \.model.initialisation, comment: { $0.formula }),
        .number("model.init_std", \.model.initStd, "a standard deviation > 0", { $0 > 0 },
                when: { $0.model.initialisation == .truncatedNormal }),
        .number("model.init_scale", \.model.initScale, "a factor > 0", { $0 > 0 },
                when: { $0.model.initScale != 1 && $0.model.initialisation != .zeros }),
        .number("model.init_bias", \.model.initBias, "a number", { _ in true }, when: { $0.model.initBias != 0 }),
        .text("model.init_from", \.model.initFrom, when: { !$0.model.initFrom.isEmpty }),
        Key(block: "optimizer", read: { c, r in c.optimizer = try readOptimizer(&r, prefix: "optimizer.") },
            lines: { $0.optimizer.yamlLines() }),
        Key(block: "schedule", read: { c, r in c.schedule = try readSchedule(&r) }, lines: { $0.scheduleYAMLLines }),
    ] + trainingKeys + checkpointAndGuardKeys + curvatureKeys + [
        .choice("runtime.kernels", \.kernels,
                comment: { $0 == .portable ? "the same bits on every x86-64 CPU with AVX2 and FMA" : "OpenBLAS, this CPU's fastest kernels" }),
        Key("runtime.blas_threads", .free, read: { c, r in
            let threads = try r.integerOrWord("runtime.blas_threads", default: "auto", words: ["auto"], range: 1...1024)
            c.blasThreads = threads == "auto" ? nil : Int(threads)
        }, value: { $0.blasThreads.map(String.init) ?? "auto" }),
        .text("output.dir", \.outputDirectory, role: .free),
    ]

    private static let dataKeys: [Key] = [
        .choice("data.source", \.data.source),
        .text("data.path", \.data.path).applying(when: { $0.data.source == .fashionMNIST }),
        .integer("data.train_samples", \.data.trainSamples, 1...100_000_000).applying(when: synthetic),
        .integer("data.test_samples", \.data.testSamples, 1...100_000_000).applying(when: synthetic),
        .integer("data.features", \.data.features, 1...1_000_000).applying(when: synthetic),
        Key("data.classes", read: { c, r in
            // Files name their classes in their labels ("auto"); the synthetic problem has 4 unless told.
            let files = [DataSource.idx, .npy].contains(c.data.source)
            let classes = try r.integerOrWord("data.classes", default: files ? "auto" : c.data.classes.map(String.init) ?? "auto",
                                              words: ["auto"], range: 2...100_000)
            c.data.classes = Int(classes)
        }, value: { c in c.data.classes.map(String.init) ?? "auto" }).applying(when: { $0.data.source != .fashionMNIST }),
        fileKey("data.train_images", \.trainImages, .idx), fileKey("data.train_labels", \.trainLabels, .idx),
        fileKey("data.test_images", \.testImages, .idx), fileKey("data.test_labels", \.testLabels, .idx),
        fileKey("data.x", \.x, .npy), fileKey("data.y", \.y, .npy),
        fileKey("data.test_x", \.testX, .npy), fileKey("data.test_y", \.testY, .npy),
        .text("data.cache", \.data.cache, role: .free, when: { !$0.data.cache.isEmpty }),
        Key("data.validation", read: { c, r in
            c.data.validation = try r.number("data.validation", default: c.data.validation,
                                             expected: "a sample count (an integer ≥ 1) or a fraction in (0, 1), or 0 for none") { v in
                v == 0 || (v > 0 && v < 1) || (v >= 1 && v == v.rounded())
            }
        }, value: { c in c.data.validation >= 1 ? "\(Int(c.data.validation))" : "\(c.data.validation)" }, when: { $0.data.validation > 0 }),
        .integer("data.train_subset", \.data.trainSubset, 0...Int(Int32.max), when: { $0.data.trainSubset > 0 }),
        .number("data.noise", \.data.noise, "a number ≥ 0", { $0 >= 0 }).applying(when: synthetic),
    ]

    /// The generator's keys apply to the synthetic problem only.
    private static let synthetic: @Sendable (RunConfig) -> Bool = { $0.data.source == .synthetic }

    /// A data file's path, read and written only with its source.
    private static func fileKey(_ name: String, _ path: WritableKeyPath<Data, String> & Sendable, _ source: DataSource) -> Key {
        .text(name, (\RunConfig.data).appending(path: path), when: { $0.data.source == source })
    }

    private static let trainingKeys: [Key] = [
        Key("training.batch", read: { c, r in
            let batch = try r.integerOrWord("training.batch", default: "\(c.training.batch)", words: ["full"], range: 1...Int(Int32.max))
            c.training.batch = batch == "full" ? .full : .samples(Int(batch)!)
        }, value: { "\($0.training.batch)" }),
        .integer("training.epochs", \.training.epochs, 1...1_000_000, role: .length),
        Key("training.steps", .length, read: { c, r in
            let steps = try r.integer("training.steps", default: c.training.steps ?? 0, range: 0...Int(Int32.max))
            c.training.steps = steps > 0 ? steps : nil
        }, value: { "\($0.training.steps ?? 0)" }),
        Key("training.early_stop", .length, read: { c, r in
            c.training.earlyStop.metric = try readMetric(&r, "training.early_stop.metric", default: c.training.earlyStop.metric, data: c.data)
            c.training.earlyStop.patience = try r.integer("training.early_stop.patience", default: c.training.earlyStop.patience, range: 1...1_000_000)
            c.training.earlyStop.minDelta = try r.number("training.early_stop.min_delta", default: c.training.earlyStop.minDelta,
                                                         expected: "a number ≥ 0") { $0 >= 0 && $0.isFinite }
        }, lines: { c in
            ["metric: \(c.training.earlyStop.metric?.rawValue ?? "none")", "patience: \(c.training.earlyStop.patience)",
             "min_delta: \(c.training.earlyStop.minDelta)"]
        }),
        .flag("training.shuffle", \.training.shuffle),
        .choice("training.reduction", \.training.reduction),
        Key("training.chunk", read: { c, r in
            let chunk = try r.integerOrWord("training.chunk", default: "auto", words: ["auto"], range: 1...1_000_000)
            c.training.chunk = chunk == "auto" ? nil : Int(chunk)
        }, value: { $0.training.chunk.map(String.init) ?? "auto" }),
        .integer("training.log_every", \.training.logEvery, 1...Int.max, role: .free),
        .integer("training.hash_check_every", \.training.hashCheckEvery, 1...Int.max, role: .free),
        .integer("training.noise_scale_every", \.training.noiseScaleEvery, 0...Int.max, role: .free),
        .flag("training.eval_train", \.training.evaluateTrainingSet, role: .free),
        Key("training.clip_norm", read: { c, r in
            let clip = try r.number("training.clip_norm", default: c.training.clipNorm ?? 0, expected: "a number ≥ 0 (0: no clipping)") { $0 >= 0 }
            c.training.clipNorm = clip > 0 ? clip : nil
        }, value: { "\($0.training.clipNorm ?? 0)" }),
    ]

    /// A metric the data must give, or none.
    private static func readMetric(_ r: inout ConfigReader, _ name: String, default value: Target.Metric?, data: RunConfig.Data) throws -> Target.Metric? {
        let word = try r.string(name, default: value?.rawValue ?? "none", allowed: ["none"] + Target.Metric.allCases.map(\.rawValue))
        guard let metric = Target.Metric(rawValue: word) else { return nil }
        try metric.check(in: data, key: name, source: r.source(of: name) ?? r.fileName)
        return metric
    }

    /// Measuring the curvature changes no parameter: every key may change on resume.
    private static let curvatureKeys: [Key] = [
        .integer("curvature.every", \.curvature.every, 0...Int.max, role: .free, when: { $0.curvature.every > 0 }),
        .integer("curvature.subset", \.curvature.subset, 1...100_000_000, role: .free, when: { $0.curvature.every > 0 }),
        .integer("curvature.iterations", \.curvature.iterations, 1...1000, role: .free, when: { $0.curvature.every > 0 }),
        Key("curvature.top_k", .free, read: { c, r in
            c.curvature.topK = try r.integer("curvature.top_k", default: c.curvature.topK, range: 1...1000)
            guard c.curvature.topK <= c.curvature.iterations else {
                throw ConfigError(source: r.source(of: "curvature.top_k") ?? r.fileName, key: "curvature.top_k",
                                  expected: "at most curvature.iterations (\(c.curvature.iterations))", found: "\(c.curvature.topK)")
            }
        }, value: { "\($0.curvature.topK)" }, when: { $0.curvature.every > 0 }),
        .integer("curvature.trace_probes", \.curvature.traceProbes, 0...10_000, role: .free, when: { $0.curvature.every > 0 }),
        .flag("curvature.preconditioned", \.curvature.preconditioned, role: .free, when: { $0.curvature.every > 0 }),
    ]

    private static let checkpointAndGuardKeys: [Key] = [
        .integer("checkpoint.every", \.checkpoint.every, 0...Int.max, role: .free),
        .integer("checkpoint.keep", \.checkpoint.keep, 1...1_000_000, role: .free),
        Key("checkpoint.resume", .free, read: { c, r in
            c.checkpoint.resume = try r.string("checkpoint.resume", default: c.checkpoint.resume ? "auto" : "never",
                                               allowed: ["never", "auto"]) == "auto"
        }, value: { $0.checkpoint.resume ? "auto" : "never" }),
        Key("checkpoint.best", .free, read: { c, r in c.checkpoint.best = try readMetric(&r, "checkpoint.best", default: c.checkpoint.best, data: c.data) },
            value: { $0.checkpoint.best?.rawValue ?? "none" }),
        .choice("guards.non_finite", \.guards.nonFinite, role: .free),
        .integer("guards.max_skips", \.guards.maxSkips, 1...Int.max, role: .free),
        .number("guards.divergence", \.guards.divergence, "a factor > 1, or 0 for no divergence guard", { $0 == 0 || $0 > 1 }, role: .free),
        .integer("guards.divergence_steps", \.guards.divergenceSteps, 1...Int.max, role: .free),
        .number("guards.collective_timeout", \.guards.collectiveTimeout, "seconds ≥ 0 (0: no deadline)", { $0 >= 0 && $0.isFinite }, role: .free),
    ]
}
