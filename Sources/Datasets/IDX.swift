// Reader for the IDX format (LeCun's MNIST files, also used by Fashion-MNIST), gzipped or raw, that checks
// every header field and the payload length before it hands out a byte.
import CZlib
#if canImport(Glibc)
import Glibc
#endif

/// An IDX file of unsigned bytes: its dimensions and its payload, kept as bytes.
public struct IDXFile: Sendable {
    public var path: String
    /// Dimension sizes, outermost first (e.g. [60000, 28, 28]).
    public var dimensions: [Int]
    /// The payload, row-major, `dimensions.reduce(1, *)` bytes.
    public var bytes: [UInt8]

    /// Items (the first dimension).
    public var count: Int { dimensions.first ?? 0 }
    /// Bytes per item (the product of the other dimensions).
    public var itemSize: Int { dimensions.dropFirst().reduce(1, *) }

    /// Reads and validates `path`. gzip is detected from the content, so `.gz` and raw files both work.
    ///
    /// - Parameter ranks: the numbers of dimensions accepted (2…4 for images, 1 for labels).
    public static func read(path: String, ranks: ClosedRange<Int>) throws -> IDXFile {
        let file = try Reader(path: path)
        let rank = try file.checkMagic(ranks: ranks)
        let dimensions = try file.readDimensions(rank: rank)
        return IDXFile(path: path, dimensions: dimensions, bytes: try file.readPayload(dimensions))
    }
}

/// An open IDX file, raw or gzipped, read front to back; every problem names the file and the field.
private final class Reader {
    let path: String
    private let gz: gzFile

    init(path: String) throws {
        self.path = path
        gz = try openDataFile(path, kind: "an IDX file (raw or gzipped)")
        gzbuffer(gz, 1 << 17)
    }

    deinit { gzclose(gz) }

    func fail(_ field: String, _ expected: String, _ found: String) -> DataFileError {
        DataFileError(file: path, field: field, expected: expected, found: found)
    }

    /// Reads up to `n` bytes (fewer only at the end of the file); returns how many.
    func readExactly(_ buffer: UnsafeMutableRawPointer, _ n: Int) throws -> Int {
        var done = 0
        while done < n {
            let chunk = UInt32(min(n - done, 1 << 30))
            let got = gzread(gz, buffer + done, chunk)
            if got < 0 {
                var code: Int32 = 0
                let message = String(cString: gzerror(gz, &code))
                throw fail("compressed data", "a valid gzip stream", "a corrupt stream (\(message))")
            }
            if got == 0 { break }
            done += Int(got)
        }
        return done
    }

    /// The magic number: 00 00, unsigned bytes (08), then the number of dimensions, which it returns.
    func checkMagic(ranks: ClosedRange<Int>) throws -> Int {
        let expectedRank = ranks.count == 1 ? ranks.lowerBound : 3  // (images: N × 28 × 28 mostly)
        var magic = [UInt8](repeating: 0, count: 4)
        let gotMagic = try readExactly(&magic, 4)
        guard gotMagic == 4 else { throw fail("header", "4 magic bytes", "\(gotMagic) bytes (file too short)") }
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
        var header = [UInt8](repeating: 0, count: 4 * expectedRank)
        let gotHeader = try readExactly(&header, header.count)
        guard gotHeader == header.count else {
            throw fail("dimensions", "\(header.count) header bytes", "\(gotHeader) (file too short)")
        }
        var dimensions: [Int] = []
        for d in 0..<expectedRank {
            let b = header[(4 * d)..<(4 * d + 4)].map(UInt32.init)
            let size = Int(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3])
            guard size > 0 else { throw fail("dimension \(d)", "a positive size", "0") }
            dimensions.append(size)
        }
        let (total, overflow) = dimensions.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: d)
            return (p, acc.1 || o)
        }
        guard !overflow, total <= 1 << 34 else {
            throw fail("dimensions", "a payload under 16 GiB", "\(dimensions.map(String.init).joined(separator: "×"))")
        }
        return dimensions
    }

    /// Exactly the payload the dimensions announce: neither truncated nor followed by trailing bytes.
    func readPayload(_ dimensions: [Int]) throws -> [UInt8] {
        let total = dimensions.reduce(1, *)
        let expected = "\(total) bytes for dimensions \(dimensions.map(String.init).joined(separator: "×"))"
        var readCount = 0
        let bytes = try [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            readCount = try readExactly(buffer.baseAddress!, total)
            if readCount < total { buffer.baseAddress!.advanced(by: readCount).initialize(repeating: 0, count: total - readCount) }
            initialized = total
        }
        guard readCount == total else { throw fail("payload length", expected, "\(readCount) bytes (file truncated)") }
        var extra = [UInt8](repeating: 0, count: 4096)
        var trailing = 0
        while true {
            let n = try readExactly(&extra, extra.count)
            trailing += n
            if n < extra.count { break }
        }
        guard trailing == 0 else {
            throw fail("payload length", expected, "\(total + trailing) bytes (\(trailing) trailing bytes)")
        }
        return bytes
    }
}

/// A regular file opened for reading, raw or gzipped (zlib reads both), or a message naming it.
func openDataFile(_ path: String, kind: String) throws -> gzFile {
    var info = stat()
    guard stat(path, &info) == 0 else {
        throw DataFileError(file: path, field: "file", expected: kind, found: String(cString: strerror(errno)).lowercased())
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
        throw DataFileError(file: path, field: "file", expected: "a regular file", found: "a directory or device")
    }
    guard let gz = gzopen(path, "rb") else {
        throw DataFileError(file: path, field: "file", expected: "a readable file", found: String(cString: strerror(errno)).lowercased())
    }
    return gz
}

private func hexByte(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return s.count == 1 ? "0" + s : s
}
