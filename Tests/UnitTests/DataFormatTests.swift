// Bring your own data: IDX pairs of any image shape and NumPy .npy arrays (versions 1–3), written by the tests
// themselves, loaded through the config as a run loads them; each bad input gives one message naming the file
// or key, and no run folder.
import Collectives
import Config
import Datasets
import DescentTestSupport
import Foundation
import Testing
@testable import Training

@Suite("Data from IDX and NPY files")
struct DataFormatTests {
    func config(_ dir: URL, _ data: String, extra: String = "") throws -> RunConfig {
        try RunConfig.load(yaml: """
            name: files
            data: \(data)
            model: {hidden: [8]}
            optimizer: {name: sgd, lr: 0.1}
            training: {batch: 16, epochs: 1}
            output: {dir: \(dir.appendingPathComponent("runs").path)}
            \(extra)
            """, fileName: "test")
    }

    func trainer(_ c: RunConfig, writeOutput: Bool = true) throws -> Trainer {
        try Trainer.quiet(c, on: SingleProcessCommunicator(), writeOutput: writeOutput)
    }

    @Test("an IDX pair of 5×3 images with 4 classes trains; the classes come from the labels, or from data.classes")
    func idx() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = 40
        try write(idxBytes(dimensions: [n, 5, 3], payload: (0..<(n * 15)).map { UInt8($0 % 251) }), to: dir.appendingPathComponent("x"))
        try write(idxBytes(dimensions: [n], payload: (0..<n).map { UInt8($0 % 4) }), to: dir.appendingPathComponent("y"))
        let files = "{source: idx, train_images: \(dir.path)/x, train_labels: \(dir.path)/y, test_images: \(dir.path)/x, test_labels: \(dir.path)/y"
        let t = try trainer(try config(dir, files + "}"))
        #expect(t.trainSet.featureCount == 15 && t.trainSet.classCount == 4 && t.trainSet.count == n)
        try t.run()
        #expect(FileManager.default.fileExists(atPath: dir.path + "/runs/files/model.safetensors"))
        let six = try trainer(try config(dir, files + ", classes: 6}"), writeOutput: false)
        #expect(six.trainSet.classCount == 6)
        let c = try config(dir, files + "}")
        #expect(c.resolvedYAML.contains("train_images: ") && c.resolvedYAML.contains("classes: auto"))
    }

    @Test("npy versions 1, 2 and 3: float32 and uint8 features and int64 labels load exactly; the test pair is optional",
          arguments: [UInt8(1), 2, 3])
    func npy(version: UInt8) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = 24, width = 6
        let x = (0..<(n * width)).map { Float($0) * 0.25 - 3 }
        try write(npyBytes(descr: "<f4", shape: [n, width], payload: floatBytes(x), version: version), to: dir.appendingPathComponent("x.npy"))
        try write(npyBytes(descr: "<i8", shape: [n], payload: int64Bytes((0..<n).map { $0 % 3 }), version: version),
                  to: dir.appendingPathComponent("y.npy"))
        let t = try trainer(try config(dir, "{source: npy, x: \(dir.path)/x.npy, y: \(dir.path)/y.npy}"))
        #expect(t.trainSet.count == n && t.trainSet.featureCount == width && t.trainSet.classCount == 3 && t.testSet.count == 0)
        var features = [Float](repeating: 0, count: 2 * width), labels = [Int32](repeating: -1, count: 2)
        [Int32(5), 0].withUnsafeBufferPointer { t.trainSet.fill($0, features: &features, labels: &labels) }
        #expect(features == Array(x[(5 * width)..<(6 * width)] + x[0..<width]) && labels == [2, 0])
        try t.run()
        let rows = try readCSV(URL(fileURLWithPath: dir.path + "/runs/files/metrics.csv")).filter { $0["kind"] == "epoch" }
        #expect(rows.count == 1 && rows[0]["test_loss"] == "" && rows[0]["batch_loss"] != "")
        // uint8 features are scaled to [0, 1] as IDX images are.
        try write(npyBytes(descr: "|u1", shape: [n, 2, 3], payload: (0..<(n * width)).map { UInt8($0 % 256) }, version: version),
                  to: dir.appendingPathComponent("xb.npy"))
        let b = try trainer(try config(dir, "{source: npy, x: \(dir.path)/xb.npy, y: \(dir.path)/y.npy, test_x: \(dir.path)/xb.npy, test_y: \(dir.path)/y.npy}"),
                            writeOutput: false)
        [Int32(1)].withUnsafeBufferPointer { b.trainSet.fill($0, features: &features, labels: &labels) }
        #expect(Array(features[0..<width]) == (width..<(2 * width)).map { Float($0) * (1 / Float(255)) } && b.testSet.count == n)
    }

    @Test("bad data: one message naming the file or key, and no run folder", arguments: [
        "dtype", "fortran", "truncated", "counts", "range", "missing key", "test features",
        "huge label", "no samples", "no features", "nan feature", "infinite feature",
    ])
    func badData(_ name: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = dir.appendingPathComponent("x.npy").path, y = dir.appendingPathComponent("y.npy").path
        let tx = dir.appendingPathComponent("tx.npy").path
        let n = 10
        var xb = npyBytes(descr: "<f4", shape: [n, 2], payload: floatBytes([Float](repeating: 1, count: 2 * n)))
        var yb = npyBytes(descr: "|u1", shape: [n], payload: (0..<n).map { UInt8($0 % 2) })
        var data = "{source: npy, x: \(x), y: \(y)}"
        let expected: String
        switch name {
        case "dtype":
            xb = npyBytes(descr: "<f8", shape: [n, 2], payload: [UInt8](repeating: 0, count: 16 * n))
            expected = "data file \(x): header: descr: expected '|u1' or '<f4', found '<f8'"
        case "fortran":
            xb = npyBytes(descr: "<f4", shape: [n, 2], payload: floatBytes([Float](repeating: 1, count: 2 * n)), fortran: true)
            expected = "data file \(x): header: fortran_order: expected False (C order), found True"
        case "truncated":
            xb = Array(xb.dropLast(5))
            expected = "data file \(x): payload length: expected 80 bytes for shape (10, 2) of <f4, found 75 bytes (file truncated)"
        case "counts":
            yb = npyBytes(descr: "|u1", shape: [n - 1], payload: (0..<(n - 1)).map { UInt8($0 % 2) })
            expected = "data file \(y): label count: expected 10 (the number of samples in \(x)), found 9"
        case "range":
            data = "{source: npy, x: \(x), y: \(y), classes: 2}"
            yb = npyBytes(descr: "|u1", shape: [n], payload: [0, 1, 0, 7, 1, 0, 1, 0, 1, 0])
            expected = "data file \(y): label 3: expected a class in 0..<2, found 7"
        case "huge label":  // once a trap: the class count from the labels, then a conversion to Int32
            data = "{source: npy, x: \(x), y: \(y), classes: auto}"
            yb = npyBytes(descr: "<i8", shape: [n], payload: int64Bytes([0, 1, 0, 1 << 40, 1, 0, 1, 0, 1, 0]))
            expected = "data file \(y): label 3: expected a class in 0..<100000 (data.classes: auto counts the classes from the labels), found \(1 << 40)"
        case "no samples":  // once a trap: a division by zero samples
            xb = npyBytes(descr: "<f4", shape: [0, 2], payload: [])
            yb = npyBytes(descr: "|u1", shape: [0], payload: [])
            expected = "data file \(x): samples: expected at least one sample, found none"
        case "no features":
            xb = npyBytes(descr: "<f4", shape: [n, 0], payload: [])
            expected = "data file \(x): header: shape: expected at least one feature per sample, found (0) per sample"
        case "nan feature", "infinite feature":
            var values = [Float](repeating: 1, count: 2 * n)
            values[7] = name == "nan feature" ? .nan : -.infinity
            xb = npyBytes(descr: "<f4", shape: [n, 2], payload: floatBytes(values))
            expected = "data file \(x): sample 3, feature 1: expected a finite float32, found \(name == "nan feature" ? "nan" : "-inf")"
        case "missing key":
            data = "{source: npy, x: \(x)}"
            expected = "data.y: expected a file path (data.source npy needs it), found nothing"
        default:
            try write(npyBytes(descr: "<f4", shape: [n, 3], payload: floatBytes([Float](repeating: 1, count: 3 * n))), to: URL(fileURLWithPath: tx))
            data = "{source: npy, x: \(x), y: \(y), test_x: \(tx), test_y: \(y)}"
            expected = "data file \(tx): header: shape: expected samples of 2 features, as in \(x), found 3 features per sample"
        }
        try write(xb, to: URL(fileURLWithPath: x))
        try write(yb, to: URL(fileURLWithPath: y))
        do {
            _ = try trainer(try config(dir, data))
            Issue.record("case \(name): no error")
        } catch {
            #expect("\(error)".hasSuffix(expected), "case \(name): \(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/runs/files"), "case \(name) left a run folder")
    }
}

