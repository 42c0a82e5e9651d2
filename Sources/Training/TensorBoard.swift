// TensorBoard's event files, written by hand: TFRecord framing with masked CRC-32C, around `tensorflow.Event`
// messages encoded in the protobuf wire format. `tensorboard --logdir runs` then shows every run's scalars.
import Foundation
import Numerics
import Optimizers

public enum TensorBoard {
    /// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
    public static func crc32c(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// TFRecord's masking of a CRC: rotated right by 15 bits, plus a constant.
    public static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    /// One TFRecord: length, its masked CRC, the data, the data's masked CRC (all little-endian).
    public static func record(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        out += length
        out += withUnsafeBytes(of: masked(crc32c(length)).littleEndian, Array.init)
        out += data
        out += withUnsafeBytes(of: masked(crc32c(data)).littleEndian, Array.init)
        return out
    }

    /// The protobuf wire format, as much of it as an Event needs.
    struct Message {
        var bytes: [UInt8] = []

        mutating func varint(_ value: UInt64) {
            var v = value
            while v >= 0x80 {
                bytes.append(UInt8(v & 0x7F) | 0x80)
                v >>= 7
            }
            bytes.append(UInt8(v))
        }
        mutating func key(_ field: Int, _ wireType: Int) { varint(UInt64(field << 3 | wireType)) }
        mutating func double(_ field: Int, _ value: Double) {
            key(field, 1)
            bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
        }
        mutating func float(_ field: Int, _ value: Float) {
            key(field, 5)
            bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
        }
        mutating func int64(_ field: Int, _ value: Int64) {
            key(field, 0)
            varint(UInt64(bitPattern: value))
        }
        mutating func bytes(_ field: Int, _ value: [UInt8]) {
            key(field, 2)
            varint(UInt64(value.count))
            bytes += value
        }
    }

    /// `Event{wall_time: 1, step: 2, file_version: 3}`: the first record of every file.
    static func versionEvent(wallTime: Double) -> [UInt8] {
        var e = Message()
        e.double(1, wallTime)
        e.bytes(3, Array("brain.Event:2".utf8))
        return e.bytes
    }

    /// `Event{wall_time, step, summary: Summary{value: [Value{tag: 1, simple_value: 2}]}}`.
    static func scalarsEvent(wallTime: Double, step: Int, _ scalars: [(tag: String, value: Double)]) -> [UInt8] {
        var summary = Message()
        for (tag, value) in scalars {
            var v = Message()
            v.bytes(1, Array(tag.utf8))
            v.float(2, Float(value))
            summary.bytes(1, v.bytes)
        }
        var e = Message()
        e.double(1, wallTime)
        e.int64(2, Int64(step))
        e.bytes(5, summary.bytes)
        return e.bytes
    }

    /// The scalars of one metrics row, named by what they measure; `rate` is the samples/s since the previous row
    /// of the same kind. A step row's loss and noise scale are means over its window of steps, an epoch row's over
    /// the epoch: each has its own tag (`batch_loss/window`, `batch_loss/epoch`), so no curve mixes the two.
    static func scalars(_ row: MetricsRow, rate: Double?) -> [(tag: String, value: Double)] {
        var s: [(String, Double)] = [("learning_rate", row.learningRate)]
        let span = row.kind == .step ? "window" : "epoch"
        let values: [(String, Double?)] = [
            ("batch_loss/" + span, row.batchLoss), ("train/loss", row.trainLoss), ("train/accuracy", row.trainAccuracy),
            ("test/loss", row.testLoss), ("test/accuracy", row.testAccuracy), ("val/loss", row.validationLoss),
            ("val/accuracy", row.validationAccuracy), ("noise_scale/" + span, row.noiseScale),
            ("samples_per_second", row.kind == .step ? rate : nil),
            ("curvature/sharpness", row.sharpness), ("curvature/two_over_lr", row.kind == .curvature ? 2 / row.learningRate : nil),
            ("curvature/lambda_min", row.lambdaMin), ("curvature/hessian_trace", row.hessianTrace),
            ("curvature/preconditioned_sharpness", row.preconditionedSharpness),
            ("curvature/preconditioned_threshold", row.preconditionedThreshold),
        ]
        for case let (tag, v?) in values where v.isFinite { s.append((tag, v)) }
        return s
    }
}

/// TensorBoard's HParams dashboard: the experiment (its hyperparameters and metrics) in the launch's folder, and
/// per run folder (a session) its hyperparameters, final metrics and status, in event files of their own beside the
/// scalars (`…tfevents….hparams`), in the plugin's protobuf messages (tensorboard/plugins/hparams).
public enum HParams {
    public enum Value: Equatable, Sendable {
        case number(Double)
        case text(String)
    }

