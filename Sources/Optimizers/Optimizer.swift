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
    /// Named running scalars that are not a function of the step count (NAdam's product of μ_t).
    public var scalars: [String: Double]

    public init(name: String, step: Int, buffers: [String: [Float]], scalars: [String: Double] = [:]) {
        self.name = name
        self.step = step
        self.buffers = buffers
        self.scalars = scalars
    }
}

/// The name of an element-wise state buffer. The raw value is torch's `state_dict` name, which is also the name
/// a checkpoint stores it under; a misspelt case is a compile error, not a buffer of zeros.
public enum StateBuffer: String, CaseIterable, Sendable {
    case momentumBuffer = "momentum_buffer"
    case expAvg = "exp_avg"
    case expAvgSq = "exp_avg_sq"
    case maxExpAvgSq = "max_exp_avg_sq"
    case squareAvg = "square_avg"
    case gradAvg = "grad_avg"
    case accDelta = "acc_delta"
    case sum
    case previousGrad = "previous_grad"
    case angularCoeff = "angular_coeff"
    case minimumTangent = "minimum_tangent"
}

/// The element-wise state of an optimizer: a fixed list of named buffers, each as long as the parameters,
/// in one zero-initialised allocation.
public final class StateBuffers {
    public let kept: [StateBuffer]
    public let count: Int
    private let storage: UnsafeMutablePointer<Float>

    public init(_ kept: [StateBuffer], count: Int) {
        self.kept = kept
        self.count = count
        storage = .allocate(capacity: max(kept.count * count, 1))
        storage.initialize(repeating: 0, count: max(kept.count * count, 1))
    }

    deinit { storage.deallocate() }

    /// The names this optimizer keeps, as stored in a checkpoint.
    public var names: [String] { kept.map(\.rawValue) }

    /// The buffer `buffer`, or nil when this optimizer does not keep it (a setting turned it off).
    public subscript(_ buffer: StateBuffer) -> UnsafeMutablePointer<Float>? {
        kept.firstIndex(of: buffer).map { storage + $0 * count }
    }

    /// Sets every element of `buffer` to `value`.
    public func fill(_ buffer: StateBuffer, with value: Float) {
        self[buffer]?.update(repeating: value, count: count)
    }

    /// Copies of all buffers, by name.
    public func export() -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (k, name) in names.enumerated() {
            out[name] = Array(UnsafeBufferPointer(start: storage + k * count, count: count))
        }
        return out
    }

    /// Replaces every buffer from a saved state, which must hold exactly these names at this length.
    public func load(_ buffers: [String: [Float]], optimizer: String) throws {
        guard Set(buffers.keys) == Set(names) else {
            throw OptimizerStateError(detail: "'\(optimizer)' keeps buffers [\(names.joined(separator: ", "))], "
                                      + "found [\(buffers.keys.sorted().joined(separator: ", "))]")
        }
        for (k, name) in names.enumerated() {
            let b = buffers[name]!
            guard b.count == count else {
                throw OptimizerStateError(detail: "'\(optimizer)' buffer '\(name)' must hold \(count) values, found \(b.count)")
            }
            if count > 0 { b.withUnsafeBufferPointer { (storage + k * count).update(from: $0.baseAddress!, count: count) } }
        }
    }
}

/// An optimizer whose whole state is its step count and named element-wise buffers: `state()` and `restore(_:)`
/// come from here.
protocol BufferedOptimizer: Optimizer {
    var stepCount: Int { get set }
    var buffers: StateBuffers { get }
}

extension BufferedOptimizer {
    public func state() -> OptimizerState { OptimizerState(name: name, step: stepCount, buffers: buffers.export()) }

    public func restore(_ saved: OptimizerState) throws {
        try checkName(saved, name)
        try buffers.load(saved.buffers, optimizer: name)
        stepCount = saved.step
    }
}

/// The raw pointers and length of a parameter buffer and its gradient (which must be equally long).
@inline(__always)
func flat(_ p: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>)
    -> (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) {
    precondition(p.count == g.count, "parameters and gradient differ in length")
    guard let pb = p.baseAddress, let gb = g.baseAddress else {
        // An empty model: point at a dummy so the loops run zero times.
        let dummy = UnsafeMutablePointer<Float>(bitPattern: MemoryLayout<Float>.alignment)!
        return (dummy, UnsafePointer(dummy), 0)
    }
    return (pb, gb, p.count)
}

/// Checks that a saved state belongs to the optimizer it is restored into.
func checkName(_ state: OptimizerState, _ name: String) throws {
    guard state.name == name else {
        throw OptimizerStateError(detail: "expected state of '\(name)', found '\(state.name)'")
    }
    guard state.step >= 0 else { throw OptimizerStateError(detail: "step must be ≥ 0, found \(state.step)") }
}

/// A state that does not fit the optimizer it is restored into.
public struct OptimizerStateError: Error, CustomStringConvertible, Sendable {
    public var detail: String
    public var description: String { "optimizer state: \(detail)" }
}
