// The α–β cost model of descent's exchange: what one step of the sharded deterministic reduction costs at n ranks
// for p parameters, fitted to timings of the real exchange, and the measurement that feeds it.
import Collectives
import Training
import Foundation
import Numerics

/// T(n, p) = α · messages(n) + β · bytes(n, p) + γ · p, for the collectives one training step issues with the
/// deterministic reduction and a sharded optimizer step (one chunk block per rank):
/// - `MPI_Alltoallv` of the gradient sums: n − 1 messages (pairwise), (n − 1)/n · 4p bytes sent per rank;
/// - `MPI_Allreduce` of the few integer slots: ⌈log₂ n⌉ messages, no bytes to speak of;
/// - `MPI_Allgatherv` of the updated parameters: n − 1 messages (ring), (n − 1)/n · 4p bytes.
/// γ is the local work per parameter: finishing the tree over the n blocks of this rank's slice (p floats read in
/// all) and scaling it. Waiting for a slower rank is part of every measured exchange, so it is part of the fit.
public struct ExchangeModel: Equatable, Sendable {
    /// Seconds per message step.
    public var latency: Double
    /// Seconds per byte sent by one rank.
    public var secondsPerByte: Double
    /// Seconds per parameter of local work.
    public var secondsPerParameter: Double

    public init(latency: Double, secondsPerByte: Double, secondsPerParameter: Double) {
        (self.latency, self.secondsPerByte, self.secondsPerParameter) = (latency, secondsPerByte, secondsPerParameter)
    }

    /// The model's three terms for `ranks` ranks and `parameters` parameters.
    public static func terms(ranks n: Int, parameters p: Int) -> (messages: Double, bytes: Double, parameters: Double) {
        guard n > 1 else { return (0, 0, Double(p)) }
        var log2n = 0
        while 1 << log2n < n { log2n += 1 }
        return (Double(2 * (n - 1) + log2n), 2 * 4 * Double(p) * Double(n - 1) / Double(n), Double(p))
    }

    public func seconds(ranks: Int, parameters: Int) -> Double {
        let t = Self.terms(ranks: ranks, parameters: parameters)
        return latency * t.messages + secondsPerByte * t.bytes + secondsPerParameter * t.parameters
    }

    /// Bandwidth in bytes per second (1/β).
    public var bandwidth: Double { 1 / secondsPerByte }

    /// The same model on another network: its latency and bandwidth, this machine's local work.
    public func on(_ network: Network) -> ExchangeModel {
        ExchangeModel(latency: network.latency, secondsPerByte: 1 / network.bytesPerSecond, secondsPerParameter: secondsPerParameter)
    }

    /// The least-squares fit through timed exchanges, each weighted by its relative error. With `local` given,
    /// γ is taken from it (a network's fit borrows this machine's γ) and only α and β are fitted. A coefficient
    /// the data would make negative is set to 0 and the rest refitted. nil without enough distinct points.
    public static func fit(_ points: [Timing], local: Double? = nil) -> ExchangeModel? {
        var free = local == nil ? [0, 1, 2] : [0, 1]
        while !free.isEmpty {
            guard let solution = leastSquares(points, columns: free, local: local ?? 0) else { return nil }
            if let negative = free.indices.first(where: { solution[$0] < 0 }) {
                free.remove(at: negative)
                continue
            }
            var c = [0.0, 0.0, local ?? 0]
            for (i, column) in free.enumerated() { c[column] = solution[i] }
            return ExchangeModel(latency: c[0], secondsPerByte: c[1], secondsPerParameter: c[2])
        }
        return nil
    }

    /// Solves the weighted normal equations for the given term columns (0 α, 1 β, 2 γ); `local` γ is subtracted
    /// from each time when column 2 is not fitted.
    private static func leastSquares(_ points: [Timing], columns: [Int], local: Double) -> [Double]? {
        let k = columns.count
        guard points.count >= k else { return nil }
        var a = [[Double]](repeating: [Double](repeating: 0, count: k), count: k), b = [Double](repeating: 0, count: k)
        for p in points {
            let t = terms(ranks: p.ranks, parameters: p.parameters)
            let all = [t.messages, t.bytes, t.parameters]
            let x = columns.map { all[$0] }
            let y = p.seconds - (columns.contains(2) ? 0 : local * t.parameters)
            let w = 1 / (p.seconds * p.seconds)
            for i in 0..<k {
                b[i] += w * x[i] * y
                for j in 0..<k { a[i][j] += w * x[i] * x[j] }
            }
        }
        return solve(a, b)
    }

