// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): where Debian puts its four IDX files and how they are named.

/// Where Fashion-MNIST's four files live and how they are named.
public enum FashionMNIST {
    /// Debian's `dataset-fashion-mnist` package installs the files here.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    public enum Split: String, Sendable { case train, test }

    /// The names of labels 0–9, as the data set's authors list them.
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                                    "Bag", "Ankle boot"]

    /// Loads one split from `directory`, accepting gzipped (`.gz`) or raw file names.
    public static func load(_ split: Split, from directory: String, cache: DecompressCache = .besideData) throws -> ArrayDataset {
        let prefix = split == .train ? "train" : "t10k"
        let images = resolve("\(directory)/\(prefix)-images-idx3-ubyte")
        let labels = resolve("\(directory)/\(prefix)-labels-idx1-ubyte")
        return try ArrayDataset(images: images, labels: labels, name: "fashion-mnist \(split.rawValue)", cache: cache)
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
