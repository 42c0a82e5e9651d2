// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the little-endian data. torch, numpy and others load it.
import Datasets
import Foundation
import Models
import Numerics

public enum SafeTensors {
    /// The file's bytes: float32 tensors in the given order, the header padded with spaces so that the data
    /// start at a multiple of 8 bytes.
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String]) -> Data {
        var entries: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            entries.append("\"__metadata__\":{\(fields.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            let end = offset + 4 * t.values.count
            entries.append("\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                           + "\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while (8 + header.count) % 8 != 0 { header.append(0x20) }
        var data = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for t in tensors {
            t.values.withUnsafeBufferPointer { v in
                for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            }
        }
        return data
    }

    /// Reads and checks a safetensors file of float32 tensors: the header's entries (with `names`, exactly those
    /// tensors, checked first), every size without overflow, the data covered exactly, and every value finite.
    public static func read(path: String, names: [String]? = nil) throws -> (tensors: [String: NamedTensor], metadata: [String: String]) {
        func fail(_ field: String, _ expected: String, _ found: String) -> DataFileError {
            DataFileError(file: path, field: field, expected: expected, found: found)
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("file", "a readable safetensors file", "none") }
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw fail("header length", "8 bytes", "\(bytes.count) (file too short)") }
        let n = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[$1]) << (8 * UInt64($1)) }
        guard n <= UInt64(bytes.count - 8) else { throw fail("header length", "at most \(bytes.count - 8) bytes", "\(n)") }
        let headerEnd = 8 + Int(n)
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])) as? [String: Any] else {
            throw fail("header", "a JSON object", "other text")
        }
        let buffer = headerEnd..<bytes.count
        if let names, let (missing, extra) = differences(Set(header.keys).subtracting(["__metadata__"]), from: names) {
            throw fail("tensors", "the model's " + names.joined(separator: ", "),
                       (missing.isEmpty ? "" : "no " + missing.joined(separator: ", ")) + (missing.isEmpty || extra.isEmpty ? "" : "; ")
                           + (extra.isEmpty ? "" : "also " + extra.joined(separator: ", ")))
        }
        var tensors: [String: NamedTensor] = [:], ranges: [(Range<Int>, String)] = []
        for (name, value) in header.sorted(by: { $0.key < $1.key }) where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor \(name)", "dtype, shape and data_offsets", "\(value)")
            }
            guard dtype == "F32" else { throw fail("tensor \(name): dtype", "F32", dtype) }
            guard let count = boundedProduct(shape, limit: buffer.count / 4) else {
                throw fail("tensor \(name): shape", "dimensions ≥ 0 whose float32 elements fit the \(buffer.count)-byte buffer", "\(shape)")
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= buffer.count, offsets[1] - offsets[0] == 4 * count else {
                throw fail("tensor \(name): data_offsets", "\(4 * count) bytes for shape \(shape) inside the \(buffer.count)-byte buffer",
                           "\(offsets)")
            }
            let values = (0..<count).map { k -> Float in
                let at = headerEnd + offsets[0] + 4 * k
                return Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) })
            }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw fail("tensor \(name)[\(bad)]", "finite values", "\(values[bad])")
            }
            tensors[name] = NamedTensor(name: name, shape: shape, values: values)
            ranges.append((offsets[0]..<offsets[1], name))
        }
        ranges.sort { $0.0.lowerBound < $1.0.lowerBound }
        var next = 0
        for (range, name) in ranges {
            guard range.lowerBound == next else {
                throw fail("tensor \(name): data_offsets", "to start at byte \(next) (the buffer covered with no holes or overlaps)",
                           "\(range.lowerBound)")
            }
            next = range.upperBound
        }
        guard next == buffer.count else { throw fail("data", "\(next) bytes (what the tensors cover)", "\(buffer.count)") }
        return (tensors, header["__metadata__"] as? [String: String] ?? [:])
    }

    /// The wanted names missing from `found` (in their order) and the found ones not wanted (sorted); nil when the
    /// two sets are equal.
    static func differences(_ found: Set<String>, from wanted: [String]) -> (missing: [String], extra: [String])? {
        guard found != Set(wanted) else { return nil }
        return (wanted.filter { !found.contains($0) }, found.subtracting(wanted).sorted())
    }

    /// A JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
