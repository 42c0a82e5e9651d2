// Helpers shared by the test targets: configs, run outputs, data files and pictures.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// Bytes of an IDX file: magic, big-endian dimensions, payload.
public func idxBytes(type: UInt8 = 0x08, dimensions: [Int], payload: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = [0, 0, type, UInt8(dimensions.count)]
    for d in dimensions { bytes += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
    return bytes + payload
}

public func write(_ bytes: [UInt8], to url: URL) throws { try Data(bytes).write(to: url) }

public func gzip(_ url: URL) throws -> URL {
    let r = try runProgram("/bin/gzip", ["-kf", url.path])
    guard r.status == 0 else { throw SetupError(description: "gzip \(url.path): \(r.stderr)") }
    return URL(fileURLWithPath: url.path + ".gz")
}

public let mpiAvailable = mpirunPath != nil && descentExecutable != nil

/// A small synthetic run config written to a temporary folder.
public func writeSyntheticConfig(in dir: URL, name: String, optimizer: String = "{name: momentum, lr: 0.05}", epochs: Int = 2,
                          extra: String = "") throws -> URL {
    // The rules that form the whole Hessian (one product per parameter each step, and its eigendecomposition) get
    // a 67-parameter model instead of 1,108.
    let dense = optimizer.contains("name: newton,") || optimizer.contains("name: newton}") || optimizer.contains("name: saddle-free-newton")
    let url = dir.appendingPathComponent("\(name).yaml")
    try """
    name: \(name)
    seed: 3
    data: {source: synthetic, train_samples: 600, test_samples: 200, features: 16, classes: 4, noise: 1.5}
    model: {hidden: \(dense ? "[3]" : "[24, 24]")}
    optimizer: \(optimizer)
    training: {batch: 64, epochs: \(epochs), log_every: 5, hash_check_every: 3}
    output: {dir: \(dir.appendingPathComponent("runs").path)}
    \(extra)
    """.write(to: url, atomically: true, encoding: .utf8)
    return url
}

/// 600 samples at batch 64: 10 steps per epoch, 30 steps in all, a checkpoint every 4 steps.
public func writeFaultConfig(in dir: URL, name: String = "f", optimizer: String = "{name: momentum, lr: 0.05}", extra: String = "") throws -> URL {
    try writeSyntheticConfig(in: dir, name: name, optimizer: optimizer, epochs: 3,
                             extra: "checkpoint: {every: 4, keep: 2}\n" + extra)
}

/// The hash a finished run printed.
public func finalHash(_ r: ProcessOutput) -> String? { finalHash(log: r.stdout) }

/// descent's own lines on standard error (not Open MPI's).
public func ownLines(_ r: ProcessOutput) -> [String] {
    r.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("descent:") }
}

/// metrics.csv without the wall-clock columns (`wall_s`, `eval_s`), which differ between any two runs.
public func metricsWithoutWallTime(_ run: URL) throws -> [[String: String]] {
    try readCSV(run.appendingPathComponent("metrics.csv")).map { var row = $0; (row["wall_s"], row["eval_s"]) = (nil, nil); return row }
}

/// The unix time the fault-injection line reports.
public func faultTime(_ r: ProcessOutput) -> Double? {
    guard let range = r.stderr.range(of: "(unix time ") else { return nil }
    return Double(r.stderr[range.upperBound...].prefix { $0 != ")" })
}

/// Processes whose command line mentions `text` (a test's unique folder).
public func processesMentioning(_ text: String) throws -> [String] {
    let r = try runProgram("/usr/bin/pgrep", ["-f", text])
    return r.stdout.split(separator: "\n").map(String.init)
}

public let isRoot = getuid() == 0

/// Whether `tool` is an executable on PATH (or in the sbin folders, where Debian puts the daemons).
public func onPath(_ tool: String) -> Bool {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin") + ":/usr/sbin:/sbin"
    return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
}


/// Runs one of the launch/ scripts.
public func runScript(_ name: String, _ arguments: [String], environment: [String: String] = [:], directory: URL? = nil,
               quietLimit: Double = 300) throws -> ProcessOutput {
    try runProgram("/bin/bash", [packageRoot.appendingPathComponent("launch/\(name)").path] + arguments,
                   environment: environment, directory: directory, quietLimit: quietLimit)
}

