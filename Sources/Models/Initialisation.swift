// How a layer's weights start.
import Numerics

/// The distribution of initial weights (biases always start at 0).
public enum Initialisation: String, CaseIterable, Sendable {
    /// N(0, 2/inputs): He et al. 2015, for ReLU layers.
    case he
    /// N(0, 2/(inputs + outputs)): Glorot & Bengio 2010 ("Xavier", normal form).
    case xavier
    /// All weights 0: every hidden unit of a layer computes the same function and receives the same gradient.
    case zeros
    /// N(0, σ²) with a given σ, a draw beyond ±2σ drawn again (TensorFlow's truncated_normal_initializer, which
    /// DeepOBS uses with a constant bias).
    case truncatedNormal = "truncated-normal"

    /// The formula, for the resolved config.
    public var formula: String {
        switch self {
        case .he: return "weights ~ N(0, 2/inputs), biases 0"
        case .xavier: return "weights ~ N(0, 2/(inputs + outputs)), biases 0"
        case .zeros: return "weights 0, biases 0"
        case .truncatedNormal: return "weights ~ N(0, init_std²) cut at ±2 init_std, biases init_bias"
        }
    }

    /// σ of a layer's weights.
    public func deviation(inputs: Int, outputs: Int) -> Double {
        switch self {
        case .he: return (2.0 / Double(inputs)).squareRoot()
        case .xavier: return (2.0 / Double(inputs + outputs)).squareRoot()
        case .zeros: return 0
        case .truncatedNormal: return .nan  // given, not derived
        }
    }

    /// Draws a layer's `count` weights into `theta` from `offset` on, in order: N(0, σ²) with σ from the fan-in and
    /// fan-out, or N(0, std²) redrawn beyond ±2·std (`truncatedNormal`), σ times `scale`; nothing for `zeros`.
    public func draw(into theta: inout [Float], at offset: Int, count: Int, inputs: Int, outputs: Int, std given: Double,
                     scale: Double = 1, rng: inout Xoshiro256) {
        let std = (self == .truncatedNormal ? given : deviation(inputs: inputs, outputs: outputs)) * scale
        guard std > 0 else { return }
        for i in 0..<count {
            var z = rng.nextGaussian()
            while self == .truncatedNormal && abs(z) > 2 { z = rng.nextGaussian() }
            theta[offset + i] = Float(std * z)
        }
    }
}
