// The softmax cross-entropy every classifier ends with, written once.
import Numerics
#if canImport(Glibc)
import Glibc
#endif

public enum Softmax {
    /// Over each of `rows` rows of `classes` logits in `z`: adds the cross-entropy loss and the correct predictions
    /// to `totals`, and leaves the softmax probabilities in `z` — or with `lossGradient` the loss's gradient with
    /// respect to the logits (softmax − one-hot) — in the same pass over the row.
    public static func crossEntropy(_ z: UnsafeMutablePointer<Float>, labels: UnsafePointer<Int32>, rows: Int, classes: Int,
                                    lossGradient: Bool, totals: inout LossTotals) {
        for r in 0..<rows {
            let z = z + r * classes
            let label = Int(labels[r])
            var maximum = z[0], argmax = 0
            for c in 1..<classes where z[c] > maximum { maximum = z[c]; argmax = c }
            // loss = log Σ exp(z − max) − (z_label − max): finite even when exp(z_label − max) underflows to 0
            let shiftedLabel = z[label] - maximum
            var sum: Float = 0
            for c in 0..<classes { z[c] = expf(z[c] - maximum); sum += z[c] }
            let inverse = 1 / sum
            totals.lossSum += Double(logf(sum)) - Double(shiftedLabel)
            for c in 0..<classes { z[c] *= inverse }
            if lossGradient { z[label] -= 1 }
            if argmax == label { totals.correct += 1 }
        }
        totals.count += rows
    }

    /// The first index of the largest of `count` values.
    public static func argmax(_ p: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        for c in 1..<count where p[c] > p[best] { best = c }
        return best
    }
}

extension Softmax {
    /// R{softmax − one-hot} = (diag p − p·pᵀ)·R{z} for each row: turns the logits' directional derivatives `rz`
    /// in place into those of the loss's gradient, given that gradient `d` (softmax − one-hot, as `crossEntropy`
    /// leaves it), from which p is read back.
    public static func directionalLossGradient(_ rz: UnsafeMutablePointer<Float>, lossGradient d: UnsafePointer<Float>,
                                               labels: UnsafePointer<Int32>, rows: Int, classes: Int) {
        for r in 0..<rows {
            let rz = rz + r * classes, d = d + r * classes, label = Int(labels[r])
            var mean: Float = 0
            for c in 0..<classes { mean += (c == label ? d[c] + 1 : d[c]) * rz[c] }
            for c in 0..<classes { rz[c] = (c == label ? d[c] + 1 : d[c]) * (rz[c] - mean) }
        }
    }
}
