// How work is cut between ranks.

/// The contiguous, balanced part of `range` that `rank` of `size` owns: sizes differ by at most one, the
/// lower ranks take the extra items.
public func shard(of range: Range<Int>, rank: Int, size: Int) -> Range<Int> {
    let n = range.count, base = n / size, extra = n % size
    let lo = range.lowerBound + rank * base + min(rank, extra)
    return lo..<(lo + base + (rank < extra ? 1 : 0))
}
