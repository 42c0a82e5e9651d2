// Labelled arrays from files: IDX image/label pairs (Fashion-MNIST, MNIST, KMNIST, EMNIST) and .npy arrays,
// features kept as stored (bytes or floats) and converted per batch.
import Numerics
#if canImport(Glibc)
import Glibc
#endif

/// A classification set held in memory as its files store it: features as bytes (scaled to [0, 1] per batch) or
/// as float32, labels as integers in 0..<classCount.
public final class ArrayDataset: Dataset {
    /// The features as the file stores them.
    public enum Features: Sendable {
        case bytes([UInt8])
        case floats([Float])
    }

    public let count: Int
    public let featureCount: Int
    public let classCount: Int
    public let summary: String
    public let files: [(path: String, identity: String)]
    /// The shape of one sample (e.g. [28, 28]).
    public let sampleShape: [Int]
    private let features: Features
    private let labels: [Int32]

    /// Checks that the labels match the samples in number and lie in 0..<classCount.
    init(features: Features, sampleShape: [Int], labels: [Int], classCount: Int, name: String,
         files: [(path: String, bytes: [UInt8])], labelFile: String, featureFile: String) throws {
        let samples: Int
        switch features {
        case .bytes(let b): samples = b.count / max(sampleShape.reduce(1, *), 1)
        case .floats(let f): samples = f.count / max(sampleShape.reduce(1, *), 1)
        }
        guard labels.count == samples else {
            throw DataFileError(file: labelFile, field: "label count", expected: "\(samples) (the number of samples in \(featureFile))",
                                found: "\(labels.count)")
        }
        if let bad = labels.firstIndex(where: { !(0..<classCount).contains($0) }) {
            throw DataFileError(file: labelFile, field: "label \(bad)", expected: "a class in 0..<\(classCount)", found: "\(labels[bad])")
        }
        count = samples
        featureCount = sampleShape.reduce(1, *)
        self.sampleShape = sampleShape
        self.classCount = classCount
        self.features = features
        self.labels = labels.map { Int32($0) }
        self.files = files.map { f in
            var info = stat()
            let size = stat(f.path, &info) == 0 ? Int(info.st_size) : -1
            return (f.path, "\(size) bytes, content \(hexDigest(fingerprint(bytesOf: f.bytes)))")
        }
        summary = "\(name) (\(count) × \(sampleShape.map(String.init).joined(separator: "×")))"
    }

    /// Loads and cross-checks an IDX image file (N × …) and its label file (N).
    public convenience init(images imagePath: String, labels labelPath: String, classCount: Int = 10, name: String) throws {
        let images = try IDXFile.read(path: imagePath, ranks: 2...4)
        let labels = try IDXFile.read(path: labelPath, ranks: 1...1)
        try self.init(features: .bytes(images.bytes), sampleShape: Array(images.dimensions.dropFirst()), labels: labels.bytes.map(Int.init),
                      classCount: classCount, name: name, files: [(images.path, images.bytes), (labels.path, labels.bytes)],
                      labelFile: labelPath, featureFile: imagePath)
    }

    /// Loads and cross-checks a .npy feature array (N × …, uint8 or float32) and its labels (N integers).
    public convenience init(npyFeatures xPath: String, labels yPath: String, classCount: Int, name: String) throws {
        let x = try NPYArray.read(path: xPath, allowed: [.uint8, .float32])
        let y = try NPYArray.read(path: yPath, allowed: [.uint8, .int32, .int64])
        guard y.shape.count == 1 else {
            throw DataFileError(file: yPath, field: "header: shape", expected: "one dimension (a label per sample)",
                                found: "(" + y.shape.map(String.init).joined(separator: ", ") + ")")
        }
        guard x.shape.count >= 2 else {
            throw DataFileError(file: xPath, field: "header: shape", expected: "two or more dimensions (samples × features)",
                                found: "(" + x.shape.map(String.init).joined(separator: ", ") + ")")
        }
        let features: Features = x.element == .uint8 ? .bytes(x.bytes) : .floats(x.bytes.withUnsafeBytes { raw in
            (0..<(x.bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        })
        try self.init(features: features, sampleShape: Array(x.shape.dropFirst()), labels: y.integers, classCount: classCount,
                      name: name, files: [(x.path, x.bytes), (y.path, y.bytes)], labelFile: yPath, featureFile: xPath)
    }

    /// The largest label in the files plus one: the number of classes when the config does not set it.
    public static func classesInLabels(_ paths: [String], npy: Bool) throws -> Int {
        var largest = 0
        for p in paths {
            let labels = npy ? try NPYArray.read(path: p, allowed: [.uint8, .int32, .int64]).integers
                : try IDXFile.read(path: p, ranks: 1...1).bytes.map(Int.init)
            largest = max(largest, labels.max() ?? 0)
        }
        return largest + 1
    }

    public func fill(
        _ indices: UnsafeBufferPointer<Int32>, features out: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>
    ) {
        let width = featureCount
        switch features {
        case .bytes(let pixels):
            let scale: Float = 1 / 255
            pixels.withUnsafeBufferPointer { px in
                for (row, index) in indices.enumerated() {
                    Kernels.convert(px.baseAddress! + Int(index) * width, count: width, scale: scale, into: out + row * width)
                    labels[row] = self.labels[Int(index)]
                }
            }
        case .floats(let values):
            values.withUnsafeBufferPointer { v in
                for (row, index) in indices.enumerated() {
                    (out + row * width).update(from: v.baseAddress! + Int(index) * width, count: width)
                    labels[row] = self.labels[Int(index)]
                }
            }
        }
    }
}
