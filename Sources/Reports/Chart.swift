// An x–y chart as SVG: title, axes with ticks and labels, light grid, optional contour lines behind the data,
// one line per series in its own colour, point markers, and a legend beside the plot. Charts can be placed
// side by side in a Figure.
import Foundation

/// One line of data.
public struct Series: Sendable {
    public var label: String
    public var points: [SIMD2<Double>]
    /// nil: the palette's style for the series' position.
    public var style: SeriesStyle?
    /// 0: no line (only the dots or endpoints).
    public var lineWidth: Double
    /// Draw a small dot at every point (for short paths, so single steps can be seen).
    public var dots: Bool
    /// Draw a hollow circle at the first point and a filled one at the last, so that where a path ends can be
    /// seen even where other paths cover it.
    public var endpoints: Bool
    /// A shaded band around the line (the quartiles over seeds), drawn behind every line; nil: none.
    public var band: Band?

    public init(label: String, points: [SIMD2<Double>], style: SeriesStyle? = nil, lineWidth: Double = 1.8,
                dots: Bool = false, endpoints: Bool = false) {
        (self.label, self.points, self.style) = (label, points, style)
        (self.lineWidth, self.dots, self.endpoints) = (lineWidth, dots, endpoints)
    }
}

/// The area between two curves over the same x values, shaded in the series' colour.
public struct Band: Sendable {
    public var lower: [SIMD2<Double>]
    public var upper: [SIMD2<Double>]
    public init(lower: [SIMD2<Double>], upper: [SIMD2<Double>]) { (self.lower, self.upper) = (lower, upper) }
}

/// A marked point (a minimum, a saddle point), drawn as a star and listed in the legend.
public struct Marker: Sendable {
    public var point: SIMD2<Double>
    public var label: String
    public init(point: SIMD2<Double>, label: String) {
        self.point = point
        self.label = label
    }
}

/// An axis: its label, scale kind and (optionally) a fixed domain; without one the data decide.
public struct Axis: Sendable {
    public var label: String
    public var scale: ScaleKind
    public var domain: ClosedRange<Double>?
    public init(_ label: String, scale: ScaleKind = .linear, domain: ClosedRange<Double>? = nil) {
        self.label = label
        self.scale = scale
        self.domain = domain
    }
}

public struct Chart: Sendable {
    public var title: String
    public var subtitle: String?
    public var x: Axis
    public var y: Axis
    public var series: [Series] = []
    public var contours: [ContourLevel] = []
    public var markers: [Marker] = []
    /// Show the legend beside the plot.
    public var legend = true
    /// Draws each series' line over this many seconds when the SVG is shown (SMIL: the stroke's dash offset goes from
    /// the whole line to none, played by any browser); nil: drawn at once.
    public var drawSeconds: Double?
    /// Overall size in pixels, legend included.
    public var width: Double
    public var height: Double

    public init(title: String, subtitle: String? = nil, x: Axis, y: Axis, width: Double = 720, height: Double = 480) {
        (self.title, self.subtitle, self.x, self.y) = (title, subtitle, x, y)
        (self.width, self.height) = (width, height)
    }

    /// A standalone SVG document.
    /// A standalone SVG document; `id` prefixes its element ids (give each picture in one HTML page its own).
    public func svg(id: String = "c") -> String { Figure([self]).svg(id: id) }

    // MARK: layout

    static let titleSize = 16.0, textSize = 12.0, tickSize = 11.0
    static let legendLine = 18.0

    /// Approximate width of `s` at `size` (DejaVu Sans averages about 0.6 em per character).
    static func textWidth(_ s: String, size: Double) -> Double { Double(s.count) * size * 0.6 }

    var legendEntries: [(label: String, kind: LegendKind)] {
        guard legend else { return [] }
        // A series without a label (a repeat of one already listed) stays out of the legend.
        return series.enumerated().filter { !$0.element.label.isEmpty }
            .map { ($0.element.label, .line($0.element.style ?? Palette.style($0.offset), $0.element.dots)) }
            + markers.map(\.label).uniqued().map { ($0, .star) }
    }

    enum LegendKind {
        case line(SeriesStyle, Bool)
        case star
    }

    /// The data domain of an axis: the fixed one, or the data's extent padded by 4 % (in log space on a log axis).
    func domain(_ axis: Axis, _ values: [Double]) -> ClosedRange<Double> {
        if let d = axis.domain { return d }
        let usable = values.filter { $0.isFinite && (axis.scale == .linear || $0 > 0) }
        guard let lo = usable.min(), let hi = usable.max() else { return axis.scale == .log ? 0.1...10 : 0...1 }
        if axis.scale == .log {
            let a = log10(lo), b = log10(hi)
            let d = padded(a...b, by: 0.04)
            return pow(10, d.lowerBound)...pow(10, d.upperBound)
        }
        return padded(lo...hi, by: 0.04)
    }

