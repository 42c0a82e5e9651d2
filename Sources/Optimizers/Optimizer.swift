// The contract every optimizer meets: flat buffers in, element-wise state, a step counter, state that can be
// saved and restored whole. Optimizers know nothing of MPI, data or models.

/// An update rule applied to one flat parameter buffer with the averaged gradient of the same length.
///
/// Determinism: `update` is a pure function of (parameters, gradient, state, learning rate), so ranks that
/// start equal and receive the same gradient stay bit-identical.
public protocol Optimizer: AnyObject {
    /// The configuration name of the rule ("sgd", "momentum", …).
    var name: String { get }
    /// The learning rate γ used by the next `update` (a schedule may change it between steps).
    var learningRate: Double { get set }
    /// Number of updates applied so far (t in the reference; the first update is t = 1).
    var stepCount: Int { get }

    /// Applies one update in place: θ ← rule(θ, g, state).
    func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>)

    /// Everything needed to continue bit-exactly: step count and state buffers.
    func state() -> OptimizerState
    /// Restores a state produced by `state()` of an optimizer with the same rule and parameter count.
    func restore(_ state: OptimizerState) throws
}

extension Optimizer {
    /// Convenience for arrays.
    public func update(_ parameters: inout [Float], gradient: [Float]) {
        precondition(parameters.count == gradient.count, "parameters and gradient differ in length")
        parameters.withUnsafeMutableBufferPointer { p in
            gradient.withUnsafeBufferPointer { g in update(p, gradient: g) }
        }
    }
}

/// An optimizer's complete state, in a form a checkpoint can store.
public struct OptimizerState: Codable, Equatable, Sendable {
    public var name: String
    public var step: Int
    /// Named element-wise buffers (e.g. "momentum"), each as long as the parameter buffer.
    public var buffers: [String: [Float]]

    public init(name: String, step: Int, buffers: [String: [Float]]) {
        self.name = name
        self.step = step
        self.buffers = buffers
    }
}

/// A state that does not fit the optimizer it is restored into.
public struct OptimizerStateError: Error, CustomStringConvertible, Sendable {
    public var detail: String
    public var description: String { "optimizer state: \(detail)" }
}
