// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from its IDX files, held as bytes and scaled per batch.
import Numerics

/// One split of Fashion-MNIST (or any MNIST-format set): images kept as bytes in memory (one byte per pixel),
/// converted to floats in [0, 1] only for the samples of a batch.
public final class ByteImageDataset: Dataset {
    public let count: Int
    public let featureCount: Int
    public let classCount: Int
    public let summary: String
    public let files: [(path: String, identity: String)]
    private let pixels: [UInt8]
    private let labelBytes: [UInt8]

    /// Loads and cross-checks an image file and its label file.
    public init(images imagePath: String, labels labelPath: String, classCount: Int = 10, name: String) throws {
        let images = try IDXFile.read(path: imagePath, rank: 3)
        let labels = try IDXFile.read(path: labelPath, rank: 1)
        guard labels.count == images.count else {
            throw DataFileError(file: labelPath, field: "label count",
                                expected: "\(images.count) (the number of images in \(imagePath))",
                                found: "\(labels.count)")
        }
        if let bad = labels.bytes.firstIndex(where: { Int($0) >= classCount }) {
            throw DataFileError(file: labelPath, field: "label \(bad)", expected: "a class in 0..<\(classCount)",
                                found: "\(labels.bytes[bad])")
        }
        count = images.count
        featureCount = images.itemSize
        self.classCount = classCount
        pixels = images.bytes
        labelBytes = labels.bytes
        files = [images, labels].map { f in
            var info = stat()
            let size = stat(f.path, &info) == 0 ? Int(info.st_size) : -1
            return (f.path, "\(size) bytes, content \(hexDigest(fingerprint(bytesOf: f.bytes)))")
        }
        summary = "\(name) (\(count) × \(images.dimensions.dropFirst().map(String.init).joined(separator: "×")))"
    }

    public func fill(
        _ indices: UnsafeBufferPointer<Int32>, features: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>
    ) {
        let width = featureCount
        let scale: Float = 1 / 255
        pixels.withUnsafeBufferPointer { px in
            for (row, index) in indices.enumerated() {
                let source = px.baseAddress! + Int(index) * width
                let target = features + row * width
                Kernels.convert(source, count: width, scale: scale, into: target)
                labels[row] = Int32(labelBytes[Int(index)])
            }
        }
    }
}

/// Where Fashion-MNIST's four files live and how they are named.
public enum FashionMNIST {
    /// Debian's `dataset-fashion-mnist` package installs the files here.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    public enum Split: String, Sendable { case train, test }

    /// Loads one split from `directory`, accepting gzipped (`.gz`) or raw file names.
    public static func load(_ split: Split, from directory: String) throws -> ByteImageDataset {
        let prefix = split == .train ? "train" : "t10k"
        let images = resolve("\(directory)/\(prefix)-images-idx3-ubyte")
        let labels = resolve("\(directory)/\(prefix)-labels-idx1-ubyte")
        return try ByteImageDataset(images: images, labels: labels, name: "fashion-mnist \(split.rawValue)")
    }

    /// The `.gz` name if that file exists, else the raw name if that exists, else the `.gz` name (whose absence
    /// the reader then reports).
    private static func resolve(_ base: String) -> String {
        if fileExists(base + ".gz") { return base + ".gz" }
        if fileExists(base) { return base }
        return base + ".gz"
    }
}

#if canImport(Glibc)
import Glibc
#endif

func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
}