    /// The width the legend takes beside the plot.
    var legendWidth: Double {
        let entries = legendEntries
        return entries.isEmpty ? 0 : 34 + (entries.map { Self.textWidth($0.label, size: Self.textSize) }.max() ?? 0)
    }

    static let leftMargin = 66.0, rightMargin = 16.0, bottomMargin = 46.0
    var topMargin: Double { subtitle == nil ? 40 : 56 }

    /// Sets `width` and `height` so that the plot area (inside the axes) is `plotWidth` × `plotHeight`, with
    /// room for the title, tick labels and legend. Call it after the series and markers are set.
    public mutating func sizePlot(width plotWidth: Double, height plotHeight: Double) {
        width = Self.leftMargin + plotWidth + Self.rightMargin + legendWidth
        height = topMargin + plotHeight + Self.bottomMargin
    }

    /// Draws the chart with its top-left corner at (x, y); `id` keeps clip-path names unique in a document.
    /// The plot area of a chart placed at (originX, originY), and its scales.
    private struct Frame {
        let originX: Double, originY: Double
        let left: Double, right: Double, top: Double, bottom: Double
        let sx: Scale, sy: Scale
    }

    public func render(into w: inout SVGWriter, x originX: Double, y originY: Double, id: String) {
        let top = originY + topMargin
        let left = originX + Self.leftMargin
        let right = originX + width - Self.rightMargin - legendWidth
        let bottom = originY + height - Self.bottomMargin
        let allPoints = series.flatMap { $0.points + ($0.band.map { $0.lower + $0.upper } ?? []) } + markers.map(\.point)
        let frame = Frame(originX: originX, originY: originY, left: left, right: right, top: top, bottom: bottom,
                          sx: Scale(x.scale, domain: domain(x, allPoints.map(\.x)), pixels: left...right),
                          sy: Scale(y.scale, domain: domain(y, allPoints.map(\.y)), pixels: top...bottom, flipped: true))
        w.open("g", [("class", "chart")])
        renderAxes(into: &w, frame)
        renderData(into: &w, frame, id: id)
        renderLegend(into: &w, frame)
        w.close("g")
    }

    /// Title, subtitle, grid, ticks and axis labels.
    private func renderAxes(into w: inout SVGWriter, _ f: Frame) {
        let (originX, originY, left, right, top, bottom, sx, sy) = (f.originX, f.originY, f.left, f.right, f.top, f.bottom, f.sx, f.sy)
        // Title and subtitle.
        w.text(title, x: originX + width / 2, y: originY + 24,
               [("font-size", svgNumber(Self.titleSize)), ("font-weight", "bold"), ("text-anchor", "middle")])
        if let subtitle {
            w.text(subtitle, x: originX + width / 2, y: originY + 42,
                   [("font-size", svgNumber(Self.textSize)), ("fill", "#555555"), ("text-anchor", "middle")])
        }
        // Grid and ticks.
        let xTicks = sx.ticks(target: max(3, Int((right - left) / 80)))
        let yTicks = sy.ticks(target: max(3, Int((bottom - top) / 60)))
        w.open("g", [("stroke", "#e6e6e6"), ("stroke-width", "1")])
        for t in xTicks { w.element("line", line(sx.pixel(t), top, sx.pixel(t), bottom)) }
        for t in yTicks { w.element("line", line(left, sy.pixel(t), right, sy.pixel(t))) }
        w.close("g")
        w.open("g", [("font-size", svgNumber(Self.tickSize)), ("fill", "#333333")])
        for t in xTicks {
            w.element("line", line(sx.pixel(t), bottom, sx.pixel(t), bottom + 5) + [("stroke", "#333333")])
            w.text(tickLabel(t), x: sx.pixel(t), y: bottom + 18, [("text-anchor", "middle")])
        }
        for t in yTicks {
            w.element("line", line(left - 5, sy.pixel(t), left, sy.pixel(t)) + [("stroke", "#333333")])
            w.text(tickLabel(t), x: left - 8, y: sy.pixel(t) + 4, [("text-anchor", "end")])
        }
        w.close("g")
        // Axis labels.
        w.text(x.label, x: (left + right) / 2, y: bottom + 38,
               [("font-size", svgNumber(Self.textSize)), ("text-anchor", "middle")])
        let yLabelX = originX + 16, yLabelY = (top + bottom) / 2
        w.text(y.label, x: yLabelX, y: yLabelY,
               [("font-size", svgNumber(Self.textSize)), ("text-anchor", "middle"),
                ("transform", "rotate(-90 \(svgNumber(yLabelX)) \(svgNumber(yLabelY)))")])

    }

