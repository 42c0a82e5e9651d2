// A data file's bytes, loaded so that the ranks on a node hold one copy: a raw file is mapped read-only, and its
// pages are the page cache's, shared by every process that maps it. A gzipped file is decompressed once into a
// cache file (written to a temporary name and renamed, under a lock, keyed by the compressed file's fingerprint),
// and that file is mapped.
import CZlib
import Numerics
#if canImport(Glibc)
import Glibc
#endif

/// Where the decompressed copies of gzipped data files are kept (`data.cache`).
public enum DecompressCache: Sendable, Equatable {
    /// A `.descent-cache` folder next to the data, when the data's folder is writable; else in each process's memory.
    case besideData
    /// This folder, created if need be; a failure to write there is an error that names it.
    case folder(String)
    /// In each process's memory: nothing is written (`data.cache: off`).
    case off

    /// The `data.cache` value: empty for beside the data, `off`, or a folder.
    public init(setting: String) {
        self = setting.isEmpty ? .besideData : setting == "off" ? .off : .folder(setting)
    }
}

/// The bytes of one data file, valid as long as this object lives.
public final class DataBytes: @unchecked Sendable {
    /// The file the bytes are from (the gzipped one, for a decompressed file).
    public let path: String
    public let buffer: UnsafeRawBufferPointer
    /// How they were loaded: `mapped`, `mapped from cache FILE` or `decompressed in memory`.
    public let origin: String
    private let release: () -> Void

    private init(path: String, buffer: UnsafeRawBufferPointer, origin: String, release: @escaping () -> Void) {
        (self.path, self.buffer, self.origin, self.release) = (path, buffer, origin, release)
    }

    deinit { release() }

    /// The file's bytes, decompressed when it is gzipped; `kind` says what the file should be, for messages.
    public static func load(_ path: String, kind: String, cache: DecompressCache) throws -> DataBytes {
        let source = try map(path, kind: kind)
        guard source.buffer.count >= 2, source.buffer[0] == 0x1f, source.buffer[1] == 0x8b else { return source }
        if case .off = cache { return try inflateIntoMemory(path, kind: kind) }
        guard let folder = cacheFolder(for: path, cache) else { return try inflateIntoMemory(path, kind: kind) }
        do {
            return try cached(source, in: folder, kind: kind)
        } catch let error as CacheWriteError {
            guard case .folder(let named) = cache else { return try inflateIntoMemory(path, kind: kind) }
            throw DataFileError(file: path, field: "decompress cache (data.cache \(named))",
                                expected: "a writable folder", found: "\(error.file): \(error.reason)")
        }
    }