    /// Gaussian elimination with partial pivoting; nil for a singular system.
    static func solve(_ a: [[Double]], _ b: [Double]) -> [Double]? {
        var m = a, v = b
        let n = v.count
        for c in 0..<n {
            guard let pivot = (c..<n).max(by: { abs(m[$0][c]) < abs(m[$1][c]) }), abs(m[pivot][c]) > 1e-300 else { return nil }
            m.swapAt(c, pivot)
            v.swapAt(c, pivot)
            for r in (c + 1)..<n {
                let f = m[r][c] / m[c][c]
                for j in c..<n { m[r][j] -= f * m[c][j] }
                v[r] -= f * v[c]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            x[r] = (v[r] - ((r + 1)..<n).reduce(0) { $0 + m[r][$1] * x[$1] }) / m[r][r]
        }
        guard x.allSatisfy(\.isFinite) else { return nil }
        return x
    }

    /// One timed exchange: the median seconds per step, slowest rank, for `parameters` parameters on `ranks` ranks
    /// over `transport` (a label: shm on one host, tcp between hosts).
    public struct Timing: Equatable, Sendable {
        public var transport: String
        public var ranks: Int
        public var parameters: Int
        public var seconds: Double

        public init(transport: String, ranks: Int, parameters: Int, seconds: Double) {
            (self.transport, self.ranks, self.parameters, self.seconds) = (transport, ranks, parameters, seconds)
        }

        public static let header = "transport,ranks,parameters,seconds"
        public var csvLine: String { "\(transport),\(ranks),\(parameters),\(seconds)" }
    }

    /// Reads the CSV `descent time-exchange` appends to.
    public static func readTimings(_ path: String) throws -> [Timing] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw OutputError(path: path, reason: "no such readable file (write it with descent time-exchange)")
        }
        var lines = text.split(separator: "\n").map(String.init)
        guard lines.first == Timing.header else {
            throw OutputError(path: path, reason: "expected the header '\(Timing.header)', found '\(lines.first ?? "")'")
        }
        lines.removeFirst()
        return try lines.enumerated().map { i, line in
            let f = line.split(separator: ",").map(String.init)
            guard f.count == 4, let n = Int(f[1]), n >= 1, let p = Int(f[2]), p >= 1, let s = Double(f[3]), s > 0 else {
                throw OutputError(path: path, reason: "line \(i + 2): expected transport,ranks,parameters,seconds, found '\(line)'")
            }
            return Timing(transport: f[0], ranks: n, parameters: p, seconds: s)
        }
    }

    /// Times `repeats` exchanges of a training step's shape (one chunk of `chunk` samples per rank, sums of
    /// `parameters` floats, the gradient left sharded, then the parameters gathered) and returns the median of
    /// the slowest rank's seconds, the same on every rank.
    public static func time(parameters: Int, repeats: Int, chunk: Int = 64, on communicator: Communicator) throws -> Double {
        let (n, rank) = (communicator.size, communicator.rank)
        let exchange = GradientExchange(parameterCount: parameters, ranks: n, rank: rank, reduction: .deterministic, chunk: chunk,
                                        ownership: .elements)
        var parameterBuffer = [Float](repeating: 1, count: parameters)
        var times: [Double] = []
        var token: [Float] = [0]
        for _ in 0..<(repeats + 1) {
            try communicator.allreduceSum(&token)
            let out = try exchange.exchange(count: chunk * n, measureNoise: false, requestStop: false, wholeGradient: false,
                                            over: communicator) { _, positions, gradient in
                gradient.update(repeating: Float(positions.count), count: parameters)
                return 1
            }
            let seconds = try parameterBuffer.withUnsafeMutableBufferPointer { p in
                try exchange.update(p, over: communicator) { _, _ in }
            }
            var slowest = [out.exchangeSeconds + seconds.gather]
            try communicator.allreduce(&slowest, .max)
            times.append(slowest[0])
        }
        times.removeFirst()  // the first exchange allocates its buffers
        return times.sorted()[times.count / 2]
    }
}

/// A network a projection assumes: its latency (seconds per message) and bandwidth (bytes per second).
public struct Network: Equatable, Sendable {
    public var latency: Double
    public var bytesPerSecond: Double

    public init(latency: Double, bytesPerSecond: Double) { (self.latency, self.bytesPerSecond) = (latency, bytesPerSecond) }

    /// "100Gb/s,2us": a bandwidth in Gb/s, Mb/s or GB/s and a latency in us (µs), ns or ms, in either order.
    public init?(_ text: String) {
        var latency: Double?, bandwidth: Double?
        for part in text.lowercased().split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let units: [(String, Double, Bool)] = [("gb/s", 1e9 / 8, true), ("mb/s", 1e6 / 8, true), ("gbyte/s", 1e9, true),
                                                   ("us", 1e-6, false), ("µs", 1e-6, false), ("ns", 1e-9, false), ("ms", 1e-3, false)]
            guard let (suffix, scale, isRate) = units.first(where: { part.hasSuffix($0.0) }),
                  let value = Double(part.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value > 0 else { return nil }
            if isRate { bandwidth = value * scale } else { latency = value * scale }
        }
        guard let latency, let bandwidth else { return nil }
        self.init(latency: latency, bytesPerSecond: bandwidth)
    }

    public var text: String {
        "\(shortNumber(bytesPerSecond * 8 / 1e9)) Gb/s, \(shortNumber(latency * 1e6)) µs"
    }
}
