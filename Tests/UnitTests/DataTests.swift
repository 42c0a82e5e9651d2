// IDX reading and validation, Fashion-MNIST loading, epoch plans and sharding.
import Datasets
import DescentTestSupport
import Foundation
import Numerics
import Testing

@Suite("IDX files")
struct IDXTests {
    @Test("a raw and a gzipped file give the same dimensions and payload")
    func rawAndGzip() throws {
        let dir = try temporaryDirectory()
        let payload = (0..<(3 * 2 * 4)).map { UInt8($0 * 7 % 256) }
        let raw = dir.appendingPathComponent("x-idx3-ubyte")
        try write(idxBytes(dimensions: [3, 2, 4], payload: payload), to: raw)
        for url in [raw, try gzip(raw)] {
            let f = try IDXFile.read(path: url.path, ranks: 3...3)
            #expect(f.dimensions == [3, 2, 4])
            #expect(f.count == 3 && f.itemSize == 8)
            #expect(f.bytes == payload)
        }
    }

    @Test("malformed files are reported with file, field, expected and found")
    func malformed() throws {
        let dir = try temporaryDirectory()
        let good = idxBytes(dimensions: [2, 3], payload: [1, 2, 3, 4, 5, 6])
        let cases: [(String, [UInt8], Int, String)] = [
            ("magic", [1, 0, 8, 2] + Array(good.dropFirst(4)), 2, "magic: expected 00 00 08 02 (IDX, unsigned bytes), found 01000802"),
            ("type", idxBytes(type: 0x0D, dimensions: [2, 3], payload: [1, 2, 3, 4, 5, 6]), 2,
             "magic: element type: expected 0x08 (unsigned byte), found 0x0d"),
            ("rank", good, 3, "magic: number of dimensions: expected 3, found 2"),
            ("truncated", Array(good.dropLast(2)), 2,
             "payload length: expected 6 bytes for dimensions 2×3, found 4 bytes (file truncated)"),
            ("trailing", good + [9, 9], 2,
             "payload length: expected 6 bytes for dimensions 2×3, found 8 bytes (2 trailing bytes)"),
            ("short", [0, 0], 2, "header: expected 4 magic bytes, found 2 bytes (file too short)"),
        ]
        for (name, bytes, rank, message) in cases {
            let url = dir.appendingPathComponent(name)
            try write(bytes, to: url)
            let error = try #require(throws: DataFileError.self) { try IDXFile.read(path: url.path, ranks: rank...rank) }
            #expect(error.description == "data file \(url.path): \(message)", "case \(name)")
            // The same problem inside a gzip stream is found the same way.
            let gz = try gzip(url)
            let gzError = try #require(throws: DataFileError.self) { try IDXFile.read(path: gz.path, ranks: rank...rank) }
            #expect(gzError.field == error.field && gzError.found == error.found, "case \(name).gz")
        }
    }

    @Test("a missing file and a corrupt gzip stream are named")
    func missingAndCorrupt() throws {
        let dir = try temporaryDirectory()
        let missing = dir.appendingPathComponent("nothing.gz").path
        let e1 = try #require(throws: DataFileError.self) { try IDXFile.read(path: missing, ranks: 1...1) }
        #expect(e1.description == "data file \(missing): file: expected an IDX file (raw or gzipped), found no such file or directory")

        let raw = dir.appendingPathComponent("labels")
        try write(idxBytes(dimensions: [4000], payload: (0..<4000).map { UInt8($0 % 10) }), to: raw)
        let gz = try gzip(raw)
        var bytes = [UInt8](try Data(contentsOf: gz))
        for i in 20..<min(bytes.count - 8, 60) { bytes[i] ^= 0x5A }
        try write(bytes, to: gz)
        let e2 = try #require(throws: DataFileError.self) { try IDXFile.read(path: gz.path, ranks: 1...1) }
        #expect(e2.file == gz.path)
        #expect(e2.field == "compressed data" || e2.field == "payload length")
    }

