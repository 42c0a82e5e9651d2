// A minimal SVG writer: elements as text, numbers printed short, text escaped. Charts build on it.

/// Accumulates SVG elements; `document` wraps them in a standalone `<svg>` root.
public struct SVGWriter {
    public private(set) var body: [String] = []

    public init() {}

    public mutating func raw(_ element: String) { body.append(element) }

    public mutating func open(_ tag: String, _ attributes: [(String, String)] = []) {
        body.append("<\(tag)\(Self.attributes(attributes))>")
    }

    public mutating func close(_ tag: String) { body.append("</\(tag)>") }

    /// An element without children.
    public mutating func element(_ tag: String, _ attributes: [(String, String)]) {
        body.append("<\(tag)\(Self.attributes(attributes))/>")
    }

    /// A `<text>` element; `content` is escaped.
    public mutating func text(_ content: String, x: Double, y: Double, _ attributes: [(String, String)] = []) {
        body.append("<text x=\"\(svgNumber(x))\" y=\"\(svgNumber(y))\"\(Self.attributes(attributes))>\(xmlEscaped(content))</text>")
    }

    /// The complete document, `width` × `height` user units (pixels).
    public func document(width: Double, height: Double) -> String {
        var lines = ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(svgNumber(width))\" height=\"\(svgNumber(height))\" "
                     + "viewBox=\"0 0 \(svgNumber(width)) \(svgNumber(height))\" "
                     + "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">"]
        lines.append(contentsOf: body)
        lines.append("</svg>")
        return lines.joined(separator: "\n") + "\n"
    }

    static func attributes(_ list: [(String, String)]) -> String {
        list.map { " \($0.0)=\"\(xmlEscaped($0.1))\"" }.joined()
    }
}

/// `s` with the five XML special characters escaped.
public func xmlEscaped(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(c)
        }
    }
    return out
}

/// A coordinate with at most two decimals and no trailing zeros: pictures stay small and exact enough.
public func svgNumber(_ x: Double) -> String {
    guard x.isFinite else { return "0" }
    let scaled = (x * 100).rounded()
    if scaled == 0 { return "0" }
    let negative = scaled < 0
    let magnitude = Int64(abs(scaled))
    var text = String(magnitude / 100)
    let cents = magnitude % 100
    if cents != 0 {
        text += cents % 10 == 0 ? "." + String(cents / 10) : (cents < 10 ? ".0" : ".") + String(cents)
    }
    return negative ? "-" + text : text
}
