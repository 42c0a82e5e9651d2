// The one clock every timing in descent reads, the process's peak memory, and the host it runs on.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seconds on a monotonic clock (CLOCK_MONOTONIC).
@inline(__always)
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// This process's peak resident set size in bytes.
public func peakResidentBytes() -> Int {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Int(usage.ru_maxrss) * 1024
}

/// Where this process's resident memory lies (Linux's /proc accounting, in bytes): `anonymous` is its own
/// (heap, stacks), `file` is file pages it maps (shared with every process that maps the same file), and
/// `proportional` (PSS) charges each shared page to its sharers in equal parts, so that the PSS of a node's
/// ranks add up to the memory they use together. Zero where /proc does not say.
public struct MemoryUse: Sendable, Equatable {
    public var peak = 0, anonymous = 0, file = 0, proportional = 0

    public init(peak: Int = 0, anonymous: Int = 0, file: Int = 0, proportional: Int = 0) {
        (self.peak, self.anonymous, self.file, self.proportional) = (peak, anonymous, file, proportional)
    }

    public static func current() -> MemoryUse {
        var use = MemoryUse(peak: peakResidentBytes())
        let status = procFields("/proc/self/status"), rollup = procFields("/proc/self/smaps_rollup")
        use.anonymous = status["RssAnon"] ?? 0
        use.file = status["RssFile"] ?? 0
        use.proportional = rollup["Pss"] ?? 0
        return use
    }

    /// `Name:  123 kB` lines as bytes by name.
    private static func procFields(_ path: String) -> [String: Int] {
        guard let f = fopen(path, "r") else { return [:] }
        defer { fclose(f) }
        var fields: [String: Int] = [:]
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), f) != nil {
            let parts = String(cString: line).split(whereSeparator: { $0 == ":" || $0 == " " || $0 == "\t" || $0 == "\n" })
            guard parts.count == 3, parts[2] == "kB", let kb = Int(parts[1]) else { continue }
            fields[String(parts[0])] = kb * 1024
        }
        return fields
    }
}

/// The name of the host this process runs on (its UTS name: a network namespace's own, when it has one).
public func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
    return String(cString: buffer)
}
