// Seeds as a dimension: the spread statistics (against published tables and hand-worked values), the seeds key,
// and the median curve with its quartile band.
import DescentTestSupport
import Foundation
import Testing
@testable import Config
@testable import Experiments
@testable import Numerics
@testable import Reports

@Suite("Seeds and their spread")
struct SeedsTests {
    @Test("Student's t 0.975 quantiles equal the published table (Fisher and Yates; NIST handbook 1.3.6.7.2)",
          arguments: [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (29, 2.045), (100, 1.984)])
    func studentT(_ c: (degrees: Int, table: Double)) {
        #expect(abs(Spread.studentT975(degrees: c.degrees) - c.table) < 0.0006, "\(c.degrees): \(Spread.studentT975(degrees: c.degrees))")
    }

    @Test("mean, sample std, linear quartiles and the t interval of a hand-worked sample")
    func spreadOfSample() throws {
        // 1, 2, 3, 4, 10: mean 4, squares of deviations 9 + 4 + 1 + 0 + 36 = 50, variance 50/4 = 12.5;
        // quartiles at positions 1 and 3 of 0...4: 2 and 4; half-width 2.776 · √12.5 / √5 = 4.3898.
        let s = try #require(Spread([10, 2, 1, 4, 3, .nan]))
        #expect(s.count == 5 && s.mean == 4 && abs(s.std - 12.5.squareRoot()) < 1e-12)
        #expect(s.median == 3 && s.q1 == 2 && s.q3 == 4)
        #expect(abs(s.high - 4 - 4.3898) < 0.001 && abs(4 - s.low - 4.3898) < 0.001)
        // Between order statistics: 0.25 of 1, 2 lies at 1.25.
        #expect(Spread.quantile([1, 2], 0.25) == 1.25)
        let one = try #require(Spread([0.5]))
        #expect(one.std == 0 && one.low == 0.5 && one.high == 0.5)
        #expect(Spread([]) == nil && Spread([.infinity]) == nil)
    }

    @Test("seeds: a count counts up from seed, a list is taken as it is; each seed's config has its seed and no list")
    func seedsKey() throws {
        let base = "name: s\nseed: 7\ndata: {source: synthetic}\n"
        let counted = try RunConfig.load(yaml: base + "seeds: 3\n", fileName: "c.yaml")
        #expect(counted.seeds == [7, 8, 9])
        #expect(counted.perSeed.map(\.seed) == [7, 8, 9] && counted.perSeed.allSatisfy { $0.seeds.isEmpty })
        let listed = try RunConfig.load(yaml: base, fileName: "c.yaml", overrides: ["seeds=[4, 1]"])
        #expect(listed.seeds == [4, 1])
        // The resolved YAML keeps the list and loads back as the same config; without seeds it has no such line.
        #expect(try RunConfig.load(yaml: counted.resolvedYAML, fileName: "r.yaml") == counted)
        let plain = try RunConfig.load(yaml: base, fileName: "c.yaml")
        #expect(plain.perSeed == [plain] && !plain.resolvedYAML.contains("seeds"))
        for bad in ["seeds: 0", "seeds: [1, 1]", "seeds: [1, x]", "seeds: []"] {
            #expect {
                try RunConfig.load(yaml: base + bad + "\n", fileName: "c.yaml")
            } throws: { e in
                "\(e)".contains("c.yaml") && "\(e)".contains("seeds")
                    && "\(e)".contains(bad.hasSuffix("x]") ? "seeds[1]: expected an integer ≥ 0, as every item of seeds, found 'x'" : "a number of seeds")
            }
        }
    }

    @Test("the median curve over seeds lies between its quartiles, point by point up to the shortest run")
    func medianCurve() {
        let runs: [[SIMD2<Double>]] = [[SIMD2(0, 1), SIMD2(1, 4), SIMD2(2, 9)], [SIMD2(0, 3), SIMD2(1, 2)], [SIMD2(0, 2), SIMD2(1, 6)]]
        let (median, band) = Comparison.medianCurve(runs)
        #expect(median == [SIMD2(0, 2), SIMD2(1, 4)])
        #expect(band.lower == [SIMD2(0, 1.5), SIMD2(1, 3)] && band.upper == [SIMD2(0, 2.5), SIMD2(1, 5)])
        var chart = Chart(title: "t", x: Axis("x"), y: Axis("y"))
        chart.series = [Series(label: "a", points: median)]
        chart.series[0].band = band
        let svg = chart.svg()
        #expect(svg.contains("data-band=\"quartiles\"") && xmlError(svg) == nil)
    }
}
