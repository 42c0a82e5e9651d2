// The contract every optimizer meets: flat buffers in, element-wise state, a step counter, state that can be
// saved and restored whole; and the element-wise rule that each of today's optimizers is. Optimizers know nothing
// of MPI, data or models.
import Numerics

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

    /// The model, when a rule keeps it apart from the parameters it takes gradients at (Schedule-Free's average x;
    /// the parameters hold y): a copy of it, as long as the parameter buffer. nil: the parameters are the model.
    func modelPoint() -> [Float]?
}

extension Optimizer {
    public func modelPoint() -> [Float]? { nil }

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
    case expInf = "exp_inf"
    case ax
    case prev
    case stepSize = "step_size"
    /// Schedule-Free's base sequence and average (the reference's `z` and `x`).
    case z, x
    /// Adafactor's factored second moments and a vector's whole one.
    case rowVar = "row_var", colVar = "col_var", variance
    /// Shampoo's filtered gradient and its grafting rule's second moment.
    case filteredGrad = "filtered_grad", grafting
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

/// A tensor of the parameters the optimizer updates: its name and shape (as the model names them), and where its
/// elements lie in the optimizer's buffer. With element slices a tensor may be cut at the buffer's ends, and then
/// `range` is the part of it there.
public struct TensorShape: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var range: Range<Int>
    /// Where element k of the tensor (row-major in `shape`, as torch holds it) lies in the buffer, when the model
    /// keeps another order (the MLP stores its weights transposed, the CNN its kernels position-major); nil: the
    /// elements lie in `range` in that order.
    public var positions: [Int]?

    public init(name: String, shape: [Int], range: Range<Int>, positions: [Int]? = nil) {
        (self.name, self.shape, self.range, self.positions) = (name, shape, range, positions)
    }

    /// Where element k (row-major in `shape`) lies in the buffer.
    public func position(_ k: Int) -> Int { positions?[k] ?? range.lowerBound + k }

    /// Whether the buffer holds all of the tensor.
    public var whole: Bool { range.count == shape.reduce(1, *) }
}

/// An element-wise update rule: the buffers it keeps and its step body, nothing else. `ElementwiseOptimizer`
/// holds its settings, learning rate, step count and buffers, and saves and restores them.
public protocol ElementwiseRule {
    /// The rule for validated settings.
    init(_ settings: OptimizerSettings)
    /// The buffers it keeps (torch's state names), each with the value it starts at.
    var kept: [(StateBuffer, Float)] { get }
    /// Running scalars besides the step count, by the names a checkpoint stores (NAdam's Π_t); none by default.
    var scalars: [String: Double] { get set }
    /// Update `t` (from 1) at the learning rate `rate`, over the buffers in `lanes`.
    mutating func step(_ lanes: Lanes, t: Int, rate: Double)
    /// The buffer that holds the model when it is not the parameters (`Optimizer.modelPoint`); nil by default.
    static var model: StateBuffer? { get }
}

extension ElementwiseRule {
    /// The optimizer that runs this rule.
    static func optimizer(_ settings: OptimizerSettings, parameterCount: Int, layout: [TensorShape]) -> Optimizer {
        ElementwiseOptimizer<Self>(settings, parameterCount: parameterCount, layout: layout)
    }

    public var scalars: [String: Double] {
        get { [:] }
        set {}  // swiftlint:disable:this unused_setter_value
    }

    public static var model: StateBuffer? { nil }
}

/// One update's flat buffers: parameters, gradient and the rule's state, all `count` long.
public struct Lanes {
    public let parameters: UnsafeMutablePointer<Float>
    public let gradient: UnsafePointer<Float>
    public let count: Int
    let buffers: StateBuffers

    /// Runs `body` over eight lanes at a time with up to four of the rule's buffers (`forEachLane`); a buffer the
    /// rule does not keep under these settings reads as zero.
    @inline(__always)
    public func run(_ a: StateBuffer? = nil, _ b: StateBuffer? = nil, _ c: StateBuffer? = nil, _ d: StateBuffer? = nil,
                    body: (inout F8, F8, inout F8, inout F8, inout F8, inout F8) -> Void) {
        forEachLane(count: count, parameters: parameters, gradient: gradient, a.flatMap { buffers[$0] },
                    b.flatMap { buffers[$0] }, c.flatMap { buffers[$0] }, d.flatMap { buffers[$0] }, body: body)
    }
}

/// An optimizer made of an element-wise rule: settings, buffers and the step body are the rule's; the rest is here.
public final class ElementwiseOptimizer<Rule: ElementwiseRule>: Optimizer {
    public let name: String
    /// The settings it was built from (the fields its rule reads).
    public let settings: OptimizerSettings
    /// The tensors of the parameters it updates, in order.
    public let layout: [TensorShape]
    public var learningRate: Double
    public private(set) var stepCount = 0
    private var rule: Rule
    let buffers: StateBuffers

    public init(_ settings: OptimizerSettings, parameterCount: Int, layout: [TensorShape] = []) {
        self.settings = settings
        self.layout = layout
        name = settings.kind.rawValue
        learningRate = settings.learningRate
        rule = Rule(settings)
        buffers = StateBuffers(rule.kept.map(\.0), count: parameterCount)
        for (buffer, start) in rule.kept where start != 0 { buffers.fill(buffer, with: start) }
    }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let (p, g, count) = flat(parameters, gradient)
        precondition(count == buffers.count, "\(name): \(count) parameters for state of \(buffers.count)")
        stepCount += 1
        rule.step(Lanes(parameters: p, gradient: g, count: count, buffers: buffers), t: stepCount, rate: learningRate)
    }

    public func state() -> OptimizerState {
        OptimizerState(name: name, step: stepCount, buffers: buffers.export(), scalars: rule.scalars)
    }

    /// The rule's model buffer once a step has filled it; before the first step the parameters are the model.
    public func modelPoint() -> [Float]? {
        guard let model = Rule.model, stepCount > 0, let values = buffers[model] else { return nil }
        return Array(UnsafeBufferPointer(start: values, count: buffers.count))
    }

    public func restore(_ saved: OptimizerState) throws {
        try checkName(saved, name)
        var scalars = rule.scalars
        for key in scalars.keys.sorted() {
            guard let value = saved.scalars[key], value.isFinite else {
                throw OptimizerStateError(detail: "'\(name)' state needs the scalar '\(key)'")
            }
            scalars[key] = value
        }
        try buffers.load(saved.buffers, optimizer: name)
        rule.scalars = scalars
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
