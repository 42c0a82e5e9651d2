// What the fuzzer feeds: one entry per reader of a file descent takes from outside, each given arbitrary bytes.
// A reader may return a value or throw its error; a trap, a hang or an allocation far beyond the input is a finding.
import Config
import Datasets
import Foundation
import Numerics
import Experiments
import Training

public enum FuzzTarget: String, CaseIterable, Sendable {
    case idx, npy, safetensors, checkpoint, latest, config
    case studyCSV = "study-csv"
    case rangesCSV = "ranges-csv"

    /// Feeds `bytes` to the reader. Readers of paths read them from a file of this process's own.
    public func run(_ bytes: [UInt8]) {
        switch self {
        case .idx: _ = try? IDXFile.read(path: Self.file(bytes, "x.idx"), ranks: 1...4, cache: .off)
        case .npy: _ = try? NPYArray.read(path: Self.file(bytes, "x.npy"), allowed: [.uint8, .float32, .int32, .int64], cache: .off)
        case .safetensors: _ = try? SafeTensors.read(path: Self.file(bytes, "x.safetensors"))
        case .checkpoint: _ = try? CheckpointStore.decode(Self.framed(bytes), file: "fuzz.ckpt")
        case .latest:
            let folder = Self.folder + "/checkpoints"
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            _ = Self.file(bytes, "checkpoints/LATEST")
            _ = try? CheckpointStore.latest(in: folder)
        case .config:
            let text = String(decoding: bytes, as: UTF8.self)
            _ = try? RunConfig.load(yaml: text, fileName: "fuzz.yaml")
            _ = try? StudyConfig.load(yaml: text, fileName: "fuzz.yaml")
            _ = try? PathConfig.load(yaml: text, fileName: "fuzz.yaml")
            _ = try? CompareConfig.load(yaml: text, fileName: "fuzz.yaml")
        case .studyCSV: _ = TrialRecord.parse(String(decoding: bytes, as: UTF8.self))
        case .rangesCSV: _ = Study.parseRanges(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// A checkpoint frame around `bytes` (the first byte picks format 1 or 2, the rest is the payload) with a true
    /// fingerprint, so that the fuzzer reaches the payload's decoder rather than the checksum.
    static func framed(_ bytes: [UInt8]) -> [UInt8] {
        let payload = Array(bytes.dropFirst())
        var out = CheckpointStore.magic
        withUnsafeBytes(of: UInt32((bytes.first ?? 0) % 2 + 1).littleEndian) { out += $0 }
        out += [0, 0, 0, 0]
        withUnsafeBytes(of: UInt64(payload.count).littleEndian) { out += $0 }
        withUnsafeBytes(of: payload.withUnsafeBytes { fingerprint(bytes: $0) }.littleEndian) { out += $0 }
        return out + payload
    }

    /// A folder of this process's own for the inputs that readers take as files.
    static let folder: String = {
        let f = NSTemporaryDirectory() + "descent-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: f, withIntermediateDirectories: true)
        return f
    }()

    static func file(_ bytes: [UInt8], _ name: String) -> String {
        let path = folder + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    /// The committed inputs of this target: its seed corpus and every finding kept as a regression.
    public func committedInputs(root: URL) -> [URL] {
        ["corpus", "regressions"].flatMap { kind -> [URL] in
            let dir = root.appendingPathComponent("Tests/Fuzz/\(kind)/\(rawValue)")
            return ((try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? [])
                .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
        }
    }
}
