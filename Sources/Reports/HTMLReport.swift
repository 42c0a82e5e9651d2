// One self-contained HTML page for a run or a comparison: key figures, tables, inline SVG charts and the
// resolved config. No scripts, no external files: it opens anywhere, and the CSV/JSONL stay the source of truth.

public struct HTMLReport: Sendable {
    public var title: String
    public var subtitle: String?
    /// Key figures, shown as a two-column table.
    public var figures: [(label: String, value: String)] = []
    /// Plain sentences that state what the numbers say, shown as a list above the tables.
    public var findings: [String] = []
    /// Further tables: a caption, a header row, rows.
    public var tables: [(caption: String, header: [String], rows: [[String]])] = []
    /// Charts as standalone SVG documents (each with its own id prefix).
    public var charts: [String] = []
    /// Files beside the report, listed as links.
    public var files: [String] = []
    /// The resolved config, shown as text.
    public var config: String?

    public init(title: String, subtitle: String? = nil) {
        self.title = title
        self.subtitle = subtitle
    }

    public var html: String {
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(xmlEscaped(title))</title>
        <style>
        body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px auto; padding: 0 24px; max-width: 1500px;
               color: #222; }
        h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
        .sub { color: #555; margin-top: 0; }
        table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
        .wide { overflow-x: auto; max-width: 100%; }
        .chart svg { max-width: 100%; height: auto; }
        td, th { border: 1px solid #ddd; padding: 4px 10px; text-align: right; white-space: nowrap; }
        th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
        .chart { margin: 12px 0; overflow-x: auto; }
        pre { background: #f7f7f7; padding: 10px; font-size: 13px; overflow-x: auto; }
        </style></head><body>
        <h1>\(xmlEscaped(title))</h1>

        """
        if let subtitle { h += "<p class=\"sub\">\(xmlEscaped(subtitle))</p>\n" }
        if !figures.isEmpty {
            h += "<table>\n" + figures.map { "<tr><td>\(xmlEscaped($0.label))</td><td>\(xmlEscaped($0.value))</td></tr>" }
                .joined(separator: "\n") + "\n</table>\n"
        }
        if !findings.isEmpty {
            h += "<h2>What the numbers say</h2>\n<ul>\n" + findings.map { "<li>\(xmlEscaped($0))</li>" }.joined(separator: "\n") + "\n</ul>\n"
        }
        for t in tables {
            // A table wider than the page scrolls inside its own box; the page keeps its width.
            h += "<h2>\(xmlEscaped(t.caption))</h2>\n<div class=\"wide\"><table>\n<tr>" + t.header.map { "<th>\(xmlEscaped($0))</th>" }.joined() + "</tr>\n"
            h += t.rows.map { "<tr>" + $0.map { "<td>\(xmlEscaped($0))</td>" }.joined() + "</tr>" }.joined(separator: "\n")
            h += "\n</table></div>\n"
        }
        if !charts.isEmpty {
            h += "<h2>Charts</h2>\n"
            for svg in charts {
                // Inline SVG: drop the XML declaration, which is not allowed inside HTML.
                let body = svg.hasPrefix("<?xml") ? String(svg[svg.index(after: svg.firstIndex(of: "\n")!)...]) : svg
                h += "<div class=\"chart\">\n" + body + "</div>\n"
            }
        }
        if !files.isEmpty {
            h += "<h2>Files</h2>\n<p>" + files.map { "<a href=\"\(xmlEscaped($0))\">\(xmlEscaped($0))</a>" }.joined(separator: " · ") + "</p>\n"
        }
        if let config { h += "<h2>Config</h2>\n<pre>\(xmlEscaped(config))</pre>\n" }
        return h + "</body></html>\n"
    }
}
