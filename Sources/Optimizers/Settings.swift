// The optimizer a run asks for: its name, variant and hyperparameters with torch.optim's defaults, the rules
// that reject bad values (naming the key), and the factory that builds it.

/// The optimizers descent knows, by configuration name.
public enum OptimizerKind: String, CaseIterable, Sendable {
    case sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, adamw, nadam, angulargrad

    /// Variant names, the default first.
    public var variants: [String] {
        switch self {
        case .sgd, .momentum: return SGD.Form.allCases.map(\.rawValue)
        case .nesterov, .adadelta, .nadam: return ["torch"]
        case .adagrad, .rmsprop: return ["torch", "eps-inside-sqrt"]
        case .adam, .adamw: return Adam.Form.allCases.map(\.rawValue)
        case .angulargrad: return AngularGrad.Form.allCases.map(\.rawValue)
        }
    }

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
        }
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
    public var variant: String
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
        }
    }

    /// What `betas` must be.
    public static let betasExpected = "two numbers in [0, 1), like [0.9, 0.999]"

    /// The rule each numeric key must meet, as (what is expected, test).
    public static func rule(for key: String) -> (expected: String, valid: @Sendable (Double) -> Bool) {
        switch key {
        case "lr": return ("a number > 0", { $0 > 0 })
        case "momentum", "alpha", "rho", "betas": return ("a number in [0, 1)", { $0 >= 0 && $0 < 1 })
        case "dampening": return ("a number in [0, 1]", { $0 >= 0 && $0 <= 1 })
        default: return ("a number ≥ 0", { $0 >= 0 })  // eps, weight_decay, lr_decay, accumulator, momentum_decay
        }
    }

    /// The field behind each numeric key.
    public static let numberFields: [String: WritableKeyPath<OptimizerSettings, Double>] = [
        "lr": \.learningRate, "momentum": \.momentum, "dampening": \.dampening, "weight_decay": \.weightDecay,
        "eps": \.eps, "lr_decay": \.learningRateDecay, "initial_accumulator_value": \.initialAccumulatorValue,
        "alpha": \.alpha, "rho": \.rho, "momentum_decay": \.momentumDecay,
    ]

    /// The field behind each true/false key.
    public static let booleanFields: [String: WritableKeyPath<OptimizerSettings, Bool>] = [
        "nesterov": \.nesterov, "centered": \.centered, "amsgrad": \.amsgrad,
    ]

    /// The value of a numeric key.
    public func number(_ key: String) -> Double? {
        Self.numberFields[key].map { self[keyPath: $0] }
    }

    /// The first key whose value breaks a rule, or nil. Checks ranges and the rules that join keys.
    public func validate() -> HyperparameterError? {
        guard kind.variants.contains(variant) else {
            return HyperparameterError(key: "variant", expected: "one of " + kind.variants.joined(separator: ", ")
                                       + " for \(kind.rawValue)", found: "'\(variant)'")
        }
        for key in kind.keys {
            if key == "betas" {
                let rule = Self.rule(for: key)
                if !rule.valid(beta1) || !rule.valid(beta2) {
                    return HyperparameterError(key: key, expected: Self.betasExpected,
                                               found: "[\(beta1), \(beta2)]")
                }
            } else if let value = number(key) {
                let rule = Self.rule(for: key)
                if !rule.valid(value) || !value.isFinite {
                    return HyperparameterError(key: key, expected: rule.expected, found: "\(value)")
                }
            }
        }
        if kind == .nesterov && momentum == 0 {
            return HyperparameterError(key: "momentum", expected: "a number in (0, 1) for nesterov", found: "\(momentum)")
        }
        if kind == .sgd || kind == .momentum || kind == .nesterov {
            if nesterov && (momentum == 0 || dampening != 0) {
                return HyperparameterError(key: "nesterov", expected: "momentum > 0 and dampening 0 with Nesterov momentum",
                                           found: "momentum \(momentum), dampening \(dampening)")
            }
            if variant != "torch" && nesterov {
                return HyperparameterError(key: "nesterov", expected: "false with variant \(variant) (Nesterov is the torch form)",
                                           found: "true")
            }
            if variant != "torch" && dampening != 0 {
                return HyperparameterError(key: "dampening", expected: "0 with variant \(variant) (dampening is the torch form's)",
                                           found: "\(dampening)")
            }
        }
        return nil
    }

    /// The optimizer these settings describe, for a flat buffer of `parameterCount` values.
    /// - Precondition: `validate()` returns nil.
    public func makeOptimizer(parameterCount n: Int) -> Optimizer {
        precondition(validate() == nil, "invalid optimizer settings: \(validate()!)")
        switch kind {
        case .sgd, .momentum, .nesterov: return SGD(self, parameterCount: n)
        case .adagrad: return AdaGrad(self, parameterCount: n)
        case .rmsprop: return RMSProp(self, parameterCount: n)
        case .adadelta: return AdaDelta(self, parameterCount: n)
        case .adam, .adamw: return Adam(self, parameterCount: n)
        case .nadam: return NAdam(self, parameterCount: n)
        case .angulargrad: return AngularGrad(self, parameterCount: n)
        }
    }

    /// ε inside the square root (the `eps-inside-sqrt` variant of AdaGrad and RMSProp).
    var epsInsideSquareRoot: Bool { variant == "eps-inside-sqrt" }
    /// Decoupled weight decay (AdamW) instead of coupled L2 decay.
    var decoupledWeightDecay: Bool { kind == .adamw }

    /// The settings as the YAML lines of an `optimizer:` block (name, variant, then every key it reads).
    public func yamlLines() -> [String] {
        var lines = ["name: \(kind.rawValue)", "variant: \(variant)"]
        for key in kind.keys {
            if key == "betas" {
                lines.append("betas: [\(beta1), \(beta2)]")
            } else if let flag = Self.booleanFields[key] {
                lines.append("\(key): \(self[keyPath: flag])")
            } else {
                lines.append("\(key): \(number(key)!)")
            }
        }
        return lines
    }
}
