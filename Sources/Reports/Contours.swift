// Contour lines of a function sampled on a grid (marching squares, segments joined into polylines), and the
// choice of levels: log-spaced when the values span decades above a known floor, evenly spaced otherwise.
import Foundation

/// A function sampled at (nx + 1) × (ny + 1) grid points over a rectangle.
public struct Grid: Sendable {
    public let x: ClosedRange<Double>
    public let y: ClosedRange<Double>
    public let nx: Int
    public let ny: Int
    /// Row-major: values[j * (nx + 1) + i] is the value at (x_i, y_j).
    public let values: [Double]

    public init(x: ClosedRange<Double>, y: ClosedRange<Double>, nx: Int, ny: Int, _ f: (Double, Double) -> Double) {
        precondition(nx > 0 && ny > 0)
        self.x = x
        self.y = y
        self.nx = nx
        self.ny = ny
        var v = [Double]()
        v.reserveCapacity((nx + 1) * (ny + 1))
        for j in 0...ny {
            for i in 0...nx { v.append(f(xAt(i, x, nx), xAt(j, y, ny))) }
        }
        values = v
    }

    @inline(__always) func value(_ i: Int, _ j: Int) -> Double { values[j * (nx + 1) + i] }
    @inline(__always) func xCoordinate(_ i: Int) -> Double { xAt(i, x, nx) }
    @inline(__always) func yCoordinate(_ j: Int) -> Double { xAt(j, y, ny) }
}

@inline(__always)
private func xAt(_ i: Int, _ r: ClosedRange<Double>, _ n: Int) -> Double {
    r.lowerBound + (r.upperBound - r.lowerBound) * Double(i) / Double(n)
}

/// One contour level's lines, in data coordinates.
public struct ContourLevel: Sendable {
    public var level: Double
    public var lines: [[SIMD2<Double>]]
}

/// How contour levels are spaced.
public enum ContourSpacing: String, CaseIterable, Sendable {
    /// log when the values lie above a known floor and span more than two decades; linear otherwise.
    case auto, log, linear
}

/// `count` contour levels for `grid`. With log spacing the levels are floor + 10^k for k evenly spaced between
/// the 1st percentile of (value − floor) and the maximum, so the lines crowd where the function is flat.
public func contourLevels(_ grid: Grid, count: Int, spacing: ContourSpacing, floor: Double?) -> (levels: [Double], spacing: ContourSpacing) {
    let finite = grid.values.filter(\.isFinite).sorted()
    guard let lo = finite.first, let hi = finite.last, hi > lo, count > 0 else { return ([], .linear) }
    var kind = spacing
    let base = floor ?? lo
    let above = finite.map { $0 - base }.filter { $0 > 0 }
    let bottom = above.isEmpty ? 0 : above[above.count / 100]
    if kind == .auto {
        kind = floor != nil && lo >= base - 1e-12 && bottom > 0 && (hi - base) / bottom > 100 ? .log : .linear
    }
    if kind == .log, bottom > 0, hi - base > bottom {
        let a = log10(bottom), b = log10(hi - base)
        let levels = (0..<count).map { k in base + pow(10, a + (b - a) * Double(k) / Double(max(count - 1, 1))) }
        return (levels, .log)
    }
    // Evenly spaced, strictly inside the range so that no level is a single grid point.
    let step = (hi - lo) / Double(count + 1)
    return ((1...count).map { lo + step * Double($0) }, .linear)
}

/// The contour lines of `grid` at each level.
public func contours(_ grid: Grid, levels: [Double]) -> [ContourLevel] {
    levels.map { ContourLevel(level: $0, lines: contourLines(grid, level: $0)) }
}

/// Marching squares at one level. A corner is "above" when its value ≥ level; ambiguous cells (two opposite
/// corners above) are resolved by the mean of the four corners.
func contourLines(_ g: Grid, level: Double) -> [[SIMD2<Double>]] {
    let edges = GridEdges(nx: g.nx)
    return polylines(contourSegments(g, level: level, edges)).map { chain in chain.map { edges.crossing($0, g, level: level) } }
}

