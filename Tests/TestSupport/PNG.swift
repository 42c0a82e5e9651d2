// A small PNG reader for the rendering tests: 8-bit RGB or RGBA, not interlaced (what rsvg-convert writes).
import CZlib
import Foundation

public struct PNGImage {
    public var width: Int
    public var height: Int
    /// RGBA, row-major.
    public var pixels: [UInt8]

    public func rgba(_ x: Int, _ y: Int) -> (UInt8, UInt8, UInt8, UInt8) {
        let k = 4 * (y * width + x)
        return (pixels[k], pixels[k + 1], pixels[k + 2], pixels[k + 3])
    }
}

public struct PNGError: Error, CustomStringConvertible {
    public var description: String
}

public func readPNG(_ data: Data) throws -> PNGImage {
    let bytes = [UInt8](data)
    guard bytes.count > 8, bytes[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
        throw PNGError(description: "not a PNG signature")
    }
    func u32(_ i: Int) -> Int { Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
    var i = 8
    var width = 0, height = 0, channels = 0
    var compressed: [UInt8] = []
    while i + 8 <= bytes.count {
        let length = u32(i)
        let type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
        let body = Array(bytes[(i + 8)..<(i + 8 + length)])
        switch type {
        case "IHDR":
            width = u32(i + 8)
            height = u32(i + 12)
            guard body[8] == 8, body[12] == 0 else { throw PNGError(description: "only 8-bit, non-interlaced PNGs") }
            switch body[9] {
            case 2: channels = 3
            case 6: channels = 4
            default: throw PNGError(description: "colour type \(body[9]) not supported")
            }
        case "IDAT": compressed += body
        default: break
        }
        i += 12 + length
    }
    let stride = width * channels
    var raw = [UInt8](repeating: 0, count: height * (stride + 1))
    var rawLength = uLongf(raw.count)
    let status = raw.withUnsafeMutableBufferPointer { out in
        compressed.withUnsafeBufferPointer { src in uncompress(out.baseAddress, &rawLength, src.baseAddress, uLong(src.count)) }
    }
    guard status == Z_OK, Int(rawLength) == raw.count else { throw PNGError(description: "inflate failed (\(status))") }
    // Undo the per-row filters.
    var image = [UInt8](repeating: 0, count: height * stride)
    for y in 0..<height {
        let filter = raw[y * (stride + 1)]
        for x in 0..<stride {
            let value = raw[y * (stride + 1) + 1 + x]
            let a = x >= channels ? Int(image[y * stride + x - channels]) : 0
            let b = y > 0 ? Int(image[(y - 1) * stride + x]) : 0
            let c = x >= channels && y > 0 ? Int(image[(y - 1) * stride + x - channels]) : 0
            let predictor: Int
            switch filter {
            case 0: predictor = 0
            case 1: predictor = a
            case 2: predictor = b
            case 3: predictor = (a + b) / 2
            case 4:
                let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
            default: throw PNGError(description: "filter \(filter)")
            }
            image[y * stride + x] = UInt8(truncatingIfNeeded: Int(value) + predictor)
        }
    }
    if channels == 4 { return PNGImage(width: width, height: height, pixels: image) }
    var rgba = [UInt8]()
    rgba.reserveCapacity(width * height * 4)
    for p in 0..<(width * height) { rgba += [image[3 * p], image[3 * p + 1], image[3 * p + 2], 255] }
    return PNGImage(width: width, height: height, pixels: rgba)
}
