// A classification problem that needs no files: Gaussian clusters generated from (seed, index) on demand,
// so any size costs no memory and every rank sees the same samples.
import Numerics

/// `classCount` Gaussian clusters in `featureCount` dimensions. Sample i's label and features are a pure
/// function of (seed, split, i); class centres are drawn once from the seed.
public final class SyntheticClassification: Dataset {
    public let count: Int
    public let featureCount: Int
    public let classCount: Int
    public var files: [(path: String, identity: String)] { [] }
    public let noise: Float
    public let summary: String
    private let seed: UInt64
    private let stream: UInt64
    private let centres: [Float]  // (classCount, featureCount)

    public init(count: Int, featureCount: Int, classCount: Int, noise: Float, seed: UInt64, test: Bool) {
        precondition(count > 0 && featureCount > 0 && classCount > 1)
        self.count = count
        self.featureCount = featureCount
        self.classCount = classCount
        self.noise = noise
        self.seed = seed
        stream = test ? 0x7E57 : 0x7EA1
        var rng = Xoshiro256(seed: seed, stream: 0xCE47)
        centres = (0..<(classCount * featureCount)).map { _ in Float(rng.nextGaussian()) }
        summary = "synthetic \(test ? "test" : "train") (\(count) × \(featureCount), \(classCount) classes)"
    }

    /// The label of sample `index`.
    public func label(of index: Int) -> Int32 {
        Int32(splitMix64(seed ^ splitMix64(stream ^ UInt64(index))) % UInt64(classCount))
    }

    public func fill(
        _ indices: UnsafeBufferPointer<Int32>, features: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>
    ) {
        for (row, index) in indices.enumerated() {
            let label = label(of: Int(index))
            labels[row] = label
            var rng = Xoshiro256(seed: seed ^ stream, stream: UInt64(index))
            let target = features + row * featureCount
            let centre = Int(label) * featureCount
            for j in 0..<featureCount {
                target[j] = centres[centre + j] + noise * Float(rng.nextGaussian())
            }
        }
    }
}
