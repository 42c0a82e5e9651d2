// Hostile files under mpirun: data through `data.source: npy` and weights through `model.init_from`, each damaged
// in its own way. Every one gives exactly one `descent:` line, a non-zero exit on every rank and no run folder.
import DescentTestSupport
import Foundation
import Testing

@Suite("Hostile files under mpirun", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct HostileFilesTests {
    /// A hostile case: the files it writes (name → bytes) and the overrides that make the run read them.
    struct Case: CustomStringConvertible, Sendable {
        var label: String
        var files: [String: [UInt8]]
        var sets: [String]
        var description: String { label }
    }

    static let n = 12
    static var goodX: [UInt8] { npyBytes(descr: "<f4", shape: [n, 16], payload: floatBytes((0..<(16 * n)).map { Float($0 % 7) })) }
    static var goodY: [UInt8] { npyBytes(descr: "|u1", shape: [n], payload: (0..<n).map { UInt8($0 % 4) }) }

    static func data(_ label: String, x: [UInt8]? = nil, y: [UInt8]? = nil, classes: String = "4") -> Case {
        Case(label: "npy: " + label, files: ["x.npy": x ?? goodX, "y.npy": y ?? goodY],
             sets: ["data={source: npy, x: x.npy, y: y.npy, classes: \(classes)}", "training.batch=4"])
    }

    /// A safetensors file of the given header text and data bytes.
    static func tensors(_ header: String, _ data: [UInt8]) -> [UInt8] {
        var h = Array(header.utf8)
        while (8 + h.count) % 8 != 0 { h.append(0x20) }
        return (0..<8).map { UInt8((h.count >> (8 * $0)) & 0xFF) } + h + data
    }

    static func weights(_ label: String, _ bytes: [UInt8]) -> Case {
        Case(label: "safetensors: " + label, files: ["w.safetensors": bytes], sets: ["model.init_from=w.safetensors"])
    }

    static let cases: [Case] = {
        let f4 = floatBytes([1, 2, 3, 4])
        var header = Array(goodX.prefix(10)), nan = (0..<(16 * n)).map { Float($0 % 7) }
        nan[40] = .nan
        header[8] = 0xFF  // a header length past the file
        var cases: [Case] = [
            data("truncated payload", x: Array(goodX.dropLast(9))),
            data("huge shape", x: npyBytes(descr: "<f4", shape: [1 << 40, 1 << 40], payload: f4)),
            data("fortran order", x: npyBytes(descr: "<f4", shape: [n, 16], payload: Array(goodX.dropFirst(128)), fortran: true)),
            data("float64 features", x: npyBytes(descr: "<f8", shape: [n, 16], payload: [UInt8](repeating: 0, count: 8 * 16 * n))),
            data("big-endian labels", y: npyBytes(descr: ">i8", shape: [n], payload: [UInt8](repeating: 0, count: 8 * n))),
            data("negative label", y: npyBytes(descr: "<i8", shape: [n], payload: int64Bytes([-1] + [Int](repeating: 0, count: n - 1)))),
            data("label count", y: npyBytes(descr: "|u1", shape: [n - 2], payload: [UInt8](repeating: 0, count: n - 2))),
            data("garbage header", x: Array("\u{93}NUMPY\u{1}\u{0}".utf8.prefix(8)) + [0x10, 0] + Array("not a python dict".utf8)),
            data("empty file", x: []),
            data("wrong magic", x: Array("PNG....".utf8) + goodX.dropFirst(7)),
            data("label of 2^40 with classes auto", y: npyBytes(descr: "<i8", shape: [n], payload: int64Bytes([1 << 40] + [Int](repeating: 0, count: n - 1))), classes: "auto"),
            data("no samples", x: npyBytes(descr: "<f4", shape: [0, 16], payload: []), y: npyBytes(descr: "|u1", shape: [0], payload: [])),
            data("NaN feature", x: npyBytes(descr: "<f4", shape: [n, 16], payload: floatBytes(nan))),
            data("one-dimensional features", x: npyBytes(descr: "<f4", shape: [n], payload: floatBytes([Float](repeating: 1, count: n)))),
            data("labels of two dimensions", y: npyBytes(descr: "|u1", shape: [n, 1], payload: [UInt8](repeating: 0, count: n))),
            data("header length past the file", x: header),
            data("label of 7 with 4 classes", y: npyBytes(descr: "|u1", shape: [n], payload: [7] + [UInt8](repeating: 0, count: n - 1))),
            data("unsupported dtype", x: npyBytes(descr: "<c8", shape: [n, 16], payload: [UInt8](repeating: 0, count: 8 * 16 * n))),
            data("version 9", x: Array(goodX.prefix(6)) + [9] + Array(goodX.dropFirst(7))),
            data("no features", x: npyBytes(descr: "<f4", shape: [n, 0], payload: [])),
        ]
        let weight = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
        cases += [
            weights("empty file", []),
            weights("shorter than its length", [1, 2, 3]),
            weights("header length past the file", [0xFF, 0xFF, 0, 0, 0, 0, 0, 0] + Array("{}".utf8)),
            weights("not JSON", tensors("not json at all", [])),
            weights("a JSON list", tensors("[1, 2, 3]", [])),
            weights("float16", tensors(#"{"0.weight":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, [0, 0, 0, 0])),
            weights("shape of 2^62 × 2^62", tensors(#"{"0.weight":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,16]}}"#, f4)),
            weights("negative dimension", tensors(#"{"0.weight":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#, f4)),
            weights("offsets reversed", tensors(#"{"0.weight":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}"#, f4)),
            weights("offsets past the data", tensors(#"{"0.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,1600]}}"#, f4)),
            weights("offsets at Int.max", tensors(#"{"0.weight":{"dtype":"F32","shape":[4],"data_offsets":[9223372036854775807,-9223372036854775808]}}"#, f4)),
            weights("missing fields", tensors(#"{"0.weight":{"dtype":"F32"}}"#, f4)),
            weights("another model's tensors", tensors(#"{"x":\#(weight)}"#, floatBytes([1, 2]))),
            weights("a tensor missing", tensors(#"{"0.weight":\#(weight)}"#, floatBytes([1, 2]))),
            weights("NaN weight", tensors(#"{"x":\#(weight)}"#, floatBytes([.nan, 1]))),
            weights("bytes after the tensors", tensors(#"{"x":\#(weight)}"#, floatBytes([1, 2, 3]))),
            weights("a hole between tensors", tensors(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, floatBytes([1, 2, 3]))),
            weights("metadata of numbers", tensors(#"{"__metadata__":{"step":5},"x":\#(weight)}"#, floatBytes([1, 2]))),
            weights("a missing file", []).with { $0.files = [:] },
            weights("a folder for a file", []).with { $0.files = ["w.safetensors/inner": [1]] },
        ]
        return cases
    }()

    @Test("each hostile file: one descent: line, a non-zero exit on every rank, no run folder", arguments: cases)
    func hostile(_ c: Case) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, bytes) in c.files {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        let config = try writeSyntheticConfig(in: dir, name: "hostile")
        let r = try runDescent(ranks: 2, ["train", "--config", config.path] + c.sets.flatMap { ["--set", $0] }, directory: dir)
        #expect(!r.timedOut && r.status != 0, "\(c): status \(r.status)")
        let ours = r.stderr.split(separator: "\n").filter { $0.hasPrefix("descent:") }
        #expect(ours.count == 1, "\(c): \(r.stderr)")
        #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Backtracing"), "\(c): \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/hostile").path), "\(c)")
    }

    @Test("the corpus is large enough to mean something")
    func size() { #expect(Self.cases.count >= 40) }
}

extension HostileFilesTests.Case {
    func with(_ change: (inout Self) -> Void) -> Self {
        var c = self
        change(&c)
        return c
    }
}
