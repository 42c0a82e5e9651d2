// The spectrum of a saved model's Hessian (`descent hessian`): the top eigenvalues by Lanczos, the most negative,
// the trace by Hutchinson's estimator deflated by the converged top eigenvectors, and the spectral density by
// stochastic Lanczos quadrature, all over the curvature subset and with the same bits at any number of ranks.
import Foundation
import Models
import Numerics
import Reports

/// What `descent hessian` measured.
public struct HessianSpectrum: Sendable {
    /// The largest eigenvalues, largest first, and their residual bounds ‖H·x − θ·x‖.
    public var top: [Double]
    public var residuals: [Double]
    /// The smallest Ritz value of the same run.
    public var lambdaMin: Double
    /// The trace: the converged top eigenvalues plus Hutchinson's mean over probes of the rest, with its standard error
    /// (NaN with no probes: not measured).
    public var trace: Double
    public var traceError: Double
    /// Eigenvalues taken out of the trace's probes (their Ritz vectors converged).
    public var deflated: Int
    /// No nodes with no density probes: not measured.
    public var density: SpectralDensity
    /// The top eigenvector, unit norm, in the parameter buffer's layout.
    public var topVector: [Float]
    public var samples: Int
    public var products: Int
    public var seconds: Double
}

/// How `descent hessian` measures. No trace probes or no density probes leave the trace or the density out, so
/// that the top eigenvalues alone cost `iterations` products.
public struct SpectrumOptions: Sendable {
    public var top = 5
    public var iterations = 60
    public var traceProbes = 100
    public var densityProbes = 5
    public var densityIterations = 60
    public var seed: UInt64 = 1
    public var gaussNewton = false

    public init() {}
}

extension Trainer {
    /// The spectrum of the Hessian of the mean loss over the curvature subset at the first replica's model parameters.
    public func hessianSpectrum(_ o: SpectrumOptions) throws -> HessianSpectrum {
        let start = monotonicSeconds()
        let samples = curvatureSamples(), point = try modelParameters(replicas[0]), n = point.count
        var products = 0
        let apply = { (v: [Double]) throws -> [Double] in
            products += 1
            return try self.hessianProduct(0, at: point, v, samples: samples, gaussNewton: o.gaussNewton)
        }
        var rng = Xoshiro256(seed: o.seed, stream: 0x4E55)
        let lanczos = try Lanczos.run(start: Lanczos.rademacher(n, &rng), iterations: o.iterations, vectors: true, apply: apply)
        // Deflation: the Ritz pairs whose residual is below 1e-3 of the largest eigenvalue count exactly; the probes
        // see only the rest of the spectrum, v ↦ P·H·P·v with P = I − Q·Qᵀ.
        let scale = abs(lanczos.values.last ?? 1)
        let converged = lanczos.values.indices.filter { lanczos.residuals[$0] < 1e-3 * scale }
        let q = converged.map { lanczos.vectors[$0] }
        func project(_ v: [Double]) -> [Double] {
            var w = v
            for x in q { Lanczos.subtract(Lanczos.dot(w, x), x, from: &w) }
            return w
        }
        let probes = try Lanczos.traceProbes(dimension: n, probes: o.traceProbes, seed: o.seed) { v in project(try apply(project(v))) }
        let rest = Spread(probes)
        let density = try Lanczos.density(dimension: n, probes: o.densityProbes, iterations: o.densityIterations, seed: o.seed, apply: apply)
        let k = min(o.top, lanczos.values.count)
        return HessianSpectrum(
            top: Array(lanczos.values.reversed().prefix(k)), residuals: Array(lanczos.residuals.reversed().prefix(k)),
            lambdaMin: lanczos.values.first ?? .nan,
            trace: o.traceProbes == 0 ? .nan : converged.reduce(0) { $0 + lanczos.values[$1] } + (rest?.mean ?? 0),
            traceError: (rest?.std ?? .nan) / Double(max(o.traceProbes, 1)).squareRoot(), deflated: converged.count,
            density: density, topVector: (lanczos.vectors.last ?? []).map(Float.init), samples: samples.count,
            products: products, seconds: monotonicSeconds() - start)
    }
}

extension HessianSpectrum {
    /// hessian.json, density.svg (when the density was measured; an earlier one is removed when not) and
    /// top_eigenvector.safetensors in `directory`.
    public func write(to directory: String, model: any Model, title: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func number(_ v: Double) -> Any { v.isFinite ? v : "\(v)" }
        let json: [String: Any] = [
            "top_eigenvalues": top.map(number), "residuals": residuals.map(number), "lambda_min": number(lambdaMin),
            "trace": number(trace), "trace_standard_error": number(traceError), "deflated_eigenvalues": deflated,
            "samples": samples, "hessian_vector_products": products, "seconds": seconds,
            "density_nodes": density.nodes.map { ["value": number($0.value), "weight": number($0.weight)] },
        ]
        try writeAtomically(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]),
                            to: directory + "/hessian.json")
        let densityFile = directory + "/density.svg"
        if density.nodes.isEmpty {
            if FileManager.default.fileExists(atPath: densityFile) { try FileManager.default.removeItem(atPath: densityFile) }
        } else {
            try writeAtomically(densityChart(title: title).svg(id: "d-"), to: densityFile)
        }
        try writeAtomically(SafeTensors.encode(model.exportTensors(topVector), metadata: [
            "format": "pt", "eigenvalue": "\(top.first ?? .nan)", "model": model.shapeText,
        ]), to: directory + "/top_eigenvector.safetensors")
    }

    /// The spectral density on a log axis, PyHessian's picture.
    func densityChart(title: String) -> Chart {
        let range = density.range, pad = 0.05 * max(range.upperBound - range.lowerBound, 1e-6)
        let grid = stride(from: range.lowerBound - pad, through: range.upperBound + pad, by: (range.upperBound - range.lowerBound + 2 * pad) / 1000).map { $0 }
        let points = zip(grid, density.values(at: grid)).compactMap { $1 > 1e-12 ? SIMD2($0, $1) : nil }
        return RunReport.curves("\(title): Hessian spectral density",
                                subtitle: "stochastic Lanczos quadrature, \(density.nodes.count) nodes; λ_max \(significant(top.first ?? .nan, 4)), "
                                    + "trace \(significant(trace, 4)) ± \(significant(traceError, 2))",
                                x: "eigenvalue", y: "density (log)", log: true, [("density", points, Palette.style(0))])
    }
}
