// Reader for the IDX format (LeCun's MNIST files, also used by Fashion-MNIST), gzipped or raw, that checks
// every header field and the payload length before it hands out a byte.
import Numerics

/// An IDX file of unsigned bytes: its dimensions and its payload, where the file's bytes lie (mapped, or in the
/// decompress cache).
public struct IDXFile: Sendable {
    public var path: String
    /// Dimension sizes, outermost first (e.g. [60000, 28, 28]).
    public var dimensions: [Int]
    /// The whole file; the payload starts at `payloadOffset`.
    public let data: DataBytes
    public let payloadOffset: Int

    /// Items (the first dimension).
    public var count: Int { dimensions.first ?? 0 }
    /// Bytes per item (the product of the other dimensions).
    public var itemSize: Int { dimensions.dropFirst().reduce(1, *) }
    /// `body` given the payload: row-major, `dimensions.reduce(1, *)` bytes.
    public func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(data) { try body(UnsafeRawBufferPointer(rebasing: data.buffer[payloadOffset...])) }
    }

    /// A copy of the payload.
    public var bytes: [UInt8] { withPayload { Array($0) } }

    /// Reads and validates `path`. gzip is detected from the content, so `.gz` and raw files both work.
    ///
    /// - Parameters:
    ///   - ranks: the numbers of dimensions accepted (2…4 for images, 1 for labels).
    ///   - cache: where a gzipped file's decompressed copy is kept.
    public static func read(path: String, ranks: ClosedRange<Int>, cache: DecompressCache = .besideData) throws -> IDXFile {
        let data = try DataBytes.load(path, kind: "an IDX file (raw or gzipped)", cache: cache)
        let header = Header(path: path, bytes: data.buffer)
        let rank = try header.checkMagic(ranks: ranks)
        let dimensions = try header.readDimensions(rank: rank)
        try header.checkPayload(dimensions, from: 4 + 4 * rank)
        return IDXFile(path: path, dimensions: dimensions, data: data, payloadOffset: 4 + 4 * rank)
    }
}

/// An IDX file's bytes, checked front to back; every problem names the file and the field.
private struct Header {
    let path: String
    let bytes: UnsafeRawBufferPointer

    func fail(_ field: String, _ expected: String, _ found: String) -> DataFileError {
        DataFileError(file: path, field: field, expected: expected, found: found)
    }

    /// The magic number: 00 00, unsigned bytes (08), then the number of dimensions, which it returns.
    func checkMagic(ranks: ClosedRange<Int>) throws -> Int {
        let expectedRank = ranks.count == 1 ? ranks.lowerBound : 3  // (images: N × 28 × 28 mostly)
        guard bytes.count >= 4 else { throw fail("header", "4 magic bytes", "\(bytes.count) bytes (file too short)") }
        let magic = Array(bytes[0..<4])
        let magicText = magic.map { hexByte($0) }.joined()
        guard magic[0] == 0, magic[1] == 0 else {
            let printable = magic.allSatisfy { (0x20...0x7e).contains($0) || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }
            let text = magic.map { $0 == 0x0a ? "\\n" : $0 == 0x0d ? "\\r" : $0 == 0x09 ? "\\t" : String(UnicodeScalar($0)) }.joined()
            throw fail("magic", "00 00 08 0\(expectedRank) (IDX, unsigned bytes)", magicText + (printable
                ? " (text \"\(text)\": a web page or an error message saved under this name, not the data file)" : ""))
        }
        guard magic[2] == 0x08 else {
            throw fail("magic: element type", "0x08 (unsigned byte)", "0x\(hexByte(magic[2]))")
        }
        guard ranks.contains(Int(magic[3])) else {
            let hint = expectedRank == 3 && magic[3] == 1 ? " (a label file: are the image and label files swapped?)"
                : expectedRank == 1 && magic[3] >= 2 ? " (an image file: are the image and label files swapped?)" : ""
            let wanted = ranks.count == 1 ? "\(ranks.lowerBound)" : "\(ranks.lowerBound) to \(ranks.upperBound)"
            throw fail("magic: number of dimensions", wanted, "\(magic[3])" + hint)
        }
        return Int(magic[3])
    }

    /// The dimension sizes (big-endian 32-bit, each positive, the payload under 16 GiB).
    func readDimensions(rank expectedRank: Int) throws -> [Int] {
        let available = bytes.count - 4
        guard available >= 4 * expectedRank else {
            throw fail("dimensions", "\(4 * expectedRank) header bytes", "\(available) (file too short)")
        }
        var dimensions: [Int] = []
        for d in 0..<expectedRank {
            let size = Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 4 + 4 * d, as: UInt32.self)))
            guard size > 0 else { throw fail("dimension \(d)", "a positive size", "0") }
            dimensions.append(size)
        }
        guard boundedProduct(dimensions, limit: 1 << 34) != nil else {
            throw fail("dimensions", "a payload under 16 GiB", "\(dimensions.map(String.init).joined(separator: "×"))")
        }
        return dimensions
    }

    /// Exactly the payload the dimensions announce: neither truncated nor followed by trailing bytes.
    func checkPayload(_ dimensions: [Int], from offset: Int) throws {
        let total = dimensions.reduce(1, *), found = bytes.count - offset
        let expected = "\(total) bytes for dimensions \(dimensions.map(String.init).joined(separator: "×"))"
        guard found >= total else { throw fail("payload length", expected, "\(found) bytes (file truncated)") }
        guard found == total else { throw fail("payload length", expected, "\(found) bytes (\(found - total) trailing bytes)") }
    }
}

private func hexByte(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return s.count == 1 ? "0" + s : s
}
