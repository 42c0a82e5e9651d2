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
    func classify(parameters: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>,
                  workspace: AnyObject) -> [(label: Int, predicted: Int)]
}
