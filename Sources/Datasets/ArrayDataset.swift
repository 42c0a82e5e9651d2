// Labelled arrays from files: IDX image/label pairs (Fashion-MNIST, MNIST, KMNIST, EMNIST) and .npy arrays,
// features kept as stored (bytes or floats) and converted per batch.
import Numerics
#if canImport(Glibc)
import Glibc
#endif

/// A classification set read where its file's bytes lie (mapped, shared by the ranks on a node): features as
/// bytes (scaled to [0, 1] per batch) or as little-endian float32, labels as integers in 0..<classCount.
public final class ArrayDataset: Dataset {
    /// The features as the file stores them: bytes or float32, from `offset` in `data`.
    struct Features {
        var data: DataBytes
        var offset: Int
        var floats: Bool
        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: data.buffer[offset...]) }
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
    ///
    /// - Parameter files: each file's path and the fingerprint of its payload (the ranks check they agree on it).
    init(features: Features, sampleShape: [Int], labels: [Int], classCount: Int, name: String,
         files: [(path: String, content: UInt64)], labelFile: String, featureFile: String) throws {
        let width = sampleShape.reduce(1, *)
        guard width > 0 else {
            throw DataFileError(file: featureFile, field: "header: shape", expected: "at least one feature per sample",
                                found: "(" + sampleShape.map(String.init).joined(separator: ", ") + ") per sample")
        }
        let samples = features.bytes.count / (features.floats ? 4 : 1) / width
        guard samples > 0 else {
            throw DataFileError(file: featureFile, field: "samples", expected: "at least one sample", found: "none")
        }
        guard labels.count == samples else {
            throw DataFileError(file: labelFile, field: "label count", expected: "\(samples) (the number of samples in \(featureFile))",
                                found: "\(labels.count)")
        }
        precondition(classCount <= Self.mostClasses, "the class count is checked where it is read")
        if let bad = labels.firstIndex(where: { !(0..<classCount).contains($0) }) {
            throw DataFileError(file: labelFile, field: "label \(bad)", expected: "a class in 0..<\(classCount)", found: "\(labels[bad])")
        }
        if features.floats, let bad = Self.firstNonFinite(features.bytes) {
            throw DataFileError(file: featureFile, field: "sample \(bad / width), feature \(bad % width)", expected: "a finite float32",
                                found: "\(Float(bitPattern: features.bytes.loadUnaligned(fromByteOffset: 4 * bad, as: UInt32.self)))")
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
            return (f.path, "\(size) bytes, content \(hexDigest(f.content))")
        }
        summary = "\(name) (\(count) × \(sampleShape.map(String.init).joined(separator: "×")))"
    }

    /// Loads and cross-checks an IDX image file (N × …) and its label file (N).
    public convenience init(images imagePath: String, labels labelPath: String, classCount: Int = 10, name: String,
                            cache: DecompressCache = .besideData) throws {
        let images = try IDXFile.read(path: imagePath, ranks: 2...4, cache: cache)
        let labels = try IDXFile.read(path: labelPath, ranks: 1...1, cache: cache)
        try self.init(features: Features(data: images.data, offset: images.payloadOffset, floats: false),
                      sampleShape: Array(images.dimensions.dropFirst()), labels: labels.withPayload { $0.map(Int.init) },
                      classCount: classCount, name: name, files: [(images.path, images.withPayload(fingerprint(bytes:))),
                                                                  (labels.path, labels.withPayload(fingerprint(bytes:)))],
                      labelFile: labelPath, featureFile: imagePath)
    }

    /// Loads and cross-checks a .npy feature array (N × …, uint8 or float32) and its labels (N integers).
    public convenience init(npyFeatures xPath: String, labels yPath: String, classCount: Int, name: String,
                            cache: DecompressCache = .besideData) throws {
        let x = try NPYArray.read(path: xPath, allowed: [.uint8, .float32], cache: cache)
        let y = try NPYArray.read(path: yPath, allowed: [.uint8, .int32, .int64], cache: cache)
        guard y.shape.count == 1 else {
            throw DataFileError(file: yPath, field: "header: shape", expected: "one dimension (a label per sample)",
                                found: "(" + y.shape.map(String.init).joined(separator: ", ") + ")")
        }
        guard x.shape.count >= 2 else {
            throw DataFileError(file: xPath, field: "header: shape", expected: "two or more dimensions (samples × features)",
                                found: "(" + x.shape.map(String.init).joined(separator: ", ") + ")")
        }
        let features = Features(data: x.data, offset: x.payloadOffset, floats: x.element == .float32)
        try self.init(features: features, sampleShape: Array(x.shape.dropFirst()), labels: y.integers, classCount: classCount,
                      name: name, files: [(x.path, x.withPayload(fingerprint(bytes:))), (y.path, y.withPayload(fingerprint(bytes:)))], labelFile: yPath, featureFile: xPath)
    }

    /// The most classes a data set may have (`data.classes`' range).
    public static let mostClasses = 100_000

    /// The largest label in the files plus one: the number of classes when the config does not set it. A label
    /// beyond `mostClasses` is refused here, in its own width, before anything converts it.
    public static func classesInLabels(_ paths: [String], npy: Bool, cache: DecompressCache = .besideData) throws -> Int {
        var largest = 0
        for p in paths {
            let labels = npy ? try NPYArray.read(path: p, allowed: [.uint8, .int32, .int64], cache: cache).integers
                : try IDXFile.read(path: p, ranks: 1...1, cache: cache).withPayload { $0.map(Int.init) }
            if let bad = labels.firstIndex(where: { $0 >= mostClasses }) {
                throw DataFileError(file: p, field: "label \(bad)", expected: "a class in 0..<\(mostClasses) (data.classes: auto counts "
                                    + "the classes from the labels)", found: "\(labels[bad])")
            }
            largest = max(largest, labels.max() ?? 0)
        }
        return largest + 1
    }

    /// The index of the first float32 in `bytes` (little-endian, any alignment) that is NaN or ±∞.
    static func firstNonFinite(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = bytes.count / 4
        var i = 0
        while i < n {
            if bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) & 0x7F80_0000 == 0x7F80_0000 { return i }
            i += 1
        }
        return nil
    }

    public func fill(
        _ indices: UnsafeBufferPointer<Int32>, features out: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>
    ) {
        guard let source = features.bytes.baseAddress else { return }
        let width = featureCount
        if features.floats {
            // Little-endian float32, as this machine's: copied as bytes (a .npy payload need not be 4-aligned).
            for (row, index) in indices.enumerated() {
                UnsafeMutableRawPointer(out + row * width).copyMemory(from: source + 4 * Int(index) * width, byteCount: 4 * width)
                labels[row] = self.labels[Int(index)]
            }
        } else {
            let pixels = source.assumingMemoryBound(to: UInt8.self)
            for (row, index) in indices.enumerated() {
                Kernels.convert(pixels + Int(index) * width, count: width, scale: 1 / 255, into: out + row * width)
                labels[row] = self.labels[Int(index)]
            }
        }
    }
}