    /// One run of the launch: its folder (relative to the launch's), hyperparameters, final metrics and whether it
    /// ended as planned (a diverged or stopped run is a failure).
    public struct Session: Sendable {
        public var folder: String
        public var group: String
        public var hparams: [(name: String, value: Value)]
        public var metrics: [(tag: String, value: Double)]
        public var succeeded: Bool
        public init(folder: String, group: String, hparams: [(name: String, value: Value)], metrics: [(tag: String, value: Double)],
                    succeeded: Bool) {
            (self.folder, self.group, self.hparams, self.metrics, self.succeeded) = (folder, group, hparams, metrics, succeeded)
        }
    }

    /// The optimizer's momentum, betas and weight decay, where it reads them.
    public static func optimizerValues(_ o: OptimizerSettings) -> [(name: String, value: Value)] {
        let keys = o.kind.keys
        var values: [(String, Value)] = []
        if keys.contains("momentum") { values.append(("momentum", .number(o.momentum))) }
        if keys.contains("betas") { values += [("beta1", .number(o.beta1)), ("beta2", .number(o.beta2))] }
        if keys.contains("weight_decay") { values.append(("weight_decay", .number(o.weightDecay))) }
        return values
    }

    static let prefix = "_hparams_/"
    /// The final metrics go under this prefix in each session's own file, so no scalar curve of the run mixes with them.
    public static let metricPrefix = "final/"

    /// Writes the experiment into `directory` and each session into its folder below it; the resolved config goes in
    /// as the experiment's description. Earlier hparams files of these folders are replaced.
    public static func write(into directory: String, name: String, config: String, sessions: [Session]) throws {
        let now = Date().timeIntervalSince1970
        let experiment = experiment(name: name, config: config, sessions: sessions, now: now)
        try writeFile(directory, now, [event(now, 0, [(prefix + "experiment", plugin(2, experiment))])])
        // A session whose folder is not on this host (a part of a study trained elsewhere) is left out.
        for s in sessions where FileManager.default.fileExists(atPath: directory + "/" + s.folder) {
            try writeFile(directory + "/" + s.folder, now, events(of: s, now: now))
        }
    }

    /// `Experiment{name: 6, description: 1, time_created_secs: 3, hparam_infos: 4, metric_infos: 5}`: every
    /// hyperparameter the sessions have (float64 where it is a number, string otherwise) and every metric.
    static func experiment(name: String, config: String, sessions: [Session], now: Double) -> TensorBoard.Message {
        var names: [String] = [], numeric: Set<String> = [], tags: [String] = []
        for s in sessions {
            for h in s.hparams {
                if !names.contains(h.name) { names.append(h.name) }
                if case .number = h.value { numeric.insert(h.name) }
            }
            for m in s.metrics where !tags.contains(m.tag) { tags.append(m.tag) }
        }
        var experiment = TensorBoard.Message()
        experiment.bytes(6, Array(name.utf8))
        experiment.bytes(1, Array(("descent launch " + name + "; its resolved config:\n\n```yaml\n" + config + "```").utf8))
        experiment.double(3, now)
        for h in names {
            var info = TensorBoard.Message()
            info.bytes(1, Array(h.utf8))
            info.int64(4, numeric.contains(h) ? 3 : 1)  // DATA_TYPE_FLOAT64 or DATA_TYPE_STRING
            experiment.bytes(4, info.bytes)
        }
        for t in tags {
            var metricName = TensorBoard.Message(), info = TensorBoard.Message()
            metricName.bytes(2, Array((metricPrefix + t).utf8))
            info.bytes(1, metricName.bytes)
            experiment.bytes(5, info.bytes)
        }
        return experiment
    }

    /// A session's events: its start info (hyperparameters as a map of `google.protobuf.Value`, its group), its
    /// final metrics as scalars, and its end info (status).
    static func events(of s: Session, now: Double) -> [[UInt8]] {
        var start = TensorBoard.Message()
        for h in s.hparams {
            var value = TensorBoard.Message(), entry = TensorBoard.Message()
            switch h.value {
            case .number(let x): value.double(2, x)
            case .text(let t): value.bytes(3, Array(t.utf8))
            }
            entry.bytes(1, Array(h.name.utf8))
            entry.bytes(2, value.bytes)
            start.bytes(1, entry.bytes)
        }
        start.bytes(4, Array(s.group.utf8))
        start.double(5, now)
        var end = TensorBoard.Message()
        end.int64(1, s.succeeded ? 1 : 2)  // STATUS_SUCCESS or STATUS_FAILURE
        end.double(2, now)
        let finals = TensorBoard.scalarsEvent(wallTime: now, step: 0, s.metrics.filter { $0.value.isFinite }.map { (metricPrefix + $0.tag, $0.value) })
        return [event(now, 0, [(prefix + "session_start_info", plugin(3, start))]), finals,
                event(now, 0, [(prefix + "session_end_info", plugin(4, end))])]
    }

