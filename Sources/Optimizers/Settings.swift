// The optimizer a run asks for: its name, variant and hyperparameters with torch.optim's defaults, the rules
// that reject bad values (naming the key), and the factory that builds it.

/// The forms a rule comes in, by their configuration names (`optimizer.variant`); `OptimizerKind.variants` says
/// which ones each optimizer has.
public enum OptimizerVariant: String, CaseIterable, Sendable {
    /// torch.optim's own form (every optimizer but AngularGrad).
    case torch
    /// SGD with momentum as seed 001 writes it (v ← μv − γg; θ ← θ + v), and as Andrew Ng's EWMA (seed 003).
    case sutskever, ewma
    /// Adam's textbook forms (seeds 003 and 004, the paper); `eps-inside-sqrt` is AdaGrad's and RMSProp's too.
    case noBiasCorrection = "no-bias-correction", kingmaBa = "kingma-ba", epsInsideSqrt = "eps-inside-sqrt"
    case epsInsideSqrtNoBiasCorrection = "eps-inside-sqrt-no-bias-correction"
    /// AngularGrad: the authors' code and the paper's description, cos and tan.
    case cos, tan, paperCos = "paper-cos", paperTan = "paper-tan"
}

/// The optimizers descent knows, by configuration name.
public enum OptimizerKind: String, CaseIterable, Sendable {
    case sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, adamw, nadam, angulargrad, radam, adamax, lion, asgd, rprop
    case scheduleFreeSGD = "schedule-free-sgd", scheduleFreeAdamW = "schedule-free-adamw"
    case muon, adafactor, shampoo
    case lbfgs
    case newton, saddleFreeNewton = "saddle-free-newton", newtonCG = "newton-cg"

    /// Its variants, the default first.
    public var variants: [OptimizerVariant] {
        switch self {
        case .sgd, .momentum: return [.torch, .sutskever, .ewma]
        case .nesterov, .adadelta, .nadam, .radam, .adamax, .lion, .asgd, .rprop, .scheduleFreeSGD, .scheduleFreeAdamW, .muon, .adafactor,
             .shampoo, .lbfgs, .newton, .saddleFreeNewton, .newtonCG: return [.torch]
        case .adagrad, .rmsprop: return [.torch, .epsInsideSqrt]
        case .adam, .adamw: return [.torch, .noBiasCorrection, .kingmaBa, .epsInsideSqrt, .epsInsideSqrtNoBiasCorrection]
        case .angulargrad: return [.cos, .tan, .paperCos, .paperTan]
        }
    }

    /// What `variant` must be for this optimizer.
    public var variantsExpected: String { "one of " + variants.map(\.rawValue).joined(separator: ", ") + " for \(rawValue)" }

    /// The hyperparameter keys it reads, in the order they are documented (besides `name` and `variant`).
    public var keys: [String] {
        switch self {
        case .sgd, .momentum: return ["lr", "momentum", "dampening", "nesterov", "weight_decay"]
        case .nesterov: return ["lr", "momentum", "weight_decay"]
        case .adagrad: return ["lr", "lr_decay", "initial_accumulator_value", "eps", "weight_decay"]
        case .rmsprop: return ["lr", "alpha", "eps", "momentum", "centered", "weight_decay"]
        case .adadelta: return ["lr", "rho", "eps", "weight_decay"]
        case .adam, .adamw: return ["lr", "betas", "eps", "weight_decay", "amsgrad"]
        case .nadam: return ["lr", "betas", "eps", "weight_decay", "momentum_decay"]
        case .angulargrad: return ["lr", "betas", "eps", "weight_decay"]
        case .radam: return ["lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"]
        case .adamax: return ["lr", "betas", "eps", "weight_decay"]
        case .lion: return ["lr", "betas", "weight_decay"]
        case .asgd: return ["lr", "lambd", "alpha", "t0", "weight_decay"]
        case .rprop: return ["lr", "etas", "step_sizes"]
        case .scheduleFreeSGD: return ["lr", "momentum", "weight_decay", "warmup_steps", "r", "weight_lr_power"]
        case .scheduleFreeAdamW: return ["lr", "betas", "eps", "weight_decay", "warmup_steps", "r", "weight_lr_power"]
        case .muon: return ["lr", "momentum", "nesterov", "weight_decay", "eps", "ns_steps", "others", "others_lr"]
        case .adafactor: return ["lr", "beta2_decay", "eps1", "eps2", "d", "weight_decay"]
        case .shampoo: return ["lr", "betas", "epsilon", "momentum", "nesterov", "weight_decay", "decoupled_weight_decay",
                               "max_preconditioner_dim", "precondition_frequency", "start_preconditioning_step", "grafting",
                               "grafting_beta2", "grafting_epsilon"]
        case .lbfgs: return ["lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn"]
        case .newton, .saddleFreeNewton: return ["lr", "damping"]
        case .newtonCG: return ["lr", "damping", "cg_iterations", "cg_tolerance", "gauss_newton"]
        }
    }

