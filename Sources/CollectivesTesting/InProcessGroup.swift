// N ranks as threads of one process, with a fixed reduction order, so that data-parallel invariants can be
// tested in milliseconds without mpirun.
import Collectives
import Foundation

/// A group of `size` in-process ranks. `run` starts one thread per rank and hands each its communicator.
public final class InProcessGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    /// One pointer per rank, each written by its own rank only (a raw buffer: distinct elements of one Swift array
    /// written by several threads would be a race on the array itself).
    private let slots: UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>

    /// Regions handed out by `sharedRegions`, freed with the group.
    private var allocations: [UnsafeMutablePointer<Float>] = []
    private let allocationLock = NSLock()

    /// Whether `sharedRegions` gives memory (as ranks on one host) or nil (as ranks on several).
    let sharing: Bool

    public init(size: Int, sharing: Bool = true) {
        precondition(size >= 1)
        self.size = size
        self.sharing = sharing
        slots = .allocate(capacity: size)
        slots.initialize(repeating: nil)
    }

    deinit {
        allocations.forEach { $0.deallocate() }
        slots.deallocate()
    }

    func allocate(_ floats: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(floats, 1))
        p.initialize(repeating: 0, count: max(floats, 1))
        allocationLock.withLock { allocations.append(p) }
        return p
    }

    /// Runs `body` on `size` threads, one per rank, and returns their results in rank order. The first error
    /// thrown (by rank order) is rethrown after all threads finish.
    public static func run<T>(
        ranks: Int, sharing: Bool = true, _ body: @escaping (InProcessCommunicator) throws -> T
    ) throws -> [T] {
        let group = InProcessGroup(size: ranks, sharing: sharing)
        let results = ResultSlots<T>(ranks)
        let done = DispatchGroup()
        for r in 0..<ranks {
            done.enter()
            let thread = Thread {
                let outcome = Result { try body(InProcessCommunicator(group: group, rank: r)) }
                results.lock.lock(); results.slots[r] = outcome; results.lock.unlock()
                done.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
        return try results.slots.map { try $0!.get() }
    }

    /// Publishes this rank's pointer, waits for every rank, then lets each rank read all pointers; a second
    /// barrier keeps the pointed-to buffers alive until everyone has read them.
    func exchange(rank: Int, pointer: UnsafeMutableRawPointer, _ afterAll: ([UnsafeMutableRawPointer]) -> Void) {
        slots[rank] = pointer  // each rank writes its own slot only
        barrier()
        afterAll(slots.map { $0! })
        barrier()
    }

    func barrier() {
        condition.lock()
        defer { condition.unlock() }
        let myGeneration = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == myGeneration { condition.wait() }
        }
    }
}

/// The regions of one `sharedRegions` call.
private final class InProcessRegions: SharedRegions {
    let floats: Int
    let regions: [UnsafeMutablePointer<Float>]
    let group: InProcessGroup
    init(floats: Int, regions: [UnsafeMutablePointer<Float>], group: InProcessGroup) {
        (self.floats, self.regions, self.group) = (floats, regions, group)
    }
    func region(_ q: Int) -> UnsafeMutablePointer<Float> { regions[q] }
    func fence() throws { group.barrier() }
}

/// Per-rank results, written by the rank threads under a lock.
private final class ResultSlots<T>: @unchecked Sendable {
    var slots: [Result<T, Error>?]
    let lock = NSLock()
    init(_ n: Int) { slots = Array(repeating: nil, count: n) }
}

/// One rank's view of an `InProcessGroup`. Reductions combine ranks in rank order 0, 1, …, so results are
/// identical on every rank.
public final class InProcessCommunicator: Communicator {
    public let rank: Int
    private let group: InProcessGroup
    public var size: Int { group.size }

