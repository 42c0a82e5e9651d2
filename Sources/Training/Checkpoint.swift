// Checkpoints: everything needed to continue a run bit-exactly, committed atomically, verified on load.
//
// A checkpoint file is
//     8 bytes  magic "DSCNTCKP"
//     4 bytes  format version (little-endian UInt32), 4 bytes zero
//     8 bytes  payload length, 8 bytes payload fingerprint (little-endian UInt64)
//     payload: 8-byte header length, the JSON header, then the float buffers the header lists, in order.
// Format 2 (written since the run state became nested values) and format 1 (flat records) are both read.
// It is written as `<name>.tmp`, fsynced, renamed to `step-<N>.ckpt`, and the folder fsynced; only then is the
// commit record `LATEST` replaced (the same way). A reader follows `LATEST` alone, so a crash at any point leaves
// the previous committed checkpoint in force.
import Config
import Foundation
import Numerics
#if canImport(Glibc)
import Glibc
#endif

/// The JSON part of a checkpoint: where the run stands and everything that is not a float buffer. Format 2 nests
/// the run state as the values it is (`position`, each replica's `progress` and `guards`); `FormatOne` reads the
/// flat objects that format 1 wrote.
public struct CheckpointHeader: Codable, Sendable {
    /// Sample order: a pure function of (seed, epoch); the stream is the epoch.
    public struct RandomState: Codable, Sendable {
        public var generator: String
        public var seed: UInt64
        public var stream: Int
    }

    /// One replica's optimizer scalars and its running records.
    public struct ReplicaRecord: Codable, Sendable {
        public var label: String
        public var optimizer: String
        public var optimizerStep: Int
        public var scalars: [String: Double]
        public var progress: ReplicaProgress
        public var guards: GuardState
    }

    /// A float buffer stored after the header.
    public struct Buffer: Codable, Sendable {
        public var name: String
        public var count: Int
    }

    public var format: Int
    /// Where the run stands: steps done, the next step's epoch and batch, and the running totals.
    public var position: RunPosition
    public var ranks: Int
    public var configHash: String
    /// The resolved config of the run that wrote it.
    public var config: String
    public var random: RandomState
    /// Fingerprint of the epoch's sample order, checked when it is derived again.
    public var orderHash: String
    public var parameterCount: Int
    public var replicas: [ReplicaRecord]
    public var buffers: [Buffer]

    public var step: Int { position.step }
    public var epoch: Int { position.epoch }
    public var batch: Int { position.batch }
}

extension CheckpointHeader {
    /// Format 1's header: the same fields, with the run position spread into the top-level object and each
    /// replica's progress and guards into its record.
    struct FormatOne: Decodable {
        var header: CheckpointHeader

        enum Keys: String, CodingKey { case format, ranks, configHash, config, random, orderHash, parameterCount, replicas, buffers }

        struct Replica: Decodable {
            var record: ReplicaRecord
            enum Keys: String, CodingKey { case label, optimizer, optimizerStep, scalars }

            init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: Keys.self)
                record = ReplicaRecord(label: try c.decode(String.self, forKey: .label), optimizer: try c.decode(String.self, forKey: .optimizer),
                                       optimizerStep: try c.decode(Int.self, forKey: .optimizerStep),
                                       scalars: try c.decode([String: Double].self, forKey: .scalars),
                                       progress: try ReplicaProgress(from: decoder), guards: try GuardState(from: decoder))
            }
        }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            header = CheckpointHeader(
                format: try c.decode(Int.self, forKey: .format), position: try RunPosition(from: decoder),
                ranks: try c.decode(Int.self, forKey: .ranks), configHash: try c.decode(String.self, forKey: .configHash),
                config: try c.decode(String.self, forKey: .config), random: try c.decode(RandomState.self, forKey: .random),
                orderHash: try c.decode(String.self, forKey: .orderHash), parameterCount: try c.decode(Int.self, forKey: .parameterCount),
                replicas: try c.decode([Replica].self, forKey: .replicas).map(\.record), buffers: try c.decode([Buffer].self, forKey: .buffers))
        }
    }
}

/// A checkpoint that cannot be used: names the file and the problem.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var problem: String
    public var description: String { "checkpoint \(file): \(problem)" }
}

/// What `LATEST` records.
public struct CommitRecord: Codable, Sendable {
    public var file: String
    public var step: Int
    public var fingerprint: String
}