    /// Whether it updates a weight matrix as a whole (so a sharded step gives each rank whole tensors).
    public var updatesWholeTensors: Bool { self == .muon || self == .adafactor || self == .shampoo }

    /// Whether a step evaluates the loss and gradient again at points of its own (L-BFGS): it then needs every
    /// parameter on every rank, and one data-parallel pass per evaluation.
    public var evaluatesAgain: Bool { self == .lbfgs || needsProducts }

    /// Whether a step takes Hessian-vector products (the Newton family): the model must give them.
    public var needsProducts: Bool { self == .newton || self == .saddleFreeNewton || self == .newtonCG }

    /// Whether a step forms the whole Hessian (one product per parameter): for models of at most `Newton.denseLimit`.
    public var formsHessian: Bool { self == .newton || self == .saddleFreeNewton }

    /// The rules that can update the tensors a matrix rule leaves (Muon's biases): every element-wise one whose
    /// parameters are its model.
    public static var elementwise: [OptimizerKind] {
        allCases.filter { !$0.updatesWholeTensors && !$0.evaluatesAgain && $0 != .scheduleFreeSGD && $0 != .scheduleFreeAdamW }
    }
}

/// A hyperparameter that fails its rule: the key (without the `optimizer.` prefix), what was expected, what
/// was found.
public struct HyperparameterError: Error, Equatable, CustomStringConvertible, Sendable {
    public var key: String
    public var expected: String
    public var found: String
    public var description: String { "\(key): expected \(expected), found \(found)" }
}

/// Name, variant and hyperparameters of one optimizer. Fields the chosen optimizer does not read keep its
/// defaults and are ignored.
public struct OptimizerSettings: Equatable, Sendable {
    public var kind: OptimizerKind
    public var variant: OptimizerVariant
    public var learningRate: Double
    public var momentum = 0.0
    public var dampening = 0.0
    public var nesterov = false
    public var weightDecay = 0.0
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var eps = 1e-8
    public var learningRateDecay = 0.0
    public var initialAccumulatorValue = 0.0
    public var alpha = 0.99
    public var centered = false
    public var rho = 0.9
    public var amsgrad = false
    public var momentumDecay = 4e-3
    public var decoupledWeightDecay = false
    public var lambd = 1e-4
    public var t0 = 1e6
    public var etaMinus = 0.5, etaPlus = 1.2
    public var stepSizeMin = 1e-6, stepSizeMax = 50.0
    public var warmupSteps = 0.0, r = 0.0, weightLRPower = 2.0
    /// Muon: Newton–Schulz steps, and the element-wise rule (at its defaults, with rate `othersLearningRate`) for
    /// the tensors that are not matrices.
    public var nsSteps = 5.0, others = OptimizerKind.adamw, othersLearningRate = 1e-3
    /// Adafactor: the exponent of its second moment's weight, its two ε (torch's `eps` pair; the first defaults to
    /// single precision's machine ε, as torch's None does for float32) and its clipping threshold d.
    public var beta2Decay = -0.8, eps1 = Double(Float.ulpOfOne), eps2 = 1e-3, d = 1.0
    /// L-BFGS: iterations and evaluations per step (`max_eval` 0 is torch's None: max_iter × 5 / 4), its two
    /// tolerances, the pairs it remembers, and its line search (`none` or `strong_wolfe`).
    public var maxIter = 20.0, maxEval = 0.0, toleranceGrad = 1e-7, toleranceChange = 1e-9, historySize = 100.0
    public var lineSearchFn = "none"
    /// Shampoo: ε added to the factors' eigenvalues, the largest block side, how often the inverse roots are
    /// refreshed and from which step (−1: the frequency), and the rule its step length is grafted from, with that
    /// rule's β2 and ε.
    public var epsilon = 1e-12, maxPreconditionerDim = 1024.0, preconditionFrequency = 100.0, startPreconditioningStep = -1.0
    public var grafting = "adam", graftingBeta2 = 0.999, graftingEpsilon = 1e-8
    /// The Newton family's damping λ (newton-cg's starting value), CG's limits, and Gauss–Newton products.
    public var damping = 0.0, cgIterations = 50.0, cgTolerance = 1e-4
    public var gaussNewton = false

