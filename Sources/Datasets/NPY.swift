// Reader for NumPy's .npy format, versions 1.0–3.0 (raw or gzipped): the header's dtype, order and shape are
// checked, and the payload must be exactly as long as they say. Every problem names the file and the field.
import Foundation
import Numerics
#if canImport(Glibc)
import Glibc
#endif

/// A .npy array: its element type, shape and payload (little-endian, C order).
public struct NPYArray: Sendable {
    public enum Element: String, Sendable {
        case uint8 = "|u1", float32 = "<f4", int32 = "<i4", int64 = "<i8"
        var size: Int { switch self { case .uint8: 1; case .float32, .int32: 4; case .int64: 8 } }
    }

    public var path: String
    public var element: Element
    public var shape: [Int]
    /// The whole file; the payload starts at `payloadOffset`.
    public let data: DataBytes
    public let payloadOffset: Int
    /// `body` given the payload, little-endian and C order.
    public func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(data) { try body(UnsafeRawBufferPointer(rebasing: data.buffer[payloadOffset...])) }
    }

    public var count: Int { shape.first ?? 1 }
    /// Elements per item (the product of the other dimensions).
    public var itemSize: Int { shape.dropFirst().reduce(1, *) }

    /// Reads and checks `path`; `allowed` are the element types the caller can use, and `cache` is where a
    /// gzipped file's decompressed copy is kept.
    public static func read(path: String, allowed: [Element], cache: DecompressCache = .besideData) throws -> NPYArray {
        let file = try DataBytes.load(path, kind: "a .npy file (raw or gzipped)", cache: cache)
        let data = file.buffer
        func fail(_ field: String, _ expected: String, _ found: String) -> DataFileError {
            DataFileError(file: path, field: field, expected: expected, found: found)
        }
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard data.count >= 10, Array(data[0..<6]) == magic else {
            throw fail("magic", "\\x93NUMPY (a .npy file)", data.count < 10 ? "\(data.count) bytes (file too short)" : "other bytes")
        }
        let major = data[6]
        guard (1...3).contains(major) else { throw fail("format version", "1.0, 2.0 or 3.0", "\(major).\(data[7])") }
        let lengthBytes = major == 1 ? 2 : 4
        guard data.count >= 8 + lengthBytes else { throw fail("header length", "\(lengthBytes) bytes", "the end of the file") }
        let headerLength = (0..<lengthBytes).reduce(0) { $0 | Int(data[8 + $1]) << (8 * $1) }
        let start = 8 + lengthBytes
        guard data.count >= start + headerLength else {
            throw fail("header", "\(headerLength) bytes", "\(data.count - start) (file truncated)")
        }
        guard let header = String(bytes: data[start..<(start + headerLength)], encoding: major == 3 ? .utf8 : .ascii) else {
            throw fail("header", major == 3 ? "UTF-8 text" : "ASCII text", "other bytes")
        }
        let fields = try dictionary(header, fail)
        guard let descr = fields["descr"].flatMap(quoted) else { throw fail("header: descr", "a dtype such as '<f4'", fields["descr"] ?? "nothing") }
        guard let element = Element(rawValue: descr == "<u1" ? "|u1" : descr), allowed.contains(element) else {
            throw fail("header: descr", allowed.map { "'\($0.rawValue)'" }.joined(separator: " or "), "'\(descr)'")
        }
        guard fields["fortran_order"] == "False" else {
            throw fail("header: fortran_order", "False (C order)", fields["fortran_order"] ?? "nothing")
        }
        guard let shapeText = fields["shape"], let shape = tuple(shapeText) else {
            throw fail("header: shape", "a tuple of sizes such as (60000, 28, 28)", fields["shape"] ?? "nothing")
        }
        guard let payload = boundedProduct([element.size] + shape, limit: data.count) else {
            throw fail("header: shape", "sizes whose \(descr) payload fits the \(data.count)-byte file", shapeText)
        }
        let found = data.count - start - headerLength
        guard found == payload else {
            throw fail("payload length", "\(payload) bytes for shape \(shapeText) of \(descr)",
                       "\(found) bytes" + (found < payload ? " (file truncated)" : " (\(found - payload) trailing bytes)"))
        }
        return NPYArray(path: path, element: element, shape: shape, data: file, payloadOffset: start + headerLength)
    }

    /// The header's `{'key': value, …}`, values as text.
    private static func dictionary(_ text: String, _ fail: (String, String, String) -> DataFileError) throws -> [String: String] {
        var body = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard body.hasPrefix("{"), body.hasSuffix("}") else { throw fail("header", "a Python dict {…}", "'\(body.prefix(40))'") }
        body = String(body.dropFirst().dropLast())
        var fields: [String: String] = [:], depth = 0, current = ""
        for c in body + "," {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == ",", depth == 0 {
                let part = current.trimmingCharacters(in: .whitespaces)
                current = ""
                guard !part.isEmpty else { continue }
                guard let colon = part.firstIndex(of: ":"), let key = quoted(String(part[..<colon]).trimmingCharacters(in: .whitespaces)) else {
                    throw fail("header", "'key': value pairs", "'\(part)'")
                }
                fields[key] = String(part[part.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            } else {
                current.append(c)
            }
        }
        return fields
    }

    private static func quoted(_ s: String) -> String? {
        guard s.count >= 2, let q = s.first, q == "'" || q == "\"", s.last == q else { return nil }
        return String(s.dropFirst().dropLast())
    }

    private static func tuple(_ s: String) -> [Int]? {
        guard s.hasPrefix("("), s.hasSuffix(")") else { return nil }
        let parts = s.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let sizes = parts.map { Int($0) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
        return sizes.map { $0! }
    }

    /// Integer labels, whatever their element type.
    public var integers: [Int] {
        withPayload { raw in
            switch element {
            case .uint8: return raw.map { Int($0) }
            case .int32: return (0..<(raw.count / 4)).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            case .int64: return (0..<(raw.count / 8)).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
            case .float32: return (0..<(raw.count / 4)).map { Int(Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
        }
    }
}