    /// Contours, series, markers and endpoints, clipped to the plot area, and its border.
    private func renderData(into w: inout SVGWriter, _ f: Frame, id: String) {
        let (left, right, top, bottom, sx, sy) = (f.left, f.right, f.top, f.bottom, f.sx, f.sy)
        let clip = "\(id)-plot"
        w.open("clipPath", [("id", clip)])
        w.element("rect", [("x", svgNumber(left)), ("y", svgNumber(top)),
                           ("width", svgNumber(right - left)), ("height", svgNumber(bottom - top))])
        w.close("clipPath")
        w.open("g", [("clip-path", "url(#\(clip))")])
        if !contours.isEmpty {
            w.open("g", [("fill", "none"), ("stroke", "#b4b4b4"), ("stroke-width", "0.9")])
            for level in contours {
                let d = pathData(level.lines, sx, sy, spacing: 4)
                if !d.isEmpty { w.element("path", [("d", d), ("data-level", tickLabel(level.level))]) }
            }
            w.close("g")
        }
        renderBands(into: &w, sx, sy)
        for (k, s) in series.enumerated() {
            let style = s.style ?? Palette.style(k)
            var attributes = [("d", pathData([s.points], sx, sy, spacing: 0.75)), ("fill", "none"), ("stroke", style.colour),
                              ("stroke-width", svgNumber(s.lineWidth)), ("stroke-opacity", "0.85"), ("stroke-linejoin", "round"),
                              ("stroke-linecap", "round")]
            if let seconds = drawSeconds, s.lineWidth > 0 {
                // One dash as long as the line (a unit length), shifted out of view and brought back.
                w.open("path", attributes + [("pathLength", "1"), ("stroke-dasharray", "1 1"), ("stroke-dashoffset", "1")])
                w.element("animate", [("attributeName", "stroke-dashoffset"), ("from", "1"), ("to", "0"),
                                      ("dur", "\(svgNumber(seconds))s"), ("fill", "freeze")])
                w.close("path")
            } else {
                if let dash = style.dash { attributes.append(("stroke-dasharray", dash)) }
                if s.lineWidth > 0 { w.element("path", attributes) }
            }
            if s.dots {
                w.open("g", [("fill", style.colour)])
                for p in s.points where visible(p, sx, sy) {
                    w.element("circle", [("cx", svgNumber(sx.pixel(p.x))), ("cy", svgNumber(sy.pixel(p.y))), ("r", "2.2")])
                }
                w.close("g")
            }
        }
        renderMarks(into: &w, sx, sy)
        w.close("g")
        w.element("rect", [("x", svgNumber(left)), ("y", svgNumber(top)), ("width", svgNumber(right - left)),
                           ("height", svgNumber(bottom - top)), ("fill", "none"), ("stroke", "#333333")])

    }

    /// Marked points above the lines, and each series' endpoints above them.
    private func renderMarks(into w: inout SVGWriter, _ sx: Scale, _ sy: Scale) {
        for m in markers where visible(m.point, sx, sy) {
            w.element("path", [("d", starPath(sx.pixel(m.point.x), sy.pixel(m.point.y), 8)), ("fill", "#000000"),
                               ("stroke", "#ffffff"), ("stroke-width", "1")])
        }
        for (k, s) in series.enumerated() where s.endpoints {
            let style = s.style ?? Palette.style(k)
            if let p = s.points.first, visible(p, sx, sy) {
                w.element("circle", [("cx", svgNumber(sx.pixel(p.x))), ("cy", svgNumber(sy.pixel(p.y))), ("r", "5"),
                                     ("fill", "white"), ("stroke", style.colour), ("stroke-width", "1.5")])
            }
            if let p = s.points.last, s.points.count > 1, visible(p, sx, sy) {
                w.element("circle", [("cx", svgNumber(sx.pixel(p.x))), ("cy", svgNumber(sy.pixel(p.y))), ("r", "4"),
                                     ("fill", style.colour), ("stroke", "white"), ("stroke-width", "1")])
            }
        }
    }

    /// Each series' band, shaded behind every line: one closed outline along the upper curve and back along the lower.
    private func renderBands(into w: inout SVGWriter, _ sx: Scale, _ sy: Scale) {
        for (k, s) in series.enumerated() {
            guard let band = s.band, band.lower.count > 1, band.upper.count > 1 else { continue }
            let outline = (band.upper + band.lower.reversed()).filter { $0.x.isFinite && $0.y.isFinite }
            let d = pathData([outline], sx, sy, spacing: 0.75)
            if !d.isEmpty {
                w.element("path", [("d", d + " Z"), ("fill", (s.style ?? Palette.style(k)).colour), ("fill-opacity", "0.18"),
                                   ("stroke", "none"), ("data-band", "quartiles")])
            }
        }
    }

