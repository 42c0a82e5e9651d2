// Colours that stay apart for colour-blind readers and on paper: Okabe & Ito's set without its pale yellow,
// then a few darker extras; after ten series, dash patterns keep lines distinguishable.

/// A colour and dash pattern for the n-th series of a chart.
public struct SeriesStyle: Equatable, Sendable {
    public var colour: String
    /// SVG `stroke-dasharray`, or nil for a solid line.
    public var dash: String?

    public init(colour: String, dash: String? = nil) {
        self.colour = colour
        self.dash = dash
    }
}

public enum Palette {
    /// Okabe–Ito (2008) blue, vermillion, bluish green, reddish purple, orange, sky blue, black; then brown,
    /// olive and grey.
    public static let colours = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
                                 "#8C564B", "#999933", "#7F7F7F"]
    static let dashes: [String?] = [nil, "6 3", "2 2", "8 3 2 3"]

    /// The style of series `index`: the colours in order, then again with dashes.
    public static func style(_ index: Int) -> SeriesStyle {
        let n = colours.count
        return SeriesStyle(colour: colours[index % n], dash: dashes[(index / n) % dashes.count])
    }
}
