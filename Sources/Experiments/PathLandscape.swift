// The surface the lab's paths run on: an analytic test function, or a finite sum's mean loss over its data.
import Config
import Datasets
import Models

/// The surface the paths run on: an analytic function, or a finite sum's mean loss over its training data.
public struct Landscape: Sendable {
    public let title: String
    public let formula: String
    /// The global minima (for the saddle: the saddle point).
    public let minima: [SIMD2<Double>]
    /// Minima that are not global.
    public let localMinima: [SIMD2<Double>]
    public let minimumValue: Double?
    public let minimaName: String
    /// A finite sum's training and test data.
    public let data: (train: PointSet, test: PointSet)?
    private let f: @Sendable (Double, Double) -> Double

    public func value(_ x: Double, _ y: Double) -> Double { f(x, y) }

    public init(_ c: PathConfig) {
        switch c.function {
        case .test(let fn):
            (title, formula, minima, localMinima, minimumValue, minimaName) =
                (fn.title, fn.formula, fn.minima, fn.localMinima, fn.minimumValue, fn.minimaName)
            data = nil
            f = { fn.value($0, $1) }
        case .finiteSum(let sum):
            let train = sum.data(count: c.samples, seed: c.seed), test = sum.data(count: max(2, c.samples / 4), seed: c.seed, test: true)
            let m = sum.minimum(over: train)
            (title, formula, minima, localMinima, minimaName) = (sum.title, sum.formula, [m], [], "minimum")
            minimumValue = sum.meanLoss(m.x, m.y, over: train)
            data = (train, test)
            f = { sum.meanLoss($0, $1, over: train) }
        }
    }

    /// The distance from (x, y) to the nearest global minimum.
    public func distanceToMinimum(_ x: Double, _ y: Double) -> Double {
        minima.map { ((x - $0.x) * (x - $0.x) + (y - $0.y) * (y - $0.y)).squareRoot() }.min()!
    }

    /// Whether (x, y) is nearer a global minimum than any local one.
    public func nearestIsGlobal(_ x: Double, _ y: Double) -> Bool {
        let local = localMinima.map { ((x - $0.x) * (x - $0.x) + (y - $0.y) * (y - $0.y)).squareRoot() }.min() ?? .infinity
        return distanceToMinimum(x, y) < local
    }
}