    init(group: InProcessGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    private func reduce<T>(
        _ buffer: UnsafeMutableBufferPointer<T>, _ combine: @escaping (T, T) -> T
    ) {
        let n = buffer.count
        let mine = UnsafeMutableBufferPointer<T>.allocate(capacity: max(n, 1))
        defer { mine.deallocate() }
        for i in 0..<n { mine[i] = buffer[i] }
        group.exchange(rank: rank, pointer: UnsafeMutableRawPointer(mine.baseAddress!)) { all in
            for i in 0..<n {
                var acc = all[0].assumingMemoryBound(to: T.self)[i]
                for r in 1..<all.count { acc = combine(acc, all[r].assumingMemoryBound(to: T.self)[i]) }
                buffer[i] = acc
            }
        }
    }

    private static func combiner<T: Comparable & AdditiveArithmetic>(_ op: ReduceOperation) -> (T, T) -> T {
        switch op {
        case .sum: return { $0 + $1 }
        case .min: return { Swift.min($0, $1) }
        case .max: return { Swift.max($0, $1) }
        }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws {
        reduce(buffer, Self.combiner(operation))
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws {
        reduce(buffer, Self.combiner(operation))
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, _ operation: ReduceOperation) throws {
        reduce(buffer, Self.combiner(operation))
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        let n = bytes.count
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(n, 1), alignment: 16)
        defer { copy.deallocate() }
        if n > 0 { copy.copyMemory(from: UnsafeRawBufferPointer(bytes)) }
        group.exchange(rank: rank, pointer: copy.baseAddress!) { all in
            if n > 0 { bytes.copyMemory(from: UnsafeRawBufferPointer(start: all[root], count: n)) }
        }
    }

    public func allToAll(_ send: Pieces<UnsafeBufferPointer<Float>>, _ receive: Pieces<UnsafeMutableBufferPointer<Float>>) throws {
        // Publish where this rank's pieces are; each rank then copies what every rank sends it.
        let me = rank
        var published = send
        withUnsafeMutablePointer(to: &published) { p in
            group.exchange(rank: rank, pointer: UnsafeMutableRawPointer(p)) { all in
                for (q, pointer) in all.enumerated() {
                    let from = pointer.assumingMemoryBound(to: Pieces<UnsafeBufferPointer<Float>>.self).pointee
                    precondition(from.counts[me] == receive.counts[q], "allToAll: counts differ between ranks")
                    for i in 0..<receive.counts[q] {
                        receive.buffer[receive.offsets[q] + i] = from.buffer[from.offsets[me] + i]
                    }
                }
            }
        }
    }

    public func allGather(_ pieces: Pieces<UnsafeMutableBufferPointer<Float>>) throws {
        // Each rank publishes a copy of its own piece, so that no rank reads a buffer its owner is writing.
        let own = Array(pieces.buffer[pieces.range(rank)])
        own.withUnsafeBufferPointer { copy in
            var published = copy
            withUnsafeMutablePointer(to: &published) { p in
                group.exchange(rank: rank, pointer: UnsafeMutableRawPointer(p)) { all in
                    for (q, pointer) in all.enumerated() where q != rank {
                        let piece = pointer.assumingMemoryBound(to: UnsafeBufferPointer<Float>.self).pointee
                        precondition(piece.count == pieces.counts[q], "allGather: counts differ between ranks")
                        for i in 0..<piece.count { pieces.buffer[pieces.offsets[q] + i] = piece[i] }
                    }
                }
            }
        }
    }

    public func abort(_ message: String, code: Int32) -> Never {
        fatalError("in-process rank \(rank) aborted: \(message)")
    }

    /// Threads share memory: every rank's region is a plain allocation, and the fence is the group's barrier.
    /// `sharing: false` makes the group behave like ranks on several hosts.
    public func sharedRegions(floats: Int) throws -> SharedRegions? {
        guard group.sharing, size > 1 else { return nil }
        var regions: [UnsafeMutablePointer<Float>] = []
        let mine = group.allocate(floats)
        group.exchange(rank: rank, pointer: UnsafeMutableRawPointer(mine)) { all in
            regions = all.map { $0.assumingMemoryBound(to: Float.self) }
        }
        return InProcessRegions(floats: floats, regions: regions, group: group)
    }
}