    /// torch.optim's defaults for `kind`. torch has no default learning rate for SGD; descent uses 0.01.
    public init(_ kind: OptimizerKind) {
        self.kind = kind
        variant = kind.variants[0]
        switch kind {
        case .sgd: learningRate = 0.01
        case .momentum: learningRate = 0.01; momentum = 0.9
        case .nesterov: learningRate = 0.01; momentum = 0.9; nesterov = true
        case .adagrad: learningRate = 1e-2; eps = 1e-10
        case .rmsprop: learningRate = 1e-2
        case .adadelta: learningRate = 1.0; eps = 1e-6
        case .adam: learningRate = 1e-3
        case .adamw: learningRate = 1e-3; weightDecay = 1e-2
        case .nadam: learningRate = 2e-3
        case .angulargrad: learningRate = 1e-3
        case .radam: learningRate = 1e-3
        case .adamax: learningRate = 2e-3
        case .lion: learningRate = 1e-4; beta2 = 0.99
        case .asgd: learningRate = 1e-2; alpha = 0.75
        case .rprop: learningRate = 1e-2
        case .scheduleFreeSGD: learningRate = 1.0; momentum = 0.9
        case .scheduleFreeAdamW: learningRate = 2.5e-3
        case .muon: learningRate = 1e-3; momentum = 0.95; nesterov = true; weightDecay = 0.1; eps = 1e-7
        case .adafactor: learningRate = 1e-2
        case .shampoo: learningRate = 1e-3; decoupledWeightDecay = true
        case .lbfgs: learningRate = 1
        case .newton, .saddleFreeNewton: learningRate = 1
        case .newtonCG: learningRate = 1; damping = 1
        }
    }

    /// What a key holds: a number, a flag, a pair of numbers (`betas`), an element-wise rule's name (`others`) or
    /// one of a few words (`line_search_fn`), and the fields behind it.
    public enum Field {
        case number(WritableKeyPath<OptimizerSettings, Double>)
        case flag(WritableKeyPath<OptimizerSettings, Bool>)
        case pair(WritableKeyPath<OptimizerSettings, Double>, WritableKeyPath<OptimizerSettings, Double>)
        case rule(WritableKeyPath<OptimizerSettings, OptimizerKind>)
        case word(WritableKeyPath<OptimizerSettings, String>, allowed: [String])
    }

    /// The keys whose numbers are counts (written without a decimal point).
    static let counts: Set<String> = ["warmup_steps", "ns_steps", "max_iter", "max_eval", "history_size", "max_preconditioner_dim",
                                      "precondition_frequency", "start_preconditioning_step", "cg_iterations"]

