// The seam between training and transport: what a rank may ask of its peers.
#if canImport(Glibc)
import Glibc
#endif

/// How values from all ranks are combined.
public enum ReduceOperation: Sendable {
    case sum, min, max
}

/// A failure of a collective operation (the transport reported an error).
public struct CollectiveError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var detail: String

    public init(operation: String, detail: String) {
        (self.operation, self.detail) = (operation, detail)
    }

    public var description: String { "\(operation) failed: \(detail)" }
}

/// A group of ranks that run the same program on different shards of data.
///
/// Every call is collective: all ranks of the group must make the same calls, in the same order, with
/// buffers of the same length. Implementations: `SingleProcessCommunicator` (one rank),
/// `InProcessGroup` (N ranks as threads, for tests) and `MPICommunicator` (Open MPI, in MPICollectives).
public protocol Communicator: AnyObject {
    /// This process's index in the group, 0..<size.
    var rank: Int { get }
    /// Number of ranks in the group.
    var size: Int { get }

    /// Combines `buffer` element-wise over all ranks, in place; every rank ends with the result.
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, _ operation: ReduceOperation) throws

    /// Copies `root`'s bytes into every other rank's buffer.
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws

    /// A personalised exchange (MPI_Alltoallv): this rank sends the `send.counts[s]` floats at `send.offsets[s]`
    /// of `send.buffer` to rank s, and receives rank q's floats for it at `receive.offsets[q]` of
    /// `receive.buffer` (`receive.counts[q]` of them, matching what q sends).
    func allToAll(_ send: Pieces<UnsafeBufferPointer<Float>>, _ receive: Pieces<UnsafeMutableBufferPointer<Float>>) throws

    /// Completes `buffer` on every rank from every rank's own piece (MPI_Allgatherv in place): rank q
    /// contributes the `pieces.counts[q]` floats at `pieces.offsets[q]`.
    func allGather(_ pieces: Pieces<UnsafeMutableBufferPointer<Float>>) throws

    /// Ends every rank of the job at once, with `message` on standard error. Only for failures that the ranks
    /// cannot agree on (one rank alone cannot continue); errors seen by all ranks are thrown instead.
    func abort(_ message: String, code: Int32) -> Never

    /// Tells a watching implementation what the rank is doing (the optimizer step, −1 before the first, and a
    /// phase name), so that a collective that never completes can be reported by step and phase.
    func setContext(step: Int, phase: StaticString)

    /// The seconds a collective may wait before the job is aborted (`guards.collective_timeout`; 0: no deadline),
    /// where a watchdog keeps one.
    func setDeadline(_ seconds: Double)

    /// Memory that every rank reads directly, when all ranks share one host: a region of `floats` floats per rank.
    /// Collective, with the same `floats` on every rank; nil on every rank when the ranks span hosts, when the
    /// transport has no shared memory, or when `DESCENT_SHARED_MEMORY=off` (what `SharedMemory.enabled` reads).
    func sharedRegions(floats: Int) throws -> SharedRegions?
}

/// One region of floats per rank, all in memory every rank of the group can read. A rank writes only its own
/// region; what it wrote before a `fence` the others may read after it.
public protocol SharedRegions: AnyObject {
    /// Floats in each rank's region.
    var floats: Int { get }
    /// The start of rank `q`'s region.
    func region(_ q: Int) -> UnsafeMutablePointer<Float>
    /// Waits until every rank has reached it, ordering every rank's writes before it before every read after it.
    func fence() throws
}

/// Whether the exchange may use shared memory between the ranks of one host: on unless the environment says
/// `DESCENT_SHARED_MEMORY=off` (for measuring the MPI transport alone; the bits are the same either way).
public enum SharedMemory {
    public static var enabled: Bool {
        getenv("DESCENT_SHARED_MEMORY").map { String(cString: $0) != "off" } ?? true
    }
}

/// A buffer cut into one piece per rank: piece q is `counts[q]` elements from `offsets[q]`.
public struct Pieces<Buffer> {
    public var buffer: Buffer
    public var counts: [Int]
    public var offsets: [Int]

    public init(_ buffer: Buffer, counts: [Int], offsets: [Int]) {
        precondition(counts.count == offsets.count)
        self.buffer = buffer
        self.counts = counts
        self.offsets = offsets
    }

    /// Pieces laid end to end from offset 0.
    public init(_ buffer: Buffer, counts: [Int]) {
        self.init(buffer, counts: counts, offsets: Self.endToEnd(counts))
    }