/// Reading and writing checkpoint files and the commit record of one folder.
public enum CheckpointStore {
    /// The format this build writes, and the ones it reads.
    public static let formatVersion: UInt32 = 2
    public static let readableVersions: [UInt32] = [1, 2]
    public static let magic = Array("DSCNTCKP".utf8)
    static let prefixLength = 32

    /// `<run folder>/checkpoints`.
    public static func directory(ofRun run: String) -> String { run + "/checkpoints" }

    public static func fileName(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 9 - digits.count)) + digits + ".ckpt"
    }

    // MARK: encoding

    static func jsonEncoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    static func jsonDecoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    /// The bytes of a checkpoint holding `header` and `buffers` (in the order and sizes the header lists).
    public static func encode(_ header: CheckpointHeader, buffers: [[Float]], version: UInt32 = formatVersion) throws -> [UInt8] {
        precondition(header.buffers.map(\.count) == buffers.map(\.count), "buffer list and header disagree")
        let json = try [UInt8](jsonEncoder().encode(header))
        var payload: [UInt8] = []
        payload.reserveCapacity(8 + json.count + buffers.reduce(0) { $0 + 4 * $1.count })
        append(UInt64(json.count), to: &payload)
        payload += json
        for b in buffers { b.withUnsafeBytes { payload += $0 } }
        var out = magic
        append(version, to: &out)
        append(UInt32(0), to: &out)
        append(UInt64(payload.count), to: &out)
        append(fingerprint(bytesOf: payload), to: &out)
        return out + payload
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    private static func read<T: FixedWidthInteger>(_ type: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    /// Checks the frame (length, magic, version, the reserved zeros, payload length, fingerprint) of a checkpoint's bytes.
    public static func verify(_ bytes: [UInt8], file: String) throws {
        func fail(_ problem: String) -> CheckpointError { CheckpointError(file: file, problem: problem) }
        guard bytes.count >= prefixLength else {
            throw fail("truncated: \(bytes.count) bytes, shorter than the \(prefixLength)-byte frame")
        }
        guard Array(bytes[0..<8]) == magic else { throw fail("not a descent checkpoint (wrong magic bytes)") }
        let version = read(UInt32.self, bytes, at: 8)
        guard readableVersions.contains(version) else {
            throw fail("format version \(version), but this build reads versions "
                       + readableVersions.map(String.init).joined(separator: " and "))
        }
        guard read(UInt32.self, bytes, at: 12) == 0 else { throw fail("damaged frame: its reserved field (bytes 12–15) is not zero") }
        let length = read(UInt64.self, bytes, at: 16)
        guard length == UInt64(bytes.count - prefixLength) else {
            throw fail("truncated or extended: the frame announces \(length) payload bytes, the file holds \(bytes.count - prefixLength)")
        }
        let stored = read(UInt64.self, bytes, at: 24)
        let actual = bytes.withUnsafeBytes { fingerprint(bytes: UnsafeRawBufferPointer(rebasing: $0[prefixLength...])) }
        guard stored == actual else {
            throw fail("checksum mismatch (stored \(hexDigest(stored)), computed \(hexDigest(actual))): the file is corrupt")
        }
    }

    /// The payload fingerprint recorded in a checkpoint's frame.
    public static func storedFingerprint(_ bytes: [UInt8]) -> UInt64 { read(UInt64.self, bytes, at: 24) }

    /// Decodes verified bytes into the header and its buffers by name.
    public static func decode(_ bytes: [UInt8], file: String) throws -> (CheckpointHeader, [String: [Float]]) {
        try verify(bytes, file: file)
        func fail(_ problem: String) -> CheckpointError { CheckpointError(file: file, problem: problem) }
        let jsonStart = prefixLength + 8
        guard bytes.count >= jsonStart else { throw fail("truncated: no header length after the frame") }
        // Compared as it is stored, in 64 bits unsigned, before any conversion or addition.
        let stored = read(UInt64.self, bytes, at: prefixLength)
        guard stored <= UInt64(bytes.count - jsonStart) else { throw fail("header length \(stored) out of range") }
        let jsonLength = Int(stored)
        let header: CheckpointHeader
        do {
            let json = Data(bytes[jsonStart..<(jsonStart + jsonLength)])
            header = read(UInt32.self, bytes, at: 8) == 1 ? try jsonDecoder().decode(CheckpointHeader.FormatOne.self, from: json).header
                : try jsonDecoder().decode(CheckpointHeader.self, from: json)
        } catch {
            throw fail("unreadable header (\(error))")
        }
        var offset = jsonStart + jsonLength
        var buffers: [String: [Float]] = [:]
        for b in header.buffers {
            guard b.count >= 0, b.count <= (bytes.count - offset) / 4 else { throw fail("buffer '\(b.name)' runs past the end of the file") }
            let n = b.count * 4
            buffers[b.name] = bytes.withUnsafeBytes { raw in
                [Float](unsafeUninitializedCapacity: b.count) { out, initialized in
                    UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + n)]))
                    initialized = b.count
                }
            }
            offset += n
        }
        guard offset == bytes.count else { throw fail("\(bytes.count - offset) bytes after the last buffer") }
        return (header, buffers)
    }

    // MARK: files

    /// Writes `bytes` as `step-<step>.ckpt` in `directory` and commits it, then deletes all but the newest `keep`
    /// committed checkpoints (and any uncommitted leftovers). `beforeCommit` runs between the rename and the
    /// commit record (fault injection). Returns the file's path.
    @discardableResult
    public static func commit(_ bytes: [UInt8], step: Int, directory: String, keep: Int,
                              beforeCommit: () -> Void = {}) throws -> String {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw OutputError(path: directory, reason: error.localizedDescription)
        }
        let name = fileName(step: step)
        let path = directory + "/" + name
        try writeDurably(bytes, to: path)
        beforeCommit()
        let record = CommitRecord(file: name, step: step, fingerprint: hexDigest(storedFingerprint(bytes)))
        try writeDurably([UInt8](try jsonEncoder().encode(record)) + [10], to: directory + "/LATEST")
        prune(directory, keep: keep, newest: step)
        return path
    }

    /// Writes through `<path>.tmp`, fsync and rename, then fsyncs the folder: after it returns the file is
    /// on disk whole under its name, and a crash before that leaves no file of that name.
    static func writeDurably(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OutputError(path: temporary, errno: errno) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw OutputError(path: temporary, errno: code)
            }
            done += n
        }
        guard fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(temporary)
            throw OutputError(path: temporary, errno: code)
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw OutputError(path: path, errno: code)
        }
        let folder = (path as NSString).deletingLastPathComponent
        let dfd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    /// The step of a checkpoint file name, or nil for other names.
    static func step(ofFile name: String) -> Int? {
        guard name.hasPrefix("step-"), name.hasSuffix(".ckpt") else { return nil }
        return Int(name.dropFirst(5).dropLast(5))
    }

    /// Keeps the newest `keep` checkpoints at or before the committed step; removes the rest, uncommitted
    /// files after it and temporary files. Failures to delete are not errors (the next commit tries again).
    static func prune(_ directory: String, keep: Int, newest: Int) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let committed = names.compactMap { n in step(ofFile: n).map { (n, $0) } }.filter { $0.1 <= newest }
            .sorted { $0.1 > $1.1 }
        let kept = Set(committed.prefix(keep).map(\.0))
        for n in names where n != "LATEST" && !kept.contains(n) && (step(ofFile: n) != nil || n.hasSuffix(".tmp")) {
            unlink(directory + "/" + n)
        }
    }

    /// The commit record of `directory`, or nil when nothing was ever committed there.
    public static func latest(in directory: String) throws -> CommitRecord? {
        let path = directory + "/LATEST"
        guard let data = FileManager.default.contents(atPath: path) else {
            return nil
        }
        do {
            return try jsonDecoder().decode(CommitRecord.self, from: data)
        } catch {
            throw CheckpointError(file: path, problem: "unreadable commit record (expected JSON with file, step and fingerprint)")
        }
    }

    /// Committed checkpoint files in `directory` other than `except`, newest first (for messages).
    public static func others(in directory: String, except name: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { n in step(ofFile: n).map { (n, $0) } }.filter { $0.0 != name }
            .sorted { $0.1 > $1.1 }.map(\.0)
    }

    /// Reads and verifies a checkpoint file.
    public static func load(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError(file: path, problem: FileManager.default.fileExists(atPath: path)
                                  ? "unreadable" : "missing (the commit record names it)")
        }
        let bytes = [UInt8](data)
        try verify(bytes, file: path)
        return bytes
    }
}
