// What the trainer needs of a data set: a count, a shape, and a way to copy samples into a batch.

/// A classification data set addressed by sample index.
public protocol Dataset: AnyObject {
    /// Number of samples.
    var count: Int { get }
    /// Features per sample (the model's input width).
    var featureCount: Int { get }
    /// Number of classes; labels are 0..<classCount.
    var classCount: Int { get }
    /// A short description for logs ("fashion-mnist train (60000 × 784)").
    var summary: String { get }

    /// The files the samples came from, each with its size on disk and a fingerprint of its content (empty for
    /// generated data), so that ranks can check they read the same data.
    var files: [(path: String, identity: String)] { get }

    /// Writes the samples `indices` as rows of `features` (indices.count × featureCount, scaled to floats)
    /// and their labels.
    func fill(
        _ indices: UnsafeBufferPointer<Int32>,
        features: UnsafeMutablePointer<Float>,
        labels: UnsafeMutablePointer<Int32>
    )
}

/// No samples, shaped like another set: the test set of data given without one.
public final class EmptyDataset: Dataset {
    public let featureCount: Int
    public let classCount: Int
    public var count: Int { 0 }
    public var summary: String { "no test set" }
    public var files: [(path: String, identity: String)] { [] }

    public init(like other: Dataset) {
        featureCount = other.featureCount
        classCount = other.classCount
    }

    public func fill(_ indices: UnsafeBufferPointer<Int32>, features: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>) {
        precondition(indices.isEmpty, "an empty data set has no samples to fill")
    }
}