    /// The field behind every hyperparameter key.
    public static let fields: [String: Field] = [
        "lr": .number(\.learningRate), "momentum": .number(\.momentum), "dampening": .number(\.dampening),
        "weight_decay": .number(\.weightDecay), "eps": .number(\.eps), "lr_decay": .number(\.learningRateDecay),
        "initial_accumulator_value": .number(\.initialAccumulatorValue), "alpha": .number(\.alpha), "rho": .number(\.rho),
        "momentum_decay": .number(\.momentumDecay), "betas": .pair(\.beta1, \.beta2),
        "nesterov": .flag(\.nesterov), "centered": .flag(\.centered), "amsgrad": .flag(\.amsgrad),
        "decoupled_weight_decay": .flag(\.decoupledWeightDecay),
        "lambd": .number(\.lambd), "t0": .number(\.t0), "etas": .pair(\.etaMinus, \.etaPlus),
        "step_sizes": .pair(\.stepSizeMin, \.stepSizeMax),
        "warmup_steps": .number(\.warmupSteps), "r": .number(\.r), "weight_lr_power": .number(\.weightLRPower),
        "ns_steps": .number(\.nsSteps), "others": .rule(\.others), "others_lr": .number(\.othersLearningRate),
        "beta2_decay": .number(\.beta2Decay), "eps1": .number(\.eps1), "eps2": .number(\.eps2), "d": .number(\.d),
        "max_iter": .number(\.maxIter), "max_eval": .number(\.maxEval), "tolerance_grad": .number(\.toleranceGrad),
        "tolerance_change": .number(\.toleranceChange), "history_size": .number(\.historySize),
        "line_search_fn": .word(\.lineSearchFn, allowed: ["none", LBFGS.strongWolfe]),
        "epsilon": .number(\.epsilon), "max_preconditioner_dim": .number(\.maxPreconditionerDim),
        "precondition_frequency": .number(\.preconditionFrequency), "start_preconditioning_step": .number(\.startPreconditioningStep),
        "grafting": .word(\.grafting, allowed: Shampoo.graftings), "grafting_beta2": .number(\.graftingBeta2),
        "grafting_epsilon": .number(\.graftingEpsilon),
        "damping": .number(\.damping), "cg_iterations": .number(\.cgIterations), "cg_tolerance": .number(\.cgTolerance),
        "gauss_newton": .flag(\.gaussNewton),
    ]

    /// The rule each numeric key (each number of a pair) must meet, as (what is expected, test).
    public static func rule(for key: String) -> (expected: String, valid: @Sendable (Double) -> Bool) {
        switch key {
        case "lr": return ("a number > 0", { $0 > 0 })
        case "momentum", "rho": return ("a number in [0, 1)", { $0 >= 0 && $0 < 1 })
        case "alpha": return ("a number in [0, 1)", { $0 >= 0 && $0 < 1 })  // RMSProp's smoothing, ASGD's power
        case "etas": return ("two numbers (η−, η+) with 0 < η− < 1 < η+, like [0.5, 1.2]", { $0 > 0 })
        case "step_sizes": return ("two numbers (min, max) with 0 < min ≤ max, like [1e-06, 50]", { $0 > 0 })
        case "betas": return ("two numbers in [0, 1), like [0.9, 0.999]", { $0 >= 0 && $0 < 1 })
        case "dampening": return ("a number in [0, 1]", { $0 >= 0 && $0 <= 1 })
        case "warmup_steps": return ("a whole number ≥ 0", { $0 >= 0 && $0 == $0.rounded() })
        case "ns_steps": return ("a whole number in [1, 99]", { $0 >= 1 && $0 < 100 && $0 == $0.rounded() })
        case "max_iter", "history_size": return ("a whole number in [1, 100000]", { $0 >= 1 && $0 <= 100_000 && $0 == $0.rounded() })
        case "max_eval": return ("a whole number in [0, 100000] (0: max_iter × 5 / 4)", { $0 >= 0 && $0 <= 100_000 && $0 == $0.rounded() })
        case "others_lr", "epsilon", "grafting_epsilon": return ("a number > 0", { $0 > 0 })
        case "grafting_beta2": return ("a number in (0, 1]", { $0 > 0 && $0 <= 1 })
        case "max_preconditioner_dim", "precondition_frequency":
            return ("a whole number in [1, 100000]", { $0 >= 1 && $0 <= 100_000 && $0 == $0.rounded() })
        case "start_preconditioning_step": return ("a whole number ≥ −1 (−1: precondition_frequency)", { $0 >= -1 && $0 == $0.rounded() })
        case "beta2_decay": return ("a number ≤ 0", { $0 <= 0 })
        case "cg_iterations": return ("a whole number in [1, 100000]", { $0 >= 1 && $0 <= 100_000 && $0 == $0.rounded() })
        case "cg_tolerance": return ("a number in (0, 1)", { $0 > 0 && $0 < 1 })
        case "damping": return ("a finite number ≥ 0", { $0 >= 0 && $0.isFinite })
        default: return ("a number ≥ 0", { $0 >= 0 })  // eps, weight_decay, lr_decay, accumulator, momentum_decay
        }
    }

