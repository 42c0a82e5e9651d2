// What the trainer needs of a model: a flat parameter buffer of known length, its initial values, and the
// summed loss and gradient over samples of a dataset, computed in passes of a workspace's capacity.
import Datasets

/// Loss and accuracy counts over some samples.
public struct LossTotals: Sendable {
    public var lossSum: Double = 0
    public var correct: Int = 0
    public var count: Int = 0

    public init() {}
}

/// A model whose parameters and gradient are each one flat Float buffer (the exchange, the optimizer, the hash
/// check and the checkpoint each see one array).
public protocol Model: AnyObject {
    var parameterCount: Int { get }
    /// Names and shapes of the parameter tensors, in buffer order ("layer1.weight (784, 100)").
    var parameterSummary: [String] { get }
    /// A short description for logs and titles ("784-100-10").
    var shapeText: String { get }
    /// The parameters training starts from.
    func initialParameters(seed: UInt64) -> [Float]
    /// Scratch memory for passes over at most `capacity` samples at a time.
    func makeWorkspace(capacity: Int) -> AnyObject
    /// Adds the gradient of the summed loss over `indices` to `gradient` (writes it, with `overwrite`) and returns
    /// the loss and accuracy totals.
    func accumulateGradient(parameters: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, dataset: Dataset,
                            indices: UnsafeBufferPointer<Int32>, workspace: AnyObject, overwrite: Bool) -> LossTotals
    /// The tensors of the same model in PyTorch (names and shapes of an `nn.Sequential`), as places in the buffer.
    var tensorLayout: [TensorLayout] { get }
    /// Loss sum and number of correct predictions over `indices`.
    func evaluate(parameters: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>,
                  workspace: AnyObject) -> LossTotals
}

/// A model that predicts classes: each sample's (label, predicted class), for confusion matrices.
public protocol Classifier: Model {
    /// Each sample's (label, predicted class) over `indices`, with the loss totals `evaluate` gives, from the same
    /// forward passes.
    func classify(parameters: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>,
                  workspace: AnyObject) -> (totals: LossTotals, predictions: [(label: Int, predicted: Int)])
}

/// A model whose Hessian-vector products are exact: Pearlmutter's R-operator, d/dε ∇L(θ + εv) at ε = 0, carried
/// forward through the network and back (forward over reverse), in about two to three gradients' work.
public protocol CurvatureModel: Model {
    /// Adds H·v, the Hessian of the summed loss over `indices` at `parameters` times `direction`, to `product`
    /// (writes it, with `overwrite`), or with `gaussNewton` the Gauss–Newton product Jᵀ·H_L·J·v (H_L: the loss's
    /// Hessian in the outputs; positive semi-definite). Returns the loss totals at `parameters`.
    func accumulateHessianVectorProduct(parameters: UnsafePointer<Float>, direction: UnsafePointer<Float>,
                                        product: UnsafeMutablePointer<Float>, dataset: Dataset,
                                        indices: UnsafeBufferPointer<Int32>, workspace: AnyObject, overwrite: Bool,
                                        gaussNewton: Bool) -> LossTotals
}