    @Test("images and labels that disagree, and labels out of range, are refused")
    func crossChecks() throws {
        let dir = try temporaryDirectory()
        let images = dir.appendingPathComponent("i"), labels = dir.appendingPathComponent("l")
        try write(idxBytes(dimensions: [3, 2, 2], payload: [UInt8](repeating: 1, count: 12)), to: images)
        try write(idxBytes(dimensions: [2], payload: [0, 1]), to: labels)
        let e1 = try #require(throws: DataFileError.self) {
            try ArrayDataset(images: images.path, labels: labels.path, name: "t")
        }
        #expect(e1.description == "data file \(labels.path): label count: expected 3 (the number of samples in \(images.path)), found 2")
        try write(idxBytes(dimensions: [3], payload: [0, 12, 1]), to: labels)
        let e2 = try #require(throws: DataFileError.self) {
            try ArrayDataset(images: images.path, labels: labels.path, name: "t")
        }
        #expect(e2.description == "data file \(labels.path): label 1: expected a class in 0..<10, found 12")
    }

    @Test("batches scale bytes to [0, 1] and carry their labels")
    func byteScaling() throws {
        let dir = try temporaryDirectory()
        let images = dir.appendingPathComponent("i"), labels = dir.appendingPathComponent("l")
        let pixels = (0..<(3 * 9)).map { UInt8($0 * 9) }  // 3 images of 3×3 (9 = one SIMD block + 1)
        try write(idxBytes(dimensions: [3, 3, 3], payload: pixels), to: images)
        try write(idxBytes(dimensions: [3], payload: [4, 0, 9]), to: labels)
        let d = try ArrayDataset(images: images.path, labels: labels.path, name: "t")
        var features = [Float](repeating: -1, count: 2 * 9), y = [Int32](repeating: -1, count: 2)
        let indices: [Int32] = [2, 0]
        indices.withUnsafeBufferPointer { d.fill($0, features: &features, labels: &y) }
        #expect(y == [9, 4])
        for j in 0..<9 {
            #expect(abs(features[j] - Float(pixels[18 + j]) / 255) <= 1e-7)
            #expect(abs(features[9 + j] - Float(pixels[j]) / 255) <= 1e-7)
        }
    }
}

@Suite("Mapped data and the decompress cache")
struct DecompressCacheTests {
    /// A gzipped IDX label file of `n` labels and its raw payload.
    func gzippedLabels(_ dir: URL, _ name: String, _ n: Int, salt: Int = 0) throws -> (URL, [UInt8]) {
        let payload = (0..<n).map { UInt8(($0 * 7 + salt) % 10) }
        let raw = dir.appendingPathComponent(name)
        try write(idxBytes(dimensions: [n], payload: payload), to: raw)
        let gz = try gzip(raw)
        try FileManager.default.removeItem(at: raw)
        return (gz, payload)
    }

    func entries(_ folder: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    @Test("a raw file is mapped, not copied")
    func rawIsMapped() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let raw = dir.appendingPathComponent("l")
        try write(idxBytes(dimensions: [3], payload: [1, 2, 3]), to: raw)
        let f = try IDXFile.read(path: raw.path, ranks: 1...1)
        #expect(f.data.origin == "mapped" && f.bytes == [1, 2, 3])
        #expect(entries(dir) == ["l"])
    }

    @Test("a .gz is decompressed once into the cache, keyed by its content, then mapped from there")
    func decompressedOnce() throws {
        let dir = try temporaryDirectory(), cache = dir.appendingPathComponent("cache/deeper")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gz, payload) = try gzippedLabels(dir, "labels", 5000)
        let first = try IDXFile.read(path: gz.path, ranks: 1...1, cache: .folder(cache.path))
        #expect(first.bytes == payload)
        let files = entries(cache)
        #expect(files.count == 2 && files.allSatisfy { $0.hasPrefix("labels.") }, "\(files)")  // the copy and its lock
        let copy = try #require(files.first { !$0.hasSuffix(".lock") })
        let gzBytes = try [UInt8](Data(contentsOf: gz))
        #expect(copy == "labels." + hexDigest(fingerprint(bytesOf: gzBytes)))
        #expect(first.data.origin == "mapped from cache \(cache.path)/\(copy)")
        let cachedAt = try FileManager.default.attributesOfItem(atPath: cache.appendingPathComponent(copy).path)[.modificationDate] as? Date
        // Read again: the same copy, not rewritten.
        let second = try IDXFile.read(path: gz.path, ranks: 1...1, cache: .folder(cache.path))
        #expect(second.bytes == payload && entries(cache) == files)
        let again = try FileManager.default.attributesOfItem(atPath: cache.appendingPathComponent(copy).path)[.modificationDate] as? Date
        #expect(cachedAt == again)
        // New content under the same name gets its own copy.
        let (_, changed) = try gzippedLabels(dir, "labels", 5000, salt: 3)
        #expect(try IDXFile.read(path: gz.path, ranks: 1...1, cache: .folder(cache.path)).bytes == changed)
        #expect(entries(cache).filter { !$0.hasSuffix(".lock") }.count == 2)
    }

    @Test("a cached copy of the wrong length is made again")
    func damagedCopy() throws {
        let dir = try temporaryDirectory(), cache = dir.appendingPathComponent("c")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gz, payload) = try gzippedLabels(dir, "labels", 300)
        _ = try IDXFile.read(path: gz.path, ranks: 1...1, cache: .folder(cache.path))
        let copy = cache.appendingPathComponent(try #require(entries(cache).first { !$0.hasSuffix(".lock") }))
        try write([0, 0, 8], to: copy)
        #expect(try IDXFile.read(path: gz.path, ranks: 1...1, cache: .folder(cache.path)).bytes == payload)
    }

    @Test("readers racing for one .gz make one copy and leave no partial file")
    func racing() async throws {
        let dir = try temporaryDirectory(), cache = dir.appendingPathComponent("c")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gz, payload) = try gzippedLabels(dir, "labels", 3_000_000)
        let results = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<8 { group.addTask { try IDXFile.read(path: gz.path, ranks: 1...1, cache: .folder(cache.path)).bytes } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 8 && results.allSatisfy { $0 == payload })
        let files = entries(cache)
        #expect(files.count == 2 && !files.contains { $0.contains("partial") }, "\(files)")
    }

    @Test("beside the data by default, nowhere with off; a folder that cannot be made is named")
    func placesAndFailures() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gz, payload) = try gzippedLabels(dir, "labels", 100)
        let off = try IDXFile.read(path: gz.path, ranks: 1...1, cache: .off)
        #expect(off.bytes == payload && off.data.origin == "decompressed in memory")
        #expect(entries(dir) == ["labels.gz"])
        let beside = try IDXFile.read(path: gz.path, ranks: 1...1, cache: DecompressCache(setting: ""))
        #expect(beside.bytes == payload && beside.data.origin.hasPrefix("mapped from cache \(dir.path)/.descent-cache/labels."))

        let blocked = dir.appendingPathComponent("labels.gz/cache").path  // under a regular file
        let error = try #require(throws: DataFileError.self) { try IDXFile.read(path: gz.path, ranks: 1...1, cache: .folder(blocked)) }
        #expect(error.file == gz.path && error.field == "decompress cache (data.cache \(blocked))")
        #expect(error.expected == "a writable folder" && error.found.hasSuffix("not a directory"), "\(error)")
    }
}