    /// A key's value as YAML (`0.9`, `true`, `[0.9, 0.999]`), or nil for a key that is not a hyperparameter.
    public func yamlValue(_ key: String) -> String? {
        switch Self.fields[key] {
        case .number(let f) where Self.counts.contains(key): return "\(Int(self[keyPath: f]))"
        case .number(let f): return "\(self[keyPath: f])"
        case .flag(let f): return "\(self[keyPath: f])"
        case .pair(let a, let b): return "[\(self[keyPath: a]), \(self[keyPath: b])]"
        case .rule(let f): return self[keyPath: f].rawValue
        case .word(let f, _): return self[keyPath: f]
        case nil: return nil
        }
    }

    /// The value of a numeric key.
    public func number(_ key: String) -> Double? {
        if case .number(let f) = Self.fields[key] { return self[keyPath: f] }
        return nil
    }

    /// The first key whose value breaks a rule, or nil. Checks ranges and the rules that join keys.
    public func validate() -> HyperparameterError? {
        guard kind.variants.contains(variant) else {
            return HyperparameterError(key: "variant", expected: kind.variantsExpected, found: "'\(variant.rawValue)'")
        }
        for key in kind.keys {
            let rule = Self.rule(for: key)
            switch Self.fields[key] {
            case .number(let f) where !rule.valid(self[keyPath: f]) || !self[keyPath: f].isFinite:
                return HyperparameterError(key: key, expected: rule.expected, found: "\(self[keyPath: f])")
            case .pair(let a, let b) where !rule.valid(self[keyPath: a]) || !rule.valid(self[keyPath: b]):
                return HyperparameterError(key: key, expected: rule.expected, found: yamlValue(key)!)
            case .word(let f, let allowed) where !allowed.contains(self[keyPath: f]):
                return HyperparameterError(key: key, expected: "one of " + allowed.joined(separator: ", "), found: "'\(self[keyPath: f])'")
            default: break
            }
        }
        if kind == .muon && !OptimizerKind.elementwise.contains(others) {
            return HyperparameterError(key: "others", expected: Self.othersExpected, found: "'\(others.rawValue)'")
        }
        if kind == .rprop && !(etaMinus < 1 && etaPlus > 1) {
            return HyperparameterError(key: "etas", expected: Self.rule(for: "etas").expected, found: yamlValue("etas")!)
        }
        if kind == .rprop && stepSizeMin > stepSizeMax {
            return HyperparameterError(key: "step_sizes", expected: Self.rule(for: "step_sizes").expected, found: yamlValue("step_sizes")!)
        }
        if (kind == .nesterov || kind == .scheduleFreeSGD) && momentum == 0 {
            return HyperparameterError(key: "momentum", expected: "a number in (0, 1) for \(kind.rawValue)", found: "\(momentum)")
        }
        if kind == .sgd || kind == .momentum || kind == .nesterov {
            if nesterov && (momentum == 0 || dampening != 0) {
                return HyperparameterError(key: "nesterov", expected: "momentum > 0 and dampening 0 with Nesterov momentum",
                                           found: "momentum \(momentum), dampening \(dampening)")
            }
            if variant != .torch && nesterov {
                return HyperparameterError(key: "nesterov", expected: "false with variant \(variant.rawValue) (Nesterov is the torch form)",
                                           found: "true")
            }
            if variant != .torch && dampening != 0 {
                return HyperparameterError(key: "dampening", expected: "0 with variant \(variant.rawValue) (dampening is the torch form's)",
                                           found: "\(dampening)")
            }
        }
        return nil
    }

    /// What `others` must name.
    public static var othersExpected: String {
        "an element-wise rule for the tensors that are not matrices (" + OptimizerKind.elementwise.map(\.rawValue).joined(separator: ", ") + ")"
    }

