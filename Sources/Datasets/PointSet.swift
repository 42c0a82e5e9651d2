// Samples of one input and one target each, held in memory: the data of the 2-D lab's finite-sum problems.

/// N samples (x, t). A row's features are [x, t]; its label is t as an integer (the class, for targets 0 or 1).
public final class PointSet: Dataset, Sendable {
    public let xs: [Float]
    public let targets: [Float]
    public var count: Int { xs.count }
    public var featureCount: Int { 2 }
    public var classCount: Int { 2 }
    public let summary: String
    public var files: [(path: String, identity: String)] { [] }

    public init(xs: [Float], targets: [Float], summary: String) {
        precondition(xs.count == targets.count && !xs.isEmpty)
        self.xs = xs
        self.targets = targets
        self.summary = summary
    }

    public func fill(
        _ indices: UnsafeBufferPointer<Int32>, features: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>
    ) {
        for (row, index) in indices.enumerated() {
            let i = Int(index)
            features[2 * row] = xs[i]
            features[2 * row + 1] = targets[i]
            labels[row] = Int32(targets[i])
        }
    }
}