    /// The offsets of pieces of `counts` elements laid end to end from 0.
    public static func endToEnd(_ counts: [Int]) -> [Int] {
        var offsets: [Int] = [], next = 0
        for c in counts { offsets.append(next); next += c }
        return offsets
    }

    public func range(_ q: Int) -> Range<Int> { offsets[q]..<(offsets[q] + counts[q]) }
}

extension Communicator {
    public func setContext(step: Int, phase: StaticString) {}
    public func setDeadline(_ seconds: Double) {}
    public func sharedRegions(floats: Int) throws -> SharedRegions? { nil }

    /// Root's text on every rank (the others pass anything; lengths may differ).
    public func broadcast(text: String, root: Int = 0) throws -> String {
        String(decoding: try broadcast(bytes: rank == root ? Array(text.utf8) : nil, root: root), as: UTF8.self)
    }

    /// Every rank's text, by rank, on every rank (one broadcast per rank: for start-up facts, not for steps).
    public func allGather(text: String) throws -> [String] {
        try (0..<size).map { try broadcast(text: rank == $0 ? text : "", root: $0) }
    }

    /// Root's bytes on every rank (the others pass nil).
    public func broadcast(bytes: [UInt8]?, root: Int = 0) throws -> [UInt8] {
        var length: [Int64] = [rank == root ? Int64(bytes?.count ?? 0) : 0]
        try allreduce(&length, .max)
        var out = rank == root ? (bytes ?? []) : [UInt8](repeating: 0, count: Int(length[0]))
        try out.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return out
    }

    /// Sums `values` over all ranks, in place.
    public func allreduceSum(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, .sum) }
    }

    public func allreduce(_ values: inout [Double], _ operation: ReduceOperation) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, operation) }
    }

    public func allreduce(_ values: inout [Int64], _ operation: ReduceOperation) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, operation) }
    }

    /// True on every rank if `flag` is true on every rank; false on every rank otherwise.
    public func allAgree(_ flag: Bool) throws -> Bool {
        var v: [Int64] = [flag ? 1 : 0]
        try allreduce(&v, .min)
        return v[0] == 1
    }

    /// True on every rank if all ranks passed the same value.
    public func allAgree(on value: UInt64) throws -> Bool {
        var lo: [Int64] = [Int64(bitPattern: value)], hi = lo
        try allreduce(&lo, .min)
        try allreduce(&hi, .max)
        return lo[0] == hi[0]
    }

    /// Every rank's value, indexed by rank, on every rank.
    public func allGather(_ value: Int64) throws -> [Int64] {
        var slots = [Int64](repeating: 0, count: size)
        slots[rank] = value
        try allreduce(&slots, .sum)
        return slots
    }

    public func allGather(_ value: Double) throws -> [Double] {
        var slots = [Double](repeating: 0, count: size)
        slots[rank] = value
        try allreduce(&slots, .sum)
        return slots
    }

    /// Copies root's floats into every rank's array (all arrays must have the same length).
    public func broadcast(_ values: inout [Float], root: Int = 0) throws {
        try values.withUnsafeMutableBytes { try broadcast($0, root: root) }
    }

    /// Runs `body` on every rank and makes its failure collective: if any rank throws, every rank throws.
    /// The lowest failing rank throws `FailedOnThisRank` holding its error; the others throw
    /// `FailedOnAnotherRank`, so the job prints one message, not one per rank.
    public func collectively<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        var failure: Error?
        do { result = try body() } catch { failure = error }
        var lowest: [Int64] = [failure == nil ? Int64(size) : Int64(rank)]
        try allreduce(&lowest, .min)
        if lowest[0] < Int64(size) {
            if let failure, lowest[0] == Int64(rank) { throw FailedOnThisRank(underlying: failure) }
            throw FailedOnAnotherRank(rank: Int(lowest[0]))
        }
        return result!
    }
}

/// Thrown on the ranks that did not fail themselves when a collective step failed on another rank, which
/// reports the cause.
public struct FailedOnAnotherRank: Error, CustomStringConvertible, Sendable {
    public var rank: Int
    public var description: String { "stopped because rank \(rank) failed" }
}

/// Thrown on the rank that reports a failure of a collective step; `underlying` is its own error.
public struct FailedOnThisRank: Error, CustomStringConvertible {
    public var underlying: Error
    public var description: String { "\(underlying)" }
}