/// The edges between a grid's points, by key: horizontal (i, j)–(i+1, j) is 2·(j·(nx+1)+i), vertical (i, j)–(i, j+1)
/// is 2·(j·(nx+1)+i)+1.
struct GridEdges {
    let nx: Int
    func horizontal(_ i: Int, _ j: Int) -> Int { 2 * (j * (nx + 1) + i) }
    func vertical(_ i: Int, _ j: Int) -> Int { 2 * (j * (nx + 1) + i) + 1 }

    /// Where the level crosses edge `key`, by linear interpolation between its ends.
    func crossing(_ key: Int, _ g: Grid, level: Double) -> SIMD2<Double> {
        let cell = key / 2
        let i = cell % (nx + 1), j = cell / (nx + 1)
        let (i2, j2) = key % 2 == 0 ? (i + 1, j) : (i, j + 1)
        let a = g.value(i, j), b = g.value(i2, j2)
        let t = (level - a) / (b - a)
        let p = SIMD2(g.xCoordinate(i), g.yCoordinate(j))
        let q = SIMD2(g.xCoordinate(i2), g.yCoordinate(j2))
        return p + (q - p) * t
    }
}

/// Every cell's pieces of the level line, as pairs of the edges they join.
func contourSegments(_ g: Grid, level: Double, _ e: GridEdges) -> [(Int, Int)] {
    var segments: [(Int, Int)] = []
    for j in 0..<g.ny {
        for i in 0..<g.nx {
            let z0 = g.value(i, j), z1 = g.value(i + 1, j), z2 = g.value(i + 1, j + 1), z3 = g.value(i, j + 1)
            guard z0.isFinite, z1.isFinite, z2.isFinite, z3.isFinite else { continue }
            let index = (z0 >= level ? 1 : 0) | (z1 >= level ? 2 : 0) | (z2 >= level ? 4 : 0) | (z3 >= level ? 8 : 0)
            let bottom = e.horizontal(i, j), right = e.vertical(i + 1, j), top = e.horizontal(i, j + 1), left = e.vertical(i, j)
            switch index {
            case 1, 14: segments.append((left, bottom))
            case 2, 13: segments.append((bottom, right))
            case 3, 12: segments.append((left, right))
            case 4, 11: segments.append((right, top))
            case 6, 9: segments.append((bottom, top))
            case 7, 8: segments.append((left, top))
            case 5, 10:
                let centreAbove = (z0 + z1 + z2 + z3) / 4 >= level
                // index 5: corners 0 and 2 above. Joined through the centre when it is above too.
                if (index == 5) == centreAbove {
                    segments.append((left, top)); segments.append((bottom, right))
                } else {
                    segments.append((left, bottom)); segments.append((right, top))
                }
            default: break  // 0, 15: no crossing
            }
        }
    }
    return segments
}

/// Segments that share an edge joined into chains of edges, each segment used once.
func polylines(_ segments: [(Int, Int)]) -> [[Int]] {
    var byEdge: [Int: [Int]] = [:]
    for (k, s) in segments.enumerated() {
        byEdge[s.0, default: []].append(k)
        byEdge[s.1, default: []].append(k)
    }
    var used = [Bool](repeating: false, count: segments.count)
    func extend(from edge: Int, _ chain: inout [Int]) {
        var edge = edge
        while let next = byEdge[edge]?.first(where: { !used[$0] }) {
            used[next] = true
            let s = segments[next]
            edge = s.0 == edge ? s.1 : s.0
            chain.append(edge)
        }
    }
    var chains: [[Int]] = []
    for k in segments.indices where !used[k] {
        used[k] = true
        var forward = [segments[k].0, segments[k].1]
        extend(from: segments[k].1, &forward)
        var backward: [Int] = []
        extend(from: segments[k].0, &backward)
        chains.append(backward.reversed() + forward)
    }
    return chains
}
