// Times optimizer updates on flat buffers of a given size, without data or MPI: the cost of the update alone.
import Config
import Training
import Foundation
import Numerics
import Optimizers

public enum OptimizerTiming {
    /// Seconds per update of each of `repeats` rounds of `updates` updates on `parameterCount` parameters,
    /// with a fixed non-trivial gradient. Returns the per-update time of every round.
    public static func measure(_ settings: OptimizerSettings, parameterCount n: Int, updates: Int = 50,
                               repeats: Int = 7) -> [Double] {
        let optimizer = settings.makeOptimizer(parameterCount: n)
        var theta = (0..<n).map { Float(sin(Double($0) * 0.37)) * 0.05 }
        let gradient = (0..<n).map { Float(cos(Double($0) * 0.11)) * 1e-2 }
        var rounds: [Double] = []
        gradient.withUnsafeBufferPointer { g in
            theta.withUnsafeMutableBufferPointer { p in
                for _ in 0..<2 { optimizer.update(p, gradient: g) }  // warm the caches and state
                for _ in 0..<repeats {
                    let start = monotonicSeconds()
                    for _ in 0..<updates { optimizer.update(p, gradient: g) }
                    rounds.append((monotonicSeconds() - start) / Double(updates))
                }
            }
        }
        return rounds
    }
}