    /// The optimizer these settings describe, for a flat buffer of `parameterCount` values holding the tensors
    /// `layout` (when the caller knows them: a rule may work per tensor).
    /// - Precondition: `validate()` returns nil.
    public func makeOptimizer(parameterCount n: Int, layout: [TensorShape] = []) -> Optimizer {
        precondition(validate() == nil, "invalid optimizer settings: \(validate()!)")
        if kind == .muon { return Muon(self, parameterCount: n, layout: layout) }
        if kind == .adafactor { return Adafactor(self, parameterCount: n, layout: layout) }
        if kind == .lbfgs { return LBFGS(self, parameterCount: n) }
        if kind.needsProducts { return Newton(self, parameterCount: n) }
        if kind == .shampoo { return Shampoo(self, parameterCount: n, layout: layout) }
        return rule.optimizer(self, parameterCount: n, layout: layout)
    }

    /// The rule these settings run.
    var rule: any ElementwiseRule.Type {
        switch kind {
        case .sgd, .momentum, .nesterov: return SGD.self
        case .adagrad: return AdaGrad.self
        case .rmsprop: return RMSProp.self
        case .adadelta: return AdaDelta.self
        case .adam, .adamw: return Adam.self
        case .nadam: return NAdam.self
        case .angulargrad: return AngularGrad.self
        case .radam: return RAdam.self
        case .adamax: return Adamax.self
        case .lion: return Lion.self
        case .asgd: return ASGD.self
        case .rprop: return Rprop.self
        case .scheduleFreeSGD: return ScheduleFreeSGD.self
        case .scheduleFreeAdamW: return ScheduleFreeAdamW.self
        case .muon, .adafactor, .shampoo, .lbfgs, .newton, .saddleFreeNewton, .newtonCG:
            return SGD.self  // not used: `makeOptimizer` builds these
        }
    }

    /// The element-wise state buffers an optimizer with these settings keeps (each as long as its parameters).
    public var stateBufferCount: Int {
        switch kind {
        case .muon: return 1 + othersSettings.stateBufferCount
        case .adafactor, .shampoo: return 3
        case .lbfgs: return 2 + 2 * Int(historySize) + 2  // d, the previous gradient, the pairs, a step's own vectors
        case .newton, .saddleFreeNewton: return 2  // a step's own vectors (the n × n Hessian is of a small model)
        case .newtonCG: return 8  // CG's vectors in Double, the trial point
        default: return rule.init(self).kept.count
        }
    }

    /// The floating-point operations of one update of a tensor of `shape`, which balance whole tensors over the
    /// ranks: Muon's Newton–Schulz steps on a matrix (r ≤ k its sides: XXᵀ, its square and their product with X),
    /// about ten per element for an element-wise rule.
    public func updateCost(shape: [Int]) -> Double {
        let count = Double(shape.reduce(1, *))
        if kind == .shampoo {
            // Per block: the factors' products and the preconditioning (2·n·d each per side), and its share of an
            // eigendecomposition (about 10 d³) every `precondition_frequency` steps.
            var cost = 10 * count
            for b in Shampoo.blocks(of: shape, maxDim: Int(maxPreconditionerDim)) {
                for side in b.dims.map(Double.init) {
                    cost += 4 * Double(b.elements.count) * side + 10 * side * side * side / preconditionFrequency
                }
            }
            return cost
        }
        guard kind == .muon, shape.count == 2 else { return (kind == .adafactor ? 20 : 10) * count }
        let r = Double(shape.min()!), k = Double(shape.max()!)
        return 2 * nsSteps * (2 * r * r * k + r * r * r) + 10 * count
    }

    /// The state a rule keeps per tensor besides its parameter-long buffers (Shampoo's factors and inverse roots):
    /// names (the tensor's name first) and sizes, in state order.
    public func tensorBuffers(name: String, shape: [Int]) -> [(name: String, count: Int)] {
        kind == .shampoo ? Shampoo.tensorBuffers(name: name, shape: shape, maxDim: Int(maxPreconditionerDim)) : []
    }

    /// Muon's element-wise rule for the tensors that are not matrices: `others` at its defaults, at `others_lr`.
    public var othersSettings: OptimizerSettings {
        var o = OptimizerSettings(others)
        o.learningRate = othersLearningRate
        return o
    }

    /// The settings as the YAML lines of an `optimizer:` block (name, variant, then every key it reads).
    public func yamlLines() -> [String] {
        ["name: \(kind.rawValue)", "variant: \(variant.rawValue)"] + kind.keys.map { "\($0): \(yamlValue($0)!)" }
    }
}