/// The final parameter hash a log reports (the last one: a requeued job's log holds every start).
public func finalHash(log: String) -> String? {
    guard let range = log.range(of: "final parameter hash ", options: .backwards) else { return nil }
    return String(log[range.upperBound...].prefix(16))
}

/// Parses `text` as XML; returns the parser's error, or nil when it is well-formed.
public func xmlError(_ text: String) -> String? {
    let parser = XMLParser(data: Data(text.utf8))
    return parser.parse() ? nil : "\(parser.parserError.map { "\($0)" } ?? "unknown error") at line \(parser.lineNumber)"
}

public let rsvgConvert: String? = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

/// Pixels whose colour lies within `tolerance` (per channel) of the hex colour `hex`.
public func pixelCount(_ image: PNGImage, near hex: String, tolerance: Int = 48) -> Int {
    let v = Int(hex.dropFirst(), radix: 16)!
    let target = [(v >> 16) & 255, (v >> 8) & 255, v & 255]
    var n = 0
    for y in 0..<image.height {
        for x in 0..<image.width {
            let p = image.rgba(x, y)
            if abs(Int(p.0) - target[0]) <= tolerance && abs(Int(p.1) - target[1]) <= tolerance
                && abs(Int(p.2) - target[2]) <= tolerance { n += 1 }
        }
    }
    return n
}

/// A small synthetic study: four rates of SGD, from slow to diverging, at each of `batches`, written into `output`.
public func tinyStudyYAML(output: String, batches: String) -> String {
    """
    name: tiny
    seed: 3
    data: {source: synthetic, train_samples: 512, test_samples: 256, features: 16, classes: 3, noise: 2.5}
    model: {hidden: [16]}
    output: {dir: \(output)}
    study:
      batches: \(batches)
      trials: 4
      target: test_accuracy
      target_value: 0.7
      max_steps: 300
      max_epochs: 60
      optimizers:
        - {name: sgd, lr_range: [0.01, 30]}

    """
}

/// The tiny study as a file whose first group (full batch, at most 60 steps) ends before its second reaches step 100.
public func writeStudyConfig(in dir: URL) throws -> URL {
    let url = dir.appendingPathComponent("study.yaml")
    try tinyStudyYAML(output: "runs", batches: "[full, 16]").write(to: url, atomically: true, encoding: .utf8)
    return url
}

/// The largest relative difference |fd − g| / max(1, |fd|) between `gradient` and central finite differences
/// (step `h`) of `loss` around `theta`, and where it is.
public func worstFiniteDifference(_ theta: [Double], _ gradient: [Float], h: Double = 1e-6,
                                  loss: ([Double]) -> Double) -> (error: Double, index: Int) {
    var worst = (error: 0.0, index: -1)
    for i in theta.indices {
        var plus = theta, minus = theta
        plus[i] += h
        minus[i] -= h
        let fd = (loss(plus) - loss(minus)) / (2 * h)
        let error = abs(fd - Double(gradient[i])) / max(1, abs(fd))
        if error > worst.error { worst = (error, i) }
    }
    return worst
}

/// The bytes of a .npy file: `descr`, `shape` and the payload, in format `version` (header padded to 64 bytes).
public func npyBytes(descr: String, shape: [Int], payload: [UInt8], version: UInt8 = 1, fortran: Bool = false) -> [UInt8] {
    let shapeText = "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
    var header = Array("{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }".utf8)
    let lengthBytes = version == 1 ? 2 : 4
    while (10 + lengthBytes - 2 + header.count + 1) % 64 != 0 { header.append(0x20) }
    header.append(0x0A)
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    out += (0..<lengthBytes).map { UInt8((header.count >> (8 * $0)) & 0xFF) }
    return out + header + payload
}

public func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { v in (0..<4).map { UInt8((v.bitPattern >> (8 * $0)) & 0xFF) } } }
public func int64Bytes(_ values: [Int]) -> [UInt8] { values.flatMap { v in (0..<8).map { UInt8((UInt64(bitPattern: Int64(v)) >> (8 * $0)) & 0xFF) } } }
