// A fast 64-bit fingerprint of a Float buffer's exact bits, used to prove that replicas hold identical parameters.

/// Fingerprint of the bit patterns of `values`: equal buffers give equal hashes; any changed bit changes it
/// with overwhelming probability. Not cryptographic.
public func fingerprint(_ values: UnsafeBufferPointer<Float>) -> UInt64 {
    // Four independent lanes keep the multiply chain short; each word is mixed before it is combined.
    var lanes: (UInt64, UInt64, UInt64, UInt64) =
        (0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344, 0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89)
    let n = values.count
    var i = 0
    @inline(__always) func mix(_ h: UInt64, _ w: UInt32) -> UInt64 {
        (h ^ (UInt64(w) &* 0x9E37_79B9_7F4A_7C15)).rotatedLeft(by: 29) &* 0xBF58_476D_1CE4_E5B9
    }
    while i + 4 <= n {
        lanes.0 = mix(lanes.0, values[i].bitPattern)
        lanes.1 = mix(lanes.1, values[i + 1].bitPattern)
        lanes.2 = mix(lanes.2, values[i + 2].bitPattern)
        lanes.3 = mix(lanes.3, values[i + 3].bitPattern)
        i += 4
    }
    while i < n {
        lanes.0 = mix(lanes.0, values[i].bitPattern)
        i += 1
    }
    var h = splitMix64(lanes.0) ^ splitMix64(lanes.1 &+ 1) ^ splitMix64(lanes.2 &+ 2) ^ splitMix64(lanes.3 &+ 3)
    h = splitMix64(h ^ UInt64(n))
    return h
}

public func fingerprint(_ values: [Float]) -> UInt64 {
    values.withUnsafeBufferPointer { fingerprint($0) }
}

/// The fingerprint as it is printed and saved: 16 lowercase hex digits.
public func hexDigest(_ hash: UInt64) -> String {
    let s = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

extension UInt64 {
    @inline(__always)
    func rotatedLeft(by k: UInt64) -> UInt64 { (self << k) | (self >> (64 - k)) }
}

/// Fingerprint of raw bytes (file contents, checkpoint payloads): the same mixing as the Float fingerprint,
/// over 8-byte words in four lanes, then the tail bytes and the length.
public func fingerprint(bytes: UnsafeRawBufferPointer) -> UInt64 {
    var lanes: (UInt64, UInt64, UInt64, UInt64) =
        (0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344, 0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89)
    @inline(__always) func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
        (h ^ (w &* 0x9E37_79B9_7F4A_7C15)).rotatedLeft(by: 29) &* 0xBF58_476D_1CE4_E5B9
    }
    let n = bytes.count
    guard let base = bytes.baseAddress else { return splitMix64(0x5EED) }
    var i = 0
    while i + 32 <= n {
        lanes.0 = mix(lanes.0, base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        lanes.1 = mix(lanes.1, base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
        lanes.2 = mix(lanes.2, base.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self))
        lanes.3 = mix(lanes.3, base.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self))
        i += 32
    }
    while i < n {
        lanes.0 = mix(lanes.0, UInt64(base.load(fromByteOffset: i, as: UInt8.self)))
        i += 1
    }
    var h = splitMix64(lanes.0) ^ splitMix64(lanes.1 &+ 1) ^ splitMix64(lanes.2 &+ 2) ^ splitMix64(lanes.3 &+ 3)
    h = splitMix64(h ^ UInt64(n))
    return h
}

public func fingerprint(bytesOf bytes: [UInt8]) -> UInt64 {
    bytes.withUnsafeBytes { fingerprint(bytes: $0) }
}
