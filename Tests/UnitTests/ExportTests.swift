// The files other tools load: model.safetensors read back by an independent reader (bit-equal to the trained
// parameters, in PyTorch's layout), and the TensorBoard event file read back record by record (CRCs checked,
// scalars decoded and compared with metrics.csv).
import DescentTestSupport
import Foundation
import Models
import Testing
@testable import Training
import Collectives
import Config
import Datasets

@Suite("Files for other tools")
struct ExportTests {
    /// Trains a small synthetic MLP 6-5-4-3 in-process and returns its run folder.
    func trainedRun() throws -> URL {
        let dir = try temporaryDirectory()
        let c = try RunConfig.load(yaml: """
            name: export
            data: {source: synthetic, train_samples: 200, test_samples: 40, features: 6, classes: 3}
            model: {hidden: [5, 4]}
            optimizer: {name: adam, lr: 0.01}
            training: {batch: 50, epochs: 3, log_every: 2}
            output: {dir: \(dir.path)}
            """, fileName: "test")
        try Trainer.quiet(c, on: SingleProcessCommunicator()).run()
        return dir.appendingPathComponent("export")
    }

    /// CRC-32C bit by bit (the reflected Castagnoli polynomial), independent of the writer's table.
    func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0x82F6_3B78 : 0) }
        }
        return ~crc
    }

    func le<T: FixedWidthInteger>(_ bytes: [UInt8], _ at: Int, _: T.Type) -> T {
        (0..<MemoryLayout<T>.size).reduce(T(0)) { $0 | T(bytes[at + $1]) << (8 * $1) }
    }

    @Test("CRC-32C matches the specification's check value, and the writer's masking rotates and adds")
    func crc() {
        #expect(crc32c(Array("123456789".utf8)) == 0xE306_9283)
        #expect(TensorBoard.crc32c(Array("123456789".utf8)) == 0xE306_9283)
        let c: UInt32 = 0xE306_9283
        #expect(TensorBoard.masked(c) == ((c >> 15) | (c << 17)) &+ 0xA282_EAD8)
    }

    @Test("model.safetensors: a JSON header, tensors covering the buffer exactly, bit-equal to parameters.f32 in torch's (out, in) layout")
    func safetensors() throws {
        let run = try trainedRun()
        let bytes = [UInt8](try Data(contentsOf: run.appendingPathComponent("model.safetensors")))
        let n = Int(le(bytes, 0, UInt64.self))
        #expect((8 + n) % 8 == 0)
        let header = try #require(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as? [String: Any])
        let meta = try #require(header["__metadata__"] as? [String: String])
        let summary = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
        #expect(meta["step"] == "\(summary["steps"] as? Int ?? -1)" && meta["config_hash"]?.count == 16 && meta["format"] == "pt")
        let flat = try Data(contentsOf: run.appendingPathComponent("parameters.f32")).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        // descent's layout: per layer (inputs, outputs) weights row-major, then the bias.
        let sizes = [6, 5, 4, 3]
        var offset = 0, expected: [String: ([Int], [Float])] = [:]
        for l in 0..<3 {
            let (i, o) = (sizes[l], sizes[l + 1])
            let w = (0..<(o * i)).map { k in flat[offset + (k % i) * o + k / i] }  // torch's [o][i] = descent's [i][o]
            expected["\(2 * l).weight"] = ([o, i], w)
            expected["\(2 * l).bias"] = ([o], Array(flat[(offset + i * o)..<(offset + i * o + o)]))
            offset += i * o + o
        }
        let data = Array(bytes[(8 + n)...])
        var covered: [Range<Int>] = []
        for (name, (shape, values)) in expected {
            let entry = try #require(header[name] as? [String: Any], "\(name) missing")
            #expect(entry["dtype"] as? String == "F32" && entry["shape"] as? [Int] == shape)
            let range = try #require(entry["data_offsets"] as? [Int])
            covered.append(range[0]..<range[1])
            let read = stride(from: range[0], to: range[1], by: 4).map { Float(bitPattern: le(data, $0, UInt32.self)) }
            #expect(read.map(\.bitPattern) == values.map(\.bitPattern), "\(name)")
        }
        #expect(header.count == expected.count + 1)
        let sorted = covered.sorted { $0.lowerBound < $1.lowerBound }
        #expect(sorted.first?.lowerBound == 0 && sorted.last?.upperBound == data.count)
        #expect(zip(sorted, sorted.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        // Where python3 has numpy and safetensors, they load the file too.
        let check = "import sys; from safetensors.numpy import load_file; t = load_file(sys.argv[1]); print(sorted((k, v.shape) for k, v in t.items()))"
        if let python = try? runProgram("/usr/bin/python3", ["-c", check, run.appendingPathComponent("model.safetensors").path],
                                        environment: [:], directory: run), python.status == 0 {
            #expect(python.stdout.contains("('0.weight', (5, 6))") && python.stdout.contains("('4.bias', (3,))"), "\(python.stdout)")
        }
    }

    /// A protobuf field: number, wire type, and its varint, fixed-width or length-delimited payload.
    func fields(_ b: [UInt8]) -> [(field: Int, type: Int, value: UInt64, bytes: [UInt8])] {
        var i = 0, out: [(Int, Int, UInt64, [UInt8])] = []
        func varint() -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true { let x = b[i]; i += 1; v |= UInt64(x & 0x7F) << shift; shift += 7; if x < 0x80 { return v } }
        }
        while i < b.count {
            let key = varint(), type = Int(key & 7)
            switch type {
            case 0: out.append((Int(key >> 3), 0, varint(), []))
            case 1: out.append((Int(key >> 3), 1, le(b, i, UInt64.self), [])); i += 8
            case 5: out.append((Int(key >> 3), 5, UInt64(le(b, i, UInt32.self)), [])); i += 4
            default: let n = Int(varint()); out.append((Int(key >> 3), 2, 0, Array(b[i..<(i + n)]))); i += n
            }
        }
        return out
    }

    /// The records of a TFRecord file, each one's masked CRCs checked.
    func records(_ file: URL) throws -> [[UInt8]] {
        let b = [UInt8](try Data(contentsOf: file))
        func mask(_ c: UInt32) -> UInt32 { ((c >> 15) | (c << 17)) &+ 0xA282_EAD8 }
        var i = 0, events: [[UInt8]] = []
        while i + 16 <= b.count {
            let n = Int(le(b, i, UInt64.self))
            #expect(le(b, i + 8, UInt32.self) == mask(crc32c(Array(b[i..<(i + 8)]))))
            let data = Array(b[(i + 12)..<(i + 12 + n)])
            #expect(le(b, i + 12 + n, UInt32.self) == mask(crc32c(data)))
            events.append(data)
            i += 16 + n
        }
        #expect(i == b.count)
        return events
    }

    @Test("HParams: the experiment lists every hyperparameter and metric; each session holds its values, group and status")
    func hparams() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for f in ["a/s1", "a/s2"] { try FileManager.default.createDirectory(at: dir.appendingPathComponent(f), withIntermediateDirectories: true) }
        try HParams.write(into: dir.path, name: "launch", config: "name: launch\n", sessions: [
            HParams.Session(folder: "a/s1", group: "g", hparams: [("lr", .number(0.25)), ("optimizer", .text("adam"))],
                            metrics: [("test_accuracy", 0.75)], succeeded: true),
            HParams.Session(folder: "a/s2", group: "", hparams: [("lr", .number(2))], metrics: [("test_accuracy", .nan)], succeeded: false),
            HParams.Session(folder: "elsewhere", group: "", hparams: [], metrics: [], succeeded: true),
        ])
        /// The one hparams file of a folder: its events' summary values as (tag, plugin content) and scalars.
        func read(_ folder: URL) throws -> (plugin: [String: [UInt8]], scalars: [String: Float]) {
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".hparams") }
            try #require(names.count == 1)
            var plugin: [String: [UInt8]] = [:], scalars: [String: Float] = [:]
            for e in try records(folder.appendingPathComponent(names[0])).dropFirst() {
                let summary = try #require(fields(e).first { $0.field == 5 })
                for v in fields(summary.bytes) where v.field == 1 {
                    let inner = fields(v.bytes)
                    let tag = String(decoding: try #require(inner.first { $0.field == 1 }).bytes, as: UTF8.self)
                    if let simple = inner.first(where: { $0.field == 2 }) { scalars[tag] = Float(bitPattern: UInt32(simple.value)) }
                    // metadata (9) → plugin_data (1) → plugin_name (1) "hparams", content (2)
                    if let metadata = inner.first(where: { $0.field == 9 }) {
                        let wrapped = try #require(fields(metadata.bytes).first { $0.field == 1 })
                        let pluginData = fields(wrapped.bytes)
                        #expect(pluginData.first { $0.field == 1 }.map { String(decoding: $0.bytes, as: UTF8.self) } == "hparams")
                        plugin[tag] = try #require(pluginData.first { $0.field == 2 }).bytes
                    }
                }
            }
            return (plugin, scalars)
        }
        /// The message in field `n` of the HParamsPluginData under `_hparams_/<tag>`.
        func content(_ r: (plugin: [String: [UInt8]], scalars: [String: Float]), _ tag: String, _ n: Int) throws
            -> [(field: Int, type: Int, value: UInt64, bytes: [UInt8])] {
            let data = try #require(r.plugin["_hparams_/" + tag])
            return fields(try #require(fields(data).first { $0.field == n }).bytes)
        }
        func text(_ f: [(field: Int, type: Int, value: UInt64, bytes: [UInt8])], _ n: Int) -> [String] {
            f.filter { $0.field == n }.map { String(decoding: $0.bytes, as: UTF8.self) }
        }
        // The experiment (HParamsPluginData field 2): hparam_infos (4) with name and type (3 = float64, 1 = string),
        // metric_infos (5) with name.tag.
        let root = try read(dir)
        let experiment = try content(root, "experiment", 2)
        #expect(text(experiment, 6) == ["launch"] && text(experiment, 1).first?.contains("name: launch") == true)
        let infos = experiment.filter { $0.field == 4 }.map { fields($0.bytes) }
        #expect(infos.map { text($0, 1)[0] } == ["lr", "optimizer"] && infos.map { $0.first { $0.field == 4 }!.value } == [3, 1])
        #expect(experiment.filter { $0.field == 5 }.map { text(fields(fields($0.bytes)[0].bytes), 2) } == [["final/test_accuracy"]])
        // A session: start info (3) with hparams map entries and group name (4), end info (4) with status (1).
        let s1 = try read(dir.appendingPathComponent("a/s1"))
        let start = try content(s1, "session_start_info", 3)
        let entries = start.filter { $0.field == 1 }.map { fields($0.bytes) }
        #expect(entries.map { text($0, 1)[0] } == ["lr", "optimizer"])
        #expect(Double(bitPattern: fields(entries[0][1].bytes)[0].value) == 0.25 && text(fields(entries[1][1].bytes), 3) == ["adam"])
        #expect(text(start, 4) == ["g"])
        let end = { (r: (plugin: [String: [UInt8]], scalars: [String: Float])) throws -> UInt64 in try content(r, "session_end_info", 4)[0].value }
        #expect(try end(s1) == 1 && s1.scalars == ["final/test_accuracy": 0.75])
        let s2 = try read(dir.appendingPathComponent("a/s2"))
        #expect(try end(s2) == 2 && s2.scalars.isEmpty)  // a failure; its nan metric is left out
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("elsewhere").path))
    }

    @Test("the event file: every record's masked CRCs hold, the first is brain.Event:2, the scalars are metrics.csv's")
    func events() throws {
        let run = try trainedRun()
        let names = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasPrefix("events.out.tfevents.") }
        #expect(names.count == 1)
        let events = try records(run.appendingPathComponent(names[0]))
        let first = fields(events[0])
        #expect(first.contains { $0.field == 3 && String(decoding: $0.bytes, as: UTF8.self) == "brain.Event:2" })
        // Each later event: step (2) and a summary (5) of values (1) with tag (1) and simple_value (2).
        var decoded: [(step: Int, tag: String, value: Float)] = []
        for e in events.dropFirst() {
            let f = fields(e)
            let step = Int(try #require(f.first { $0.field == 2 }).value)
            for v in fields(try #require(f.first { $0.field == 5 }).bytes) where v.field == 1 {
                let inner = fields(v.bytes)
                let tag = String(decoding: try #require(inner.first { $0.field == 1 }).bytes, as: UTF8.self)
                decoded.append((step, tag, Float(bitPattern: UInt32(try #require(inner.first { $0.field == 2 }).value))))
            }
        }
        let rows = try readCSV(run.appendingPathComponent("metrics.csv"))
        #expect(events.count == rows.count + 1)
        let accuracy = rows.filter { $0["kind"] == "epoch" }.map { (Int($0["step"]!)!, Float(Double($0["test_accuracy"]!)!)) }
        #expect(accuracy.count == 3)
        #expect(decoded.filter { $0.tag == "test/accuracy" }.map { [Float($0.step), $0.value] } == accuracy.map { [Float($0.0), $0.1] })
        #expect(decoded.filter { $0.tag == "learning_rate" }.count == rows.count)
        #expect(decoded.contains { $0.tag == "samples_per_second" && $0.value > 0 })
        // Window means and epoch means under their own tags, each equal to its rows' batch_loss in metrics.csv.
        for (kind, tag) in [("step", "batch_loss/window"), ("epoch", "batch_loss/epoch")] {
            let expected = rows.filter { $0["kind"] == kind }.map { [Float($0["step"]!)!, Float(Double($0["batch_loss"]!)!)] }
            #expect(!expected.isEmpty && decoded.filter { $0.tag == tag }.map { [Float($0.step), $0.value] } == expected, "\(tag)")
        }
        #expect(!decoded.contains { $0.tag == "batch_loss" || $0.tag == "noise_scale" })
        // A curvature row's measurements, each against gradient descent's threshold 2/η.
        let curvature = MetricsRow(kind: .curvature, step: 40, epoch: 1, samples: 640, wallSeconds: 3, learningRate: 0.01,
                                   sharpness: 180, lambdaMin: -2, hessianTrace: 900, preconditionedSharpness: 3000, preconditionedThreshold: 3800)
        let tags = Dictionary(uniqueKeysWithValues: TensorBoard.scalars(curvature, rate: nil).map { ($0.tag, $0.value) })
        #expect(tags["curvature/sharpness"] == 180 && tags["curvature/two_over_lr"] == 200 && tags["curvature/lambda_min"] == -2
                && tags["curvature/hessian_trace"] == 900 && tags["curvature/preconditioned_sharpness"] == 3000
                && tags["curvature/preconditioned_threshold"] == 3800 && tags["learning_rate"] == 0.01)
    }
}

@Suite("Starting from saved weights, evaluating them")
struct SavedWeightsTests {
    func config(_ dir: URL, name: String, hidden: String, extra: String = "") throws -> RunConfig {
        try RunConfig.load(yaml: """
            name: \(name)
            data: {source: synthetic, train_samples: 200, test_samples: 60, features: 6, classes: 3}
            model: {hidden: \(hidden)\(extra)}
            optimizer: {name: adam, lr: 0.01}
            training: {batch: 50, epochs: 2}
            output: {dir: \(dir.path)}
            """, fileName: "test")
    }

    func trainer(_ c: RunConfig) throws -> Trainer {
        try Trainer.quiet(c, on: SingleProcessCommunicator())
    }

    @Test("model.init_from starts from a run's model.safetensors bit for bit; a file for another model is refused, naming the tensor")
    func initFrom() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try trainer(try config(dir, name: "a", hidden: "[5, 4]")).run()
        let file = dir.path + "/a/model.safetensors"
        let saved = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/a/parameters.f32")).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let b = try trainer(try config(dir, name: "b", hidden: "[5, 4]", extra: ", init_from: \(file)"))
        #expect(b.replicas[0].parameters.map(\.bitPattern) == saved.map(\.bitPattern))
        #expect(b.config.resolvedYAML.contains("init_from: "))
        do {
            _ = try trainer(try config(dir, name: "c", hidden: "[7]", extra: ", init_from: \(file)"))
            Issue.record("a mismatched file was accepted")
        } catch {
            #expect("\(error)" == "data file \(file): tensors: expected the model's 0.weight, 0.bias, 2.weight, 2.bias, found also 4.bias, 4.weight",
                    "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/c"))
    }

    @Test("hostile weights files: a missing tensor is named before any offset, a non-finite weight by tensor and index, a shape whose size overflows is refused",
          arguments: ["missing", "nan", "huge shape", "shape of another model"])
    func hostileWeights(_ name: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try trainer(try config(dir, name: "a", hidden: "[5, 4]")).run()
        var tensors = try SafeTensors.read(path: dir.path + "/a/model.safetensors").tensors.values.sorted { $0.name < $1.name }
        let file = dir.path + "/w.safetensors"
        var bytes: Data
        let expected: String
        switch name {
        case "missing":
            tensors.removeAll { $0.name == "2.bias" }
            bytes = SafeTensors.encode(tensors, metadata: [:])
            expected = "tensors: expected the model's 0.weight, 0.bias, 2.weight, 2.bias, 4.weight, 4.bias, found no 2.bias"
        case "nan":
            tensors[tensors.firstIndex { $0.name == "0.weight" }!].values[3] = .nan
            bytes = SafeTensors.encode(tensors, metadata: [:])
            expected = "tensor 0.weight[3]: expected finite values, found nan"
        case "huge shape":  // once a trap: the element count overflowed
            let header = #"{"x":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,16]}}"#
            bytes = Data([UInt8(header.utf8.count)] + [UInt8](repeating: 0, count: 7)) + Data(header.utf8) + Data(count: 16)
            expected = "tensor x: shape: expected dimensions ≥ 0 whose float32 elements fit the 16-byte buffer, found [4611686018427387904, 4611686018427387904]"
        default:
            let i = tensors.firstIndex { $0.name == "4.bias" }!
            tensors[i] = NamedTensor(name: "4.bias", shape: [4], values: [1, 2, 3, 4])
            bytes = SafeTensors.encode(tensors, metadata: [:])
            expected = "tensor 4.bias: expected shape (3) (model 6-5-4-3), found (4)"
        }
        try bytes.write(to: URL(fileURLWithPath: file))
        do {
            // The huge shape is read as any safetensors file is (descent eval's reader), names unchecked.
            if name == "huge shape" { _ = try SafeTensors.read(path: file) }
            _ = try trainer(try config(dir, name: "b", hidden: "[5, 4]", extra: ", init_from: \(file)"))
            Issue.record("\(name): accepted")
        } catch {
            #expect("\(error)" == "data file \(file): " + expected, "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/b"))
    }

    @Test("eval gives the run's own test loss and accuracy, and a confusion matrix whose diagonal is the accuracy")
    func evaluation() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try config(dir, name: "a", hidden: "[5]")
        try trainer(c).run()
        let summary = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path + "/a/summary.json"))) as? [String: Any])
        let probe = try Trainer.quiet(c, on: SingleProcessCommunicator(), writeOutput: false)
        let parameters = try Trainer.startingParameters(dir.path + "/a/model.safetensors", model: probe.model)
        let r = try Evaluation.run(probe.evaluator, parameters: parameters, on: probe.testSet, split: "test")
        #expect(r.loss == summary["test_loss"] as? Double && r.accuracy == summary["test_accuracy"] as? Double)
        #expect(r.confusion.flatMap { $0 }.reduce(0, +) == 60)
        #expect(Double((0..<3).map { r.confusion[$0][$0] }.reduce(0, +)) / 60 == r.accuracy)
        try Evaluation.write(r, to: dir.path + "/a/eval")
        let svg = try String(contentsOfFile: dir.path + "/a/eval/confusion.svg", encoding: .utf8)
        #expect(xmlError(svg) == nil)
        let csv = try String(contentsOfFile: dir.path + "/a/eval/confusion.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 4 && csv[0] == "true\\predicted,0,1,2")
        // Where the data set names its classes (Fashion-MNIST), rows and columns carry the name beside the index.
        let named = try Evaluation.run(probe.evaluator, parameters: parameters, on: probe.testSet, split: "test",
                                       classNames: ["T-shirt/top", "Trouser", "Pull, over"])
        try Evaluation.write(named, to: dir.path + "/a/named")
        let rows = try String(contentsOfFile: dir.path + "/a/named/confusion.csv", encoding: .utf8).split(separator: "\n")
        #expect(rows[0] == "true\\predicted,0 T-shirt/top,1 Trouser,\"2 Pull, over\"")
        #expect(rows[1].hasPrefix("0 T-shirt/top,") && rows[3].hasPrefix("\"2 Pull, over\","))
        let picture = try String(contentsOfFile: dir.path + "/a/named/confusion.svg", encoding: .utf8)
        #expect(xmlError(picture) == nil && picture.contains(">1 Trouser<") && picture.contains(">2 Pull, over<"))
        #expect(FashionMNIST.classNames.count == 10 && FashionMNIST.classNames[9] == "Ankle boot")
    }
}