    /// `HParamsPluginData{version: 0, <field>: message}` as a summary value's metadata
    /// (`SummaryMetadata{plugin_data: PluginData{plugin_name: "hparams", content}}`).
    static func plugin(_ field: Int, _ message: TensorBoard.Message) -> [UInt8] {
        var data = TensorBoard.Message(), pluginData = TensorBoard.Message(), metadata = TensorBoard.Message()
        data.int64(1, 0)
        data.bytes(field, message.bytes)
        pluginData.bytes(1, Array("hparams".utf8))
        pluginData.bytes(2, data.bytes)
        metadata.bytes(1, pluginData.bytes)
        return metadata.bytes
    }

    /// `Event{wall_time, step, summary: Summary{value: [Value{tag: 1, metadata: 9, tensor: 8}]}}`, each value's tensor
    /// the plugin's null tensor (a float scalar 0).
    static func event(_ wallTime: Double, _ step: Int, _ values: [(tag: String, metadata: [UInt8])]) -> [UInt8] {
        var tensor = TensorBoard.Message()
        tensor.int64(1, 1)  // DT_FLOAT
        tensor.bytes(2, [])  // a scalar's empty shape
        tensor.bytes(5, withUnsafeBytes(of: Float(0).bitPattern.littleEndian, Array.init))  // float_val, packed
        var summary = TensorBoard.Message()
        for v in values {
            var value = TensorBoard.Message()
            value.bytes(1, Array(v.tag.utf8))
            value.bytes(8, tensor.bytes)
            value.bytes(9, v.metadata)
            summary.bytes(1, value.bytes)
        }
        var e = TensorBoard.Message()
        e.double(1, wallTime)
        e.int64(2, Int64(step))
        e.bytes(5, summary.bytes)
        return e.bytes
    }

    /// One event file of the hparams records in `folder`, replacing an earlier one.
    static func writeFile(_ folder: String, _ now: Double, _ events: [[UInt8]]) throws {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix("events.out.tfevents.") && name.hasSuffix(".hparams") {
            try? fm.removeItem(atPath: folder + "/" + name)
        }
        let bytes = ([TensorBoard.versionEvent(wallTime: now)] + events).flatMap(TensorBoard.record)
        try writeAtomically(Data(bytes), to: folder + "/events.out.tfevents.\(Int(now)).\(hostName()).hparams")
    }
}

/// Appends one event per metrics row to `events.out.tfevents.<unix seconds>.<host>` in a run folder, flushing each.
final class TensorBoardWriter {
    private let file: UnsafeMutablePointer<FILE>
    let path: String
    private let origin: Double
    private var previous: [MetricsRow.Kind: (samples: Int, wall: Double)] = [:]

    /// Removes the folder's earlier event files (a resumed run writes its whole record again) and starts one.
    init(directory: String) throws {
        let now = Date().timeIntervalSince1970
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix("events.out.tfevents.") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        path = directory + "/events.out.tfevents.\(Int(now)).\(hostName())"
        guard let f = fopen(path, "w") else { throw OutputError(path: path, errno: errno) }
        file = f
        origin = now
        try put(TensorBoard.versionEvent(wallTime: now))
    }

    deinit { fclose(file) }

    func append(_ row: MetricsRow) throws {
        var rate: Double?
        if let p = previous[row.kind], row.wallSeconds > p.wall { rate = Double(row.samples - p.samples) / (row.wallSeconds - p.wall) }
        previous[row.kind] = (row.samples, row.wallSeconds)
        try put(TensorBoard.scalarsEvent(wallTime: origin + row.wallSeconds, step: row.step,
                                         TensorBoard.scalars(row, rate: rate)))
    }

    private func put(_ event: [UInt8]) throws {
        let r = TensorBoard.record(event)
        guard fwrite(r, 1, r.count, file) == r.count, fflush(file) == 0 else { throw OutputError(path: path, errno: errno) }
    }
}