@Suite("Fashion-MNIST")
struct FashionMNISTTests {
    static let installed = FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory + "/train-images-idx3-ubyte.gz")

    @Test("the Debian package's files load: 60000 + 10000 images of 28×28, ten balanced classes",
          .enabled(if: installed, "dataset-fashion-mnist is not installed"))
    func realFiles() throws {
        let train = try FashionMNIST.load(.train, from: FashionMNIST.defaultDirectory)
        let test = try FashionMNIST.load(.test, from: FashionMNIST.defaultDirectory)
        #expect(train.count == 60000 && test.count == 10000)
        #expect(train.featureCount == 784 && train.classCount == 10)
        var counts = [Int](repeating: 0, count: 10)
        var f = [Float](repeating: 0, count: 784), y: [Int32] = [0]
        for i in 0..<test.count {
            let index: [Int32] = [Int32(i)]
            index.withUnsafeBufferPointer { test.fill($0, features: &f, labels: &y) }
            counts[Int(y[0])] += 1
        }
        #expect(counts == [Int](repeating: 1000, count: 10))  // Fashion-MNIST's test split is balanced
    }
}

@Suite("Epoch plans and shards")
struct EpochPlanTests {
    @Test("the order is a permutation that depends only on seed and epoch")
    func permutation() {
        let a = EpochPlan(seed: 5, epoch: 3, sampleCount: 1000, batchSize: 64)
        let b = EpochPlan(seed: 5, epoch: 3, sampleCount: 1000, batchSize: 7)
        let c = EpochPlan(seed: 5, epoch: 4, sampleCount: 1000, batchSize: 64)
        let d = EpochPlan(seed: 6, epoch: 3, sampleCount: 1000, batchSize: 64)
        #expect(Set(a.order).count == 1000 && a.order.allSatisfy { $0 >= 0 && $0 < 1000 })
        #expect(a.order == b.order)
        #expect(a.order != c.order && a.order != d.order)
        #expect(EpochPlan(seed: 5, epoch: 3, sampleCount: 10, batchSize: 3, shuffle: false).order == (0..<10).map { $0 })
    }

    @Test("batches cover the epoch; the last may be smaller")
    func batches() {
        let p = EpochPlan(seed: 1, epoch: 0, sampleCount: 10, batchSize: 4)
        #expect(p.batchCount == 3)
        #expect([p.batch(0), p.batch(1), p.batch(2)] == [0..<4, 4..<8, 8..<10])
    }

    @Test("shards are contiguous, balanced and together give the batch in order", arguments: [1, 2, 3, 4, 7])
    func shards(ranks: Int) {
        for range in [0..<0, 5..<6, 10..<17, 100..<228] {
            let parts = (0..<ranks).map { shard(of: range, rank: $0, size: ranks) }
            #expect(parts.flatMap { Array($0) } == Array(range))
            let sizes = parts.map(\.count)
            #expect(sizes.max()! - sizes.min()! <= 1)
            #expect(sizes == sizes.sorted(by: >))
        }
    }
}
