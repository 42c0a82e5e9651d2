// How a layer's weights start.

/// The distribution of initial weights (biases always start at 0).
public enum Initialisation: String, CaseIterable, Sendable {
    /// N(0, 2/inputs): He et al. 2015, for ReLU layers.
    case he
    /// N(0, 2/(inputs + outputs)): Glorot & Bengio 2010 ("Xavier", normal form).
    case xavier
    /// All weights 0: every hidden unit of a layer computes the same function and receives the same gradient.
    case zeros

    /// The formula, for the resolved config.
    public var formula: String {
        switch self {
        case .he: return "weights ~ N(0, 2/inputs), biases 0"
        case .xavier: return "weights ~ N(0, 2/(inputs + outputs)), biases 0"
        case .zeros: return "weights 0, biases 0"
        }
    }

    /// σ of a layer's weights.
    public func deviation(inputs: Int, outputs: Int) -> Double {
        switch self {
        case .he: return (2.0 / Double(inputs)).squareRoot()
        case .xavier: return (2.0 / Double(inputs + outputs)).squareRoot()
        case .zeros: return 0
        }
    }
}
