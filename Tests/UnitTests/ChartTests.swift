// Charts: ticks, number formatting, scales, contour lines; the SVG of every path preset is well-formed XML and
// renders (rsvg-convert) to a picture that shows every optimizer's colour.
import Config
import DescentTestSupport
import Experiments
import Foundation
import FoundationXML
import Reports
import Testing
import Training

@Suite struct ChartPartsTests {
    @Test("an axis is logarithmic when its positive values span two decades or more, linear otherwise")
    func fittingScale() {
        #expect(ScaleKind.fitting([50, 295, 2345, 9375]) == .log)   // steps of batch full … batch 32
        #expect(ScaleKind.fitting([1, 99.9]) == .linear)
        #expect(ScaleKind.fitting([1, 100]) == .log)
        #expect(ScaleKind.fitting([0, 5, 5000]) == .linear)         // a zero cannot go on a log axis
        #expect(ScaleKind.fitting([]) == .linear)
    }

    @Test("smoothing: the Kaiser window of 11 points (numpy's kaiser(11, 2)) in the middle, narrowing to the first and last values")
    func smoothing() {
        let x = [2.6, 2.3, 2.1, 1.8, 1.7, 1.5, 1.45, 1.3, 1.2, 1.25, 1.1, 1.0, 0.95, 0.9, 0.92, 0.85]
        let y = smoothed(x)
        #expect(y.count == x.count && y.first == x.first && y.last == x.last)
        // numpy: np.dot(np.kaiser(11, 2) / np.kaiser(11, 2).sum(), x[2:13]), and x[5:16]; np.kaiser(3, 2) at index 1.
        #expect(abs(y[7] - 1.3783861510398405) < 1e-12 && abs(y[10] - 1.1207720062427213) < 1e-12)
        #expect(abs(y[1] - 2.323366750031928) < 1e-12)
        #expect(smoothed(Array(repeating: 3, count: 15)).allSatisfy { abs($0 - 3) < 1e-12 })
    }

    @Test("ticks fall on a 1-2-5 grid, or on decades on a log axis")
    func ticks() {
        #expect(linearTicks(0...10, target: 5) == [0, 2, 4, 6, 8, 10])
        #expect(linearTicks(-10...10, target: 4) == [-10, -5, 0, 5, 10])
        #expect(linearTicks(-4.5...4.5, target: 6) == [-4, -2, 0, 2, 4])
        #expect(linearTicks(0.013...0.051, target: 4) == [0.02, 0.03, 0.04, 0.05])
        #expect(logTicks(1e-3...1e2) == [1e-3, 1e-2, 1e-1, 1, 10, 100])
        #expect(logTicks(2...30) == [2, 5, 10, 20])
        // A narrow log axis still gets two labels: every digit, then a linear grid.
        #expect(logTicks(210...480) == [300, 400])
        #expect(logTicks(1100...1900).count >= 2 && logTicks(1100...1900).allSatisfy { (1100...1900).contains($0) })
        #expect(logTicks(1e-30...1e6).count <= 8)
    }

    @Test("labels and coordinates are short and exact")
    func formatting() {
        #expect(tickLabel(0) == "0")
        #expect(tickLabel(0.25) == "0.25")
        #expect(tickLabel(-4.5) == "-4.5")
        #expect(tickLabel(25000) == "25000")
        #expect(tickLabel(1e-6) == "1e-6")
        #expect(tickLabel(2.5e6) == "2.5e6")
        #expect(svgNumber(12.5) == "12.5")
        #expect(svgNumber(3.07) == "3.07")
        #expect(svgNumber(-0.004) == "0")
        #expect(svgNumber(-7.25) == "-7.25")
        #expect(svgNumber(100) == "100")
        #expect(xmlEscaped("a < b & \"c\"") == "a &lt; b &amp; &quot;c&quot;")
    }

    @Test("scales map the domain onto the pixels, log scales by decades, y upwards")
    func scales() {
        let x = Scale(.linear, domain: -10...10, pixels: 100...300)
        #expect(x.pixel(-10) == 100 && x.pixel(0) == 200 && x.pixel(10) == 300)
        let y = Scale(.log, domain: 1e-2...1e2, pixels: 0...400, flipped: true)
        #expect(abs(y.pixel(1e2) - 0) < 1e-9 && abs(y.pixel(1) - 200) < 1e-9 && abs(y.pixel(1e-2) - 400) < 1e-9)
    }

    @Test("contour lines of x² + y² at level 1 trace the unit circle as one closed line")
    func circle() {
        let grid = Grid(x: -2...2, y: -2...2, nx: 80, ny: 80) { $0 * $0 + $1 * $1 }
        let levels = contours(grid, levels: [1])
        #expect(levels.count == 1 && levels[0].lines.count == 1)
        let line = levels[0].lines[0]
        #expect(line.count > 100)
        for p in line { #expect(abs((p.x * p.x + p.y * p.y).squareRoot() - 1) < 2e-3, "\(p)") }
        #expect(line.first! == line.last!)
    }

    @Test("levels are log-spaced above a floor when the values span decades, evenly spaced otherwise")
    func levels() {
        let rosenbrock = Grid(x: -2...2, y: -1...3, nx: 100, ny: 100) { (1 - $0) * (1 - $0) + 100 * ($1 - $0 * $0) * ($1 - $0 * $0) }
        let log = contourLevels(rosenbrock, count: 10, spacing: .auto, floor: 0)
        #expect(log.spacing == .log && log.levels.count == 10)
        let ratios = zip(log.levels.dropFirst(), log.levels).map { $0 / $1 }
        #expect(ratios.allSatisfy { abs($0 - ratios[0]) < 1e-9 * ratios[0] })
        let saddle = Grid(x: -2...2, y: -2...2, nx: 50, ny: 50) { $0 * $0 - $1 * $1 }
        let linear = contourLevels(saddle, count: 7, spacing: .auto, floor: nil)
        #expect(linear.spacing == .linear && linear.levels == [-3, -2, -1, 0, 1, 2, 3])
    }
}

