// Rank 0's record of a run: one row per logged step or epoch, written to CSV and JSONL and flushed at once.
import Config
import Foundation

/// One metrics row. Optional values are empty in CSV and null in JSONL.
public struct MetricsRow: Codable, Sendable {
    /// A step row (the mean batch loss since the last one), an epoch row (an evaluation at an epoch's end or the
    /// run's), or an evaluation row of a run with a target (`descent study`'s cadence).
    /// A curvature row holds a measurement of the Hessian (`curvature.every`).
    public enum Kind: String, Codable, Sendable { case step, epoch, evaluation = "eval", curvature }
    public var kind: Kind
    public var step: Int
    /// Data passes completed (samples seen ÷ training-set size).
    public var epoch: Double
    public var samples: Int
    public var wallSeconds: Double
    public var learningRate: Double
    /// Mean loss of the mini-batches since the previous row of the same kind.
    public var batchLoss: Double?
    public var trainLoss: Double?
    public var trainAccuracy: Double?
    public var testLoss: Double?
    public var testAccuracy: Double?
    /// The simple gradient noise scale B_simple over the steps since the previous row of the same kind (needs
    /// two or more ranks with samples).
    public var noiseScale: Double?
    /// Loss and accuracy on the training samples `data.validation` holds out.
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    /// Seconds the run has spent evaluating so far, this row's evaluation included (epoch and evaluation rows):
    /// `wall_s` less this is the time spent training.
    public var evaluationSeconds: Double?
    /// The Hessian's largest and smallest eigenvalues and its trace (curvature rows); `topEigenvalues` holds the
    /// largest `curvature.top_k`, largest first, and stays out of the CSV.
    public var sharpness: Double?
    public var lambdaMin: Double?
    public var hessianTrace: Double?
    public var topEigenvalues: [Double]?
    /// For Adam, AdamW and RMSProp: λ_max(P⁻¹H) with the rule's preconditioner, and its threshold (curvature rows).
    public var preconditionedSharpness: Double?
    public var preconditionedThreshold: Double?

    public static let columns = ["kind", "step", "epoch", "samples", "wall_s", "lr", "batch_loss",
                                 "train_loss", "train_accuracy", "test_loss", "test_accuracy", "noise_scale",
                                 "val_loss", "val_accuracy", "eval_s", "sharpness", "lambda_min", "hessian_trace",
                                 "preconditioned_sharpness", "preconditioned_threshold"]

    var values: [String?] {
        [kind.rawValue, String(step), format(epoch), String(samples), format(wallSeconds), format(learningRate),
         batchLoss.map(format), trainLoss.map(format), trainAccuracy.map(format), testLoss.map(format),
         testAccuracy.map(format), noiseScale.map(format), validationLoss.map(format), validationAccuracy.map(format),
         evaluationSeconds.map(format), sharpness.map(format), lambdaMin.map(format), hessianTrace.map(format),
         preconditionedSharpness.map(format), preconditionedThreshold.map(format)]
    }

    /// The value of a target's metric in this row (nan when the row has none).
    public func value(of metric: Target.Metric) -> Double {
        switch metric {
        case .trainLoss: return trainLoss ?? .nan
        case .testLoss: return testLoss ?? .nan
        case .testAccuracy: return testAccuracy ?? .nan
        case .validationLoss: return validationLoss ?? .nan
        case .validationAccuracy: return validationAccuracy ?? .nan
        }
    }

    private func format(_ x: Double) -> String { x.isFinite ? "\(x)" : (x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf")) }
}

/// Appends rows to `metrics.csv`, `metrics.jsonl` and a TensorBoard event file, flushing each row so that a crash
/// loses nothing written.
public final class MetricsWriter {
    private let csv: UnsafeMutablePointer<FILE>
    private let jsonl: UnsafeMutablePointer<FILE>
    private let events: TensorBoardWriter
    public let directory: String

    /// Creates (or empties) `metrics.csv` and `metrics.jsonl` in `directory`, and starts its event file.
    public init(directory: String) throws {
        self.directory = directory
        guard let c = fopen(directory + "/metrics.csv", "w") else { throw OutputError(path: directory + "/metrics.csv", errno: errno) }
        guard let j = fopen(directory + "/metrics.jsonl", "w") else {
            fclose(c)
            throw OutputError(path: directory + "/metrics.jsonl", errno: errno)
        }
        csv = c
        jsonl = j
        do {
            events = try TensorBoardWriter(directory: directory)
        } catch {
            fclose(c)
            fclose(j)
            throw error
        }
        try put(MetricsRow.columns.joined(separator: ",") + "\n", csv, "metrics.csv")
    }

    /// Starts the files again with `rows` (a resumed run's record up to its checkpoint), then appends.
    public convenience init(directory: String, rows: [MetricsRow]) throws {
        try self.init(directory: directory)
        for row in rows { try append(row) }
    }

    deinit {
        fclose(csv)
        fclose(jsonl)
    }

    public func append(_ row: MetricsRow) throws {
        let values = row.values
        try put(values.map { $0 ?? "" }.joined(separator: ",") + "\n", csv, "metrics.csv")
        let fields = zip(MetricsRow.columns, values).map { key, value -> String in
            guard let value else { return "\"\(key)\":null" }
            if key == "kind" { return "\"\(key)\":\"\(value)\"" }
            // JSON has no NaN or infinity: write them as strings so every line stays valid JSON.
            return Double(value)?.isFinite ?? false ? "\"\(key)\":\(value)" : "\"\(key)\":\"\(value)\""
        }
        try put("{" + fields.joined(separator: ",") + "}\n", jsonl, "metrics.jsonl")
        try events.append(row)
    }

    private func put(_ text: String, _ file: UnsafeMutablePointer<FILE>, _ name: String) throws {
        guard fputs(text, file) >= 0, fflush(file) == 0 else { throw OutputError(path: directory + "/" + name, errno: errno) }
    }
}

/// A file or folder that could not be written.
public struct OutputError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        (self.path, self.reason) = (path, reason)
    }

    public init(path: String, errno code: Int32) {
        self.init(path: path, reason: String(cString: strerror(code)))
    }

    public var description: String { "cannot write \(path): \(reason)" }
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader sees the old file or the whole
/// new one, never a part. The temporary file is named after the process, so that two processes writing the same
/// file (the parts of a study starting together) never rename each other's.
public func writeAtomically(_ text: String, to path: String) throws {
    try writeAtomically(Data(text.utf8), to: path)
}

public func writeAtomically(_ data: Data, to path: String) throws {
    let temporary = path + ".tmp\(getpid())"
    do {
        try data.write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else { throw OutputError(path: path, errno: errno) }
    } catch let error as OutputError {
        throw error
    } catch {
        throw OutputError(path: path, reason: "\(error.localizedDescription)")
    }
}