@Suite("Validation split")
struct ValidationSplitTests {
    func trainer(_ dir: URL, _ validation: String, seed: Int = 1) throws -> Trainer {
        let c = try RunConfig.load(yaml: """
            name: val
            seed: \(seed)
            data: {source: synthetic, train_samples: 200, test_samples: 40, features: 6, classes: 3, validation: \(validation)}
            model: {hidden: [8]}
            optimizer: {name: sgd, lr: 0.1}
            training: {batch: 25, epochs: 2}
            output: {dir: \(dir.path)}
            """, fileName: "test")
        return try Trainer.quiet(c, on: SingleProcessCommunicator())
    }

    @Test("data.validation holds out a seed-determined set: disjoint from training, the same for the same seed, and evaluated every epoch")
    func split() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try trainer(dir, "0.25")
        let train = try #require(t.trainSet as? SubsetDataset), validation = try #require(t.validationSet as? SubsetDataset)
        #expect(train.count == 150 && validation.count == 50)
        #expect(Set(train.indices).isDisjoint(with: validation.indices) && Set(train.indices + validation.indices).count == 200)
        try t.run()
        let again = try #require(try trainer(dir.appendingPathComponent("again"), "50").validationSet as? SubsetDataset)
        let other = try #require(try trainer(dir.appendingPathComponent("other"), "50", seed: 2).validationSet as? SubsetDataset)
        #expect(again.indices == validation.indices && other.indices != validation.indices)
        let rows = try readCSV(dir.appendingPathComponent("val/metrics.csv")).filter { $0["kind"] == "epoch" }
        #expect(rows.count == 2 && rows.allSatisfy { (Double($0["val_accuracy"] ?? "") ?? -1) >= 0 && Double($0["val_loss"] ?? "") != nil })
        let summary = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("val/summary.json"))) as? [String: Any])
        #expect(summary["val_accuracy"] as? Double == Double(rows.last!["val_accuracy"]!))
    }

    @Test("a validation count that is not a whole number, or leaves no training samples, is refused naming data.validation",
          arguments: ["1.5", "200", "-0.1"])
    func refused(_ value: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try trainer(dir, value)
            Issue.record("data.validation \(value) was accepted")
        } catch {
            #expect("\(error)".contains("data.validation: expected"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/val"))
    }
}