    /// The legend, to the right of the plot.
    private func renderLegend(into w: inout SVGWriter, _ f: Frame) {
        let entries = legendEntries, right = f.right, top = f.top
        if !entries.isEmpty {
            let lx = right + 14
            w.open("g", [("font-size", svgNumber(Self.textSize))])
            for (k, e) in entries.enumerated() {
                let ly = top + 10 + Double(k) * Self.legendLine
                switch e.kind {
                case .line(let style, let dots):
                    var a = line(lx, ly, lx + 22, ly) + [("stroke", style.colour), ("stroke-width", "2.5")]
                    if let dash = style.dash { a.append(("stroke-dasharray", dash)) }
                    w.element("line", a)
                    if dots { w.element("circle", [("cx", svgNumber(lx + 11)), ("cy", svgNumber(ly)), ("r", "2.5"), ("fill", style.colour)]) }
                case .star:
                    w.element("path", [("d", starPath(lx + 11, ly, 7)), ("fill", "#000000")])
                }
                w.text(e.label, x: lx + 28, y: ly + 4)
            }
            w.close("g")
        }
    }

    private func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double) -> [(String, String)] {
        [("x1", svgNumber(x1)), ("y1", svgNumber(y1)), ("x2", svgNumber(x2)), ("y2", svgNumber(y2))]
    }

    private func visible(_ p: SIMD2<Double>, _ sx: Scale, _ sy: Scale) -> Bool {
        usable(p, sx, sy) && sx.domain.contains(p.x) && sy.domain.contains(p.y)
    }

    private func usable(_ p: SIMD2<Double>, _ sx: Scale, _ sy: Scale) -> Bool {
        p.x.isFinite && p.y.isFinite && (sx.kind == .linear || p.x > 0) && (sy.kind == .linear || p.y > 0)
    }

    /// SVG path data for polylines; a point that cannot be drawn (not finite, ≤ 0 on a log axis) breaks the line.
    /// With `spacing`, points closer than that many pixels to the last one drawn are left out (a line's last
    /// point is always kept), which shrinks dense contour lines without visible change.
    private func pathData(_ lines: [[SIMD2<Double>]], _ sx: Scale, _ sy: Scale, spacing: Double = 0) -> String {
        var d = ""
        for points in lines {
            var pen = false
            var last = SIMD2<Double>(.infinity, .infinity)
            for (k, p) in points.enumerated() {
                guard usable(p, sx, sy) else { pen = false; continue }
                // Far-away points are pulled in so renderers never see huge coordinates; the clip hides them.
                let q = SIMD2(min(max(sx.pixel(p.x), -1e5), 1e5), min(max(sy.pixel(p.y), -1e5), 1e5))
                if pen && spacing > 0 && k != points.count - 1 && ((q.x - last.x) * (q.x - last.x) + (q.y - last.y) * (q.y - last.y)).squareRoot() < spacing { continue }
                d += (pen ? "L" : (d.isEmpty ? "M" : " M")) + svgNumber(q.x) + " " + svgNumber(q.y)
                pen = true
                last = q
            }
        }
        return d
    }

    private func starPath(_ cx: Double, _ cy: Double, _ r: Double) -> String {
        var d = ""
        for k in 0..<10 {
            let radius = k % 2 == 0 ? r : r * 0.45
            let angle = -Double.pi / 2 + Double(k) * Double.pi / 5
            d += (k == 0 ? "M" : "L") + svgNumber(cx + radius * cos(angle)) + " " + svgNumber(cy + radius * sin(angle))
        }
        return d + "Z"
    }
}

/// Charts placed side by side in one SVG document, under an optional common title.
public struct Figure: Sendable {
    public var charts: [Chart]
    public var title: String?
    public var subtitle: String?

    public init(_ charts: [Chart], title: String? = nil, subtitle: String? = nil) {
        self.charts = charts
        self.title = title
        self.subtitle = subtitle
    }

    var header: Double { title == nil ? 0 : (subtitle == nil ? 34 : 52) }
    public var width: Double { charts.map(\.width).reduce(0, +) }
    public var height: Double { (charts.map(\.height).max() ?? 0) + header }

    /// The SVG document; `id` prefixes its element ids (give each picture in one HTML page its own).
    public func svg(id: String = "c") -> String {
        var w = SVGWriter()
        w.element("rect", [("width", "100%"), ("height", "100%"), ("fill", "#ffffff")])
        if let title {
            w.text(title, x: width / 2, y: 26, [("font-size", "18"), ("font-weight", "bold"), ("text-anchor", "middle")])
        }
        if let subtitle {
            w.text(subtitle, x: width / 2, y: 46, [("font-size", "13"), ("fill", "#555555"), ("text-anchor", "middle")])
        }
        var x = 0.0
        for (k, c) in charts.enumerated() {
            c.render(into: &w, x: x, y: header, id: "\(id)\(k)")
            x += c.width
        }
        return w.document(width: width, height: height)
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each first occurrence only.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
