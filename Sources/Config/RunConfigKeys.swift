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
        Key("model.init", read: { c, r in
            c.model.initialisation = Initialisation(rawValue: try r.string(
                "model.init", default: c.model.initialisation.rawValue, allowed: Initialisation.allCases.map(\.rawValue)))!
        }, value: { "\($0.model.initialisation.rawValue)    # \($0.model.initialisation.formula)" }),
        Key("model.init_std", read: { c, r in
            c.model.initStd = try r.number("model.init_std", default: c.model.initStd, expected: "a standard deviation > 0") { $0 > 0 }
        }, value: { "\($0.model.initStd)" }, when: { $0.model.initialisation == .truncatedNormal }),
        Key("model.init_bias", read: { c, r in
            c.model.initBias = try r.number("model.init_bias", default: c.model.initBias, expected: "a number") { _ in true }
        }, value: { "\($0.model.initBias)" }, when: { $0.model.initBias != 0 }),
        Key("model.init_from", read: { c, r in c.model.initFrom = try r.string("model.init_from", default: c.model.initFrom) },
            value: { yamlQuoted($0.model.initFrom) }, when: { !$0.model.initFrom.isEmpty }),
        Key(block: "optimizer", read: { c, r in c.optimizer = try readOptimizer(&r, prefix: "optimizer.") },
            lines: { $0.optimizer.yamlLines() }),
        Key(block: "schedule", read: { c, r in c.schedule = try readSchedule(&r) }, lines: { $0.scheduleYAMLLines }),
    ] + trainingKeys + checkpointAndGuardKeys + [
        Key("runtime.kernels", read: { c, r in
            c.kernels = KernelMode(rawValue: try r.string("runtime.kernels", default: c.kernels.rawValue,
                                                          allowed: KernelMode.allCases.map(\.rawValue)))!
        }, value: { "\($0.kernels.rawValue)" + ($0.kernels == .portable ? "    # the same bits on every x86-64 CPU with AVX2 and FMA" : "    # OpenBLAS, this CPU's fastest kernels") }),
        Key("runtime.blas_threads", .free, read: { c, r in
            let threads = try r.integerOrWord("runtime.blas_threads", default: "auto", words: ["auto"], range: 1...1024)
            c.blasThreads = threads == "auto" ? nil : Int(threads)
        }, value: { $0.blasThreads.map(String.init) ?? "auto" }),
        Key("output.dir", .free, read: { c, r in c.outputDirectory = try r.string("output.dir", default: c.outputDirectory) },
            value: { yamlQuoted($0.outputDirectory) }),
    ]

    private static let dataKeys: [Key] = [
        Key("data.source", read: { c, r in
            c.data.source = DataSource(rawValue: try r.string("data.source", default: c.data.source.rawValue,
                                                              allowed: DataSource.allCases.map(\.rawValue)))!
        }, value: { $0.data.source.rawValue }),
        Key("data.path", read: { c, r in c.data.path = try r.string("data.path", default: c.data.path) },
            value: { yamlQuoted($0.data.path) }),
        Key("data.train_samples", read: { c, r in
            c.data.trainSamples = try r.integer("data.train_samples", default: c.data.trainSamples, range: 1...100_000_000)
        }, value: { "\($0.data.trainSamples)" }),
        Key("data.test_samples", read: { c, r in
            c.data.testSamples = try r.integer("data.test_samples", default: c.data.testSamples, range: 1...100_000_000)
        }, value: { "\($0.data.testSamples)" }),
        Key("data.features", read: { c, r in
            c.data.features = try r.integer("data.features", default: c.data.features, range: 1...1_000_000)
        }, value: { "\($0.data.features)" }),
        Key("data.classes", read: { c, r in
            // Files name their classes in their labels ("auto"); the synthetic problem has 4 unless told.
            let files = [DataSource.idx, .npy].contains(c.data.source)
            let classes = try r.integerOrWord("data.classes", default: files ? "auto" : c.data.classes.map(String.init) ?? "auto",
                                              words: ["auto"], range: 2...100_000)
            c.data.classes = Int(classes)
        }, value: { c in c.data.classes.map(String.init) ?? "auto" }),
        fileKey("data.train_images", \.trainImages, .idx), fileKey("data.train_labels", \.trainLabels, .idx),
        fileKey("data.test_images", \.testImages, .idx), fileKey("data.test_labels", \.testLabels, .idx),
        fileKey("data.x", \.x, .npy), fileKey("data.y", \.y, .npy),
        fileKey("data.test_x", \.testX, .npy), fileKey("data.test_y", \.testY, .npy),
        Key("data.cache", .free, read: { c, r in c.data.cache = try r.string("data.cache", default: c.data.cache) },
            value: { yamlQuoted($0.data.cache) }, when: { !$0.data.cache.isEmpty }),
        Key("data.validation", read: { c, r in
            c.data.validation = try r.number("data.validation", default: c.data.validation,
                                             expected: "a sample count (an integer ≥ 1) or a fraction in (0, 1), or 0 for none") { v in
                v == 0 || (v > 0 && v < 1) || (v >= 1 && v == v.rounded())
            }
        }, value: { c in c.data.validation >= 1 ? "\(Int(c.data.validation))" : "\(c.data.validation)" }, when: { $0.data.validation > 0 }),
        Key("data.noise", read: { c, r in
            c.data.noise = try r.number("data.noise", default: c.data.noise, expected: "a number ≥ 0") { $0 >= 0 }
        }, value: { "\($0.data.noise)" }),
    ]

    /// A data file's path, read and written only with its source.
    private static func fileKey(_ name: String, _ path: WritableKeyPath<Data, String> & Sendable, _ source: DataSource) -> Key {
        Key(name, read: { c, r in c.data[keyPath: path] = try r.string(name, default: c.data[keyPath: path]) },
            value: { yamlQuoted($0.data[keyPath: path]) }, when: { $0.data.source == source })
    }

    private static let trainingKeys: [Key] = [
        Key("training.batch", read: { c, r in
            let batch = try r.integerOrWord("training.batch", default: "\(c.training.batch)", words: ["full"], range: 1...Int(Int32.max))
            c.training.batch = batch == "full" ? .full : .samples(Int(batch)!)
        }, value: { "\($0.training.batch)" }),
        Key("training.epochs", .length, read: { c, r in
            c.training.epochs = try r.integer("training.epochs", default: c.training.epochs, range: 1...1_000_000)
        }, value: { "\($0.training.epochs)" }),
        Key("training.steps", .length, read: { c, r in
            let steps = try r.integer("training.steps", default: c.training.steps ?? 0, range: 0...Int(Int32.max))
            c.training.steps = steps > 0 ? steps : nil
        }, value: { "\($0.training.steps ?? 0)" }),
        Key("training.shuffle", read: { c, r in c.training.shuffle = try r.boolean("training.shuffle", default: c.training.shuffle) },
            value: { "\($0.training.shuffle)" }),
        Key("training.reduction", read: { c, r in
            c.training.reduction = Reduction(rawValue: try r.string(
                "training.reduction", default: c.training.reduction.rawValue, allowed: Reduction.allCases.map(\.rawValue)))!
        }, value: { $0.training.reduction.rawValue }),
        Key("training.chunk", read: { c, r in
            let chunk = try r.integerOrWord("training.chunk", default: "auto", words: ["auto"], range: 1...1_000_000)
            c.training.chunk = chunk == "auto" ? nil : Int(chunk)
        }, value: { $0.training.chunk.map(String.init) ?? "auto" }),
        Key("training.log_every", .free, read: { c, r in
            c.training.logEvery = try r.integer("training.log_every", default: c.training.logEvery, range: 1...Int.max)
        }, value: { "\($0.training.logEvery)" }),
        Key("training.hash_check_every", .free, read: { c, r in
            c.training.hashCheckEvery = try r.integer("training.hash_check_every", default: c.training.hashCheckEvery, range: 1...Int.max)
        }, value: { "\($0.training.hashCheckEvery)" }),
        Key("training.noise_scale_every", .free, read: { c, r in
            c.training.noiseScaleEvery = try r.integer("training.noise_scale_every", default: c.training.noiseScaleEvery, range: 0...Int.max)
        }, value: { "\($0.training.noiseScaleEvery)" }),
        Key("training.eval_train", .free, read: { c, r in
            c.training.evaluateTrainingSet = try r.boolean("training.eval_train", default: c.training.evaluateTrainingSet)
        }, value: { "\($0.training.evaluateTrainingSet)" }),
        Key("training.clip_norm", read: { c, r in
            let clip = try r.number("training.clip_norm", default: c.training.clipNorm ?? 0, expected: "a number ≥ 0 (0: no clipping)") { $0 >= 0 }
            c.training.clipNorm = clip > 0 ? clip : nil
        }, value: { "\($0.training.clipNorm ?? 0)" }),
    ]

    private static let checkpointAndGuardKeys: [Key] = [
        Key("checkpoint.every", .free, read: { c, r in
            c.checkpoint.every = try r.integer("checkpoint.every", default: c.checkpoint.every, range: 0...Int.max)
        }, value: { "\($0.checkpoint.every)" }),
        Key("checkpoint.keep", .free, read: { c, r in
            c.checkpoint.keep = try r.integer("checkpoint.keep", default: c.checkpoint.keep, range: 1...1_000_000)
        }, value: { "\($0.checkpoint.keep)" }),
        Key("checkpoint.resume", .free, read: { c, r in
            c.checkpoint.resume = try r.string("checkpoint.resume", default: c.checkpoint.resume ? "auto" : "never",
                                               allowed: ["never", "auto"]) == "auto"
        }, value: { $0.checkpoint.resume ? "auto" : "never" }),
        Key("guards.non_finite", .free, read: { c, r in
            c.guards.nonFinite = NonFinitePolicy(rawValue: try r.string(
                "guards.non_finite", default: c.guards.nonFinite.rawValue, allowed: NonFinitePolicy.allCases.map(\.rawValue)))!
        }, value: { $0.guards.nonFinite.rawValue }),
        Key("guards.max_skips", .free, read: { c, r in
            c.guards.maxSkips = try r.integer("guards.max_skips", default: c.guards.maxSkips, range: 1...Int.max)
        }, value: { "\($0.guards.maxSkips)" }),
        Key("guards.divergence", .free, read: { c, r in
            c.guards.divergence = try r.number("guards.divergence", default: c.guards.divergence,
                                               expected: "a factor > 1, or 0 for no divergence guard") { $0 == 0 || $0 > 1 }
        }, value: { "\($0.guards.divergence)" }),
        Key("guards.divergence_steps", .free, read: { c, r in
            c.guards.divergenceSteps = try r.integer("guards.divergence_steps", default: c.guards.divergenceSteps, range: 1...Int.max)
        }, value: { "\($0.guards.divergenceSteps)" }),
        Key("guards.collective_timeout", .free, read: { c, r in
            c.guards.collectiveTimeout = try r.number("guards.collective_timeout", default: c.guards.collectiveTimeout,
                                                      expected: "seconds ≥ 0 (0: no deadline)") { $0 >= 0 && $0.isFinite }
        }, value: { "\($0.guards.collectiveTimeout)" }),
    ]
}
