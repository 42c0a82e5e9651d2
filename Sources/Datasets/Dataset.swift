// What the trainer needs of a data set: a count, a shape, and a way to copy samples into a batch.
import Numerics

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

    /// The shape of one sample (an image's height, width and perhaps channels); [featureCount] for flat samples.
    var sampleShape: [Int] { get }

    /// Writes the samples `indices` as rows of `features` (indices.count × featureCount, scaled to floats)
    /// and their labels.
    func fill(
        _ indices: UnsafeBufferPointer<Int32>,
        features: UnsafeMutablePointer<Float>,
        labels: UnsafeMutablePointer<Int32>
    )
}

extension Dataset {
    public var sampleShape: [Int] { [featureCount] }
}

/// No samples, shaped like another set: the test set of data given without one.
public final class EmptyDataset: Dataset {
    public let featureCount: Int
    public let sampleShape: [Int]
    public let classCount: Int
    public var count: Int { 0 }
    public var summary: String { "no test set" }
    public var files: [(path: String, identity: String)] { [] }

    public init(like other: Dataset) {
        featureCount = other.featureCount
        sampleShape = other.sampleShape
        classCount = other.classCount
    }

    public func fill(_ indices: UnsafeBufferPointer<Int32>, features: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>) {
        precondition(indices.isEmpty, "an empty data set has no samples to fill")
    }
}

/// Some samples of another set, in the given order: a validation split, or the training samples it leaves.
public final class SubsetDataset: Dataset {
    public let base: Dataset
    public let indices: [Int32]
    public let summary: String
    private var mapped: [Int32] = []

    public init(_ base: Dataset, indices: [Int32], name: String) {
        self.base = base
        self.indices = indices
        summary = "\(name) (\(indices.count) of \(base.summary))"
    }

    public var count: Int { indices.count }
    public var featureCount: Int { base.featureCount }
    public var sampleShape: [Int] { base.sampleShape }
    public var classCount: Int { base.classCount }
    public var files: [(path: String, identity: String)] { base.files }

    public func fill(_ positions: UnsafeBufferPointer<Int32>, features: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>) {
        if mapped.count < positions.count { mapped = [Int32](repeating: 0, count: positions.count) }
        for (k, p) in positions.enumerated() { mapped[k] = indices[Int(p)] }
        mapped.withUnsafeBufferPointer { m in
            base.fill(UnsafeBufferPointer(rebasing: m[0..<positions.count]), features: features, labels: labels)
        }
    }

    /// A seed-determined split of `base`: `held` samples drawn at random for validation (in ascending order), the
    /// rest, in their order, for training.
    public static func split(_ base: Dataset, holdingOut held: Int, seed: UInt64) -> (train: SubsetDataset, validation: SubsetDataset) {
        var order = Array(0..<Int32(base.count))
        var rng = Xoshiro256(seed: seed, stream: 0x7A11_DA7E)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let validation = order[0..<held].sorted()
        var isHeld = [Bool](repeating: false, count: base.count)
        for v in validation { isHeld[Int(v)] = true }
        let train = (0..<Int32(base.count)).filter { !isHeld[Int($0)] }
        return (SubsetDataset(base, indices: train, name: "training"), SubsetDataset(base, indices: Array(validation), name: "validation"))
    }

    /// `count` samples of `base` drawn at random by the seed, in ascending order (`sampleIndices`).
    public static func sample(_ base: Dataset, count: Int, seed: UInt64) -> SubsetDataset {
        SubsetDataset(base, indices: sampleIndices(count, of: base.count, seed: seed, stream: 0x5B5E7), name: "training subset")
    }

    /// `count` of the indices 0..<total drawn without replacement by a partial Fisher–Yates shuffle of the seed's
    /// stream, in ascending order.
    public static func sampleIndices(_ count: Int, of total: Int, seed: UInt64, stream: UInt64) -> [Int32] {
        precondition(count <= total)
        var order = Array(0..<Int32(total))
        var rng = Xoshiro256(seed: seed, stream: stream)
        for i in 0..<count { order.swapAt(i, i + Int(rng.next() % UInt64(total - i))) }
        return order[0..<count].sorted()
    }
}
