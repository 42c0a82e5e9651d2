// TensorBoard's event files, written by hand: TFRecord framing with masked CRC-32C, around `tensorflow.Event`
// messages encoded in the protobuf wire format. `tensorboard --logdir runs` then shows every run's scalars.
import Foundation
import Numerics

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
        ]
        for case let (tag, v?) in values where v.isFinite { s.append((tag, v)) }
        return s
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