    /// The file mapped read-only (an empty file as an empty buffer).
    static func map(_ path: String, kind: String) throws -> DataBytes {
        let fd = try openRegularFile(path, kind: kind)
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let size = Int(info.st_size)
        guard size > 0 else { return DataBytes(path: path, buffer: UnsafeRawBufferPointer(start: nil, count: 0), origin: "mapped") {} }
        guard let base = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            throw DataFileError(file: path, field: "file", expected: "a file that can be mapped into memory",
                                found: String(cString: strerror(errno)).lowercased())
        }
        return DataBytes(path: path, buffer: UnsafeRawBufferPointer(start: base, count: size), origin: "mapped") { munmap(base, size) }
    }

    /// The cache folder for `path`, created; nil when the data's own folder is not writable.
    private static func cacheFolder(for path: String, _ cache: DecompressCache) -> String? {
        switch cache {
        case .off: return nil
        case .folder(let folder): return folder
        case .besideData:
            let parent = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
            guard access(parent.isEmpty ? "/" : parent, W_OK) == 0 else { return nil }
            return (parent.isEmpty ? "" : parent) + "/.descent-cache"
        }
    }

    /// The decompressed copy of `source` in `folder`, made first if no process has made it yet.
    private static func cached(_ source: DataBytes, in folder: String, kind: String) throws -> DataBytes {
        try makeFolders(folder)
        let name = String(source.path.split(separator: "/").last ?? "data")
        let stem = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
        let key = hexDigest(fingerprint(bytes: source.buffer))
        let file = "\(folder)/\(stem).\(key)"
        // The gzip trailer's last 4 bytes: the decompressed size modulo 2^32 (RFC 1952), a check on a cached copy.
        let tail = source.buffer.count >= 4 ? source.buffer.loadUnaligned(fromByteOffset: source.buffer.count - 4, as: UInt32.self) : 0
        let expectedSize = UInt32(littleEndian: tail)
        func usable() -> Bool {
            var info = stat()
            return stat(file, &info) == 0 && UInt32(truncatingIfNeeded: info.st_size) == expectedSize
        }
        if !usable() {
            let lock = open(file + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
            guard lock >= 0 else { throw CacheWriteError(file: file + ".lock", reason: String(cString: strerror(errno)).lowercased()) }
            defer { close(lock) }  // closing releases the lock
            flock(lock, LOCK_EX)
            if !usable() { try decompress(source.path, kind: kind, into: file) }
        }
        let mapped = try map(file, kind: "the decompressed copy of \(source.path)")
        return DataBytes(path: source.path, buffer: mapped.buffer, origin: "mapped from cache \(file)") { withExtendedLifetime(mapped) {} }
    }

    /// Decompresses `path` into `file` through a temporary name in the same folder, renamed when complete.
    private static func decompress(_ path: String, kind: String, into file: String) throws {
        let temporary = "\(file).partial-\(hostName())-\(getpid())"
        let fd = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CacheWriteError(file: temporary, reason: String(cString: strerror(errno)).lowercased()) }
        var complete = false
        defer {
            close(fd)
            if !complete { unlink(temporary) }
        }
        try inflate(path, kind: kind) { chunk in
            var done = 0
            while done < chunk.count {
                let n = write(fd, chunk.baseAddress! + done, chunk.count - done)
                guard n > 0 else { throw CacheWriteError(file: temporary, reason: String(cString: strerror(errno)).lowercased()) }
                done += n
            }
        }
        guard fsync(fd) == 0, rename(temporary, file) == 0 else {
            throw CacheWriteError(file: file, reason: String(cString: strerror(errno)).lowercased())
        }
        complete = true
    }

    /// The whole decompressed file in this process's memory.
    private static func inflateIntoMemory(_ path: String, kind: String) throws -> DataBytes {
        var capacity = 1 << 20, size = 0
        var base = malloc(capacity)!
        do {
            try inflate(path, kind: kind) { chunk in
                if size + chunk.count > capacity {
                    while size + chunk.count > capacity { capacity *= 2 }
                    base = realloc(base, capacity)!
                }
                (base + size).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count)
                size += chunk.count
            }
        } catch {
            free(base)
            throw error
        }
        let owned = base
        return DataBytes(path: path, buffer: UnsafeRawBufferPointer(start: owned, count: size), origin: "decompressed in memory") { free(owned) }
    }

    /// Streams the decompressed bytes of `path` to `body`, a megabyte at a time.
    private static func inflate(_ path: String, kind: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = try openRegularFile(path, kind: kind)
        guard let gz = gzdopen(fd, "rb") else {
            close(fd)
            throw DataFileError(file: path, field: "file", expected: "a readable file", found: "a stream zlib cannot open")
        }
        defer { gzclose(gz) }
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { chunk.deallocate() }
        while true {
            let got = gzread(gz, chunk, 1 << 20)
            if got < 0 {
                var code: Int32 = 0
                let message = String(cString: gzerror(gz, &code))
                throw DataFileError(file: path, field: "compressed data", expected: "a valid gzip stream", found: "a corrupt stream (\(message))")
            }
            if got == 0 { return }
            try body(UnsafeRawBufferPointer(start: chunk, count: Int(got)))
        }
    }
}

/// A cache file that could not be written: with `data.cache` set it is an error, beside the data a fallback.
private struct CacheWriteError: Error {
    var file: String
    var reason: String
}

/// `path` and its missing parents, as `mkdir -p` makes them.
private func makeFolders(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        prefix += "/" + part
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw CacheWriteError(file: prefix, reason: String(cString: strerror(errno)).lowercased())
        }
    }
}

/// A regular file opened for reading, or a message naming it.
private func openRegularFile(_ path: String, kind: String) throws -> Int32 {
    var info = stat()
    guard stat(path, &info) == 0 else {
        throw DataFileError(file: path, field: "file", expected: kind, found: String(cString: strerror(errno)).lowercased())
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
        throw DataFileError(file: path, field: "file", expected: "a regular file", found: "a directory or device")
    }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        throw DataFileError(file: path, field: "file", expected: "a readable file", found: String(cString: strerror(errno)).lowercased())
    }
    return fd
}
