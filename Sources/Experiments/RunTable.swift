// `descent runs DIR…`: the run folders of any launches side by side — the config keys in which they differ, their
// final metrics, steps, seconds and hashes — filtered, sorted, as text, CSV or Markdown, and their curves in one SVG.
import Config
import Datasets
import Foundation
import Numerics
import Reports
import Training

public struct RunTable {
    /// One finished run folder: its resolved config (dotted keys) and its summary.json.
    public struct Run {
        public var folder: String
        public var date: Date?
        public var config: [String: String]
        public var summary: [String: Any]

        /// A column's text: a summary field (`test_accuracy`, `steps`), else a config key (`optimizer.lr`).
        public func value(_ key: String) -> String? {
            if let v = summary[key] { return Self.text(v) }
            return config[key]
        }

        static func text(_ v: Any) -> String {
            switch v {
            case let d as Double where d.isFinite && d != d.rounded(): return String(format: "%.6g", d)
            case let n as NSNumber: return n.stringValue
            case let s as String: return s
            default: return "\(v)"
            }
        }
    }

    /// The summary fields every table shows, when any run has them.
    public static let outcomes = ["test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_loss", "steps", "train_seconds", "final_hash"]
    /// Keys that name a run rather than configure it.
    static let naming: Set<String> = ["name", "output.dir"]

    public var runs: [Run]

    /// The run folders among `paths`: each path that holds summary.json and config.yaml, and below a path that
    /// holds neither (a compare's or a study's folder) the run folders it contains, to three levels.
    public static func load(_ paths: [String]) throws -> RunTable {
        var runs: [Run] = []
        func visit(_ path: String, depth: Int) throws {
            let fm = FileManager.default
            if fm.fileExists(atPath: path + "/summary.json") {
                runs.append(try read(path))
            } else if depth < 3, let names = try? fm.contentsOfDirectory(atPath: path) {
                for name in names.sorted() where !name.hasPrefix(".") {
                    var isFolder: ObjCBool = false
                    if fm.fileExists(atPath: path + "/" + name, isDirectory: &isFolder), isFolder.boolValue {
                        try visit(path + "/" + name, depth: depth + 1)
                    }
                }
            }
        }
        for p in paths {
            guard FileManager.default.fileExists(atPath: p) else {
                throw DataFileError(file: p, field: "run folder", expected: "a folder with summary.json and config.yaml", found: "no such file or folder",
                                    kind: "run folder")
            }
            try visit(p, depth: 0)
        }
        return RunTable(runs: runs)
    }

    /// One run folder: summary.json (a JSON object) and config.yaml (a training config as descent writes it).
    static func read(_ folder: String) throws -> Run {
        let summaryPath = folder + "/summary.json", configPath = folder + "/config.yaml"
        guard let data = FileManager.default.contents(atPath: summaryPath),
              let summary = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw DataFileError(file: summaryPath, field: "summary", expected: "a JSON object, as descent writes it", found: "something else", kind: "file")
        }
        guard let yaml = try? String(contentsOfFile: configPath, encoding: .utf8) else {
            throw DataFileError(file: configPath, field: "config", expected: "the run's resolved config", found: "no readable file", kind: "file")
        }
        let config = try ConfigReader(yaml: yaml, fileName: configPath).values
        let date = (try? FileManager.default.attributesOfItem(atPath: summaryPath))?[.modificationDate] as? Date
        return Run(folder: folder, date: date, config: config, summary: summary)
    }

    /// The config keys that two runs hold with different values (naming keys aside), in key order. A key only some
    /// runs have, with one value (adam's betas beside momentum's momentum), follows from one that differs.
    public var differingKeys: [String] {
        let keys = Set(runs.flatMap(\.config.keys)).subtracting(Self.naming)
        return keys.filter { k in Set(runs.compactMap { $0.config[k] }).count > 1 }.sorted()
    }

    /// Keeps the runs whose `key` is `value` for every "key=value" in `filters` (a config key or a summary field).
    public func filtered(_ filters: [String]) throws -> RunTable {
        var kept = runs
        for f in filters {
            guard let eq = f.firstIndex(of: "="), eq != f.startIndex else {
                throw ConfigError(source: "--where", key: f, expected: "key=value (a config key or a summary.json field)", found: "'\(f)'")
            }
            let key = String(f[..<eq]), value = String(f[f.index(after: eq)...])
            kept = kept.filter { $0.value(key) == value }
        }
        return RunTable(runs: kept)
    }

    /// Sorted by `key` (numbers as numbers, missing values last), descending on request.
    public func sorted(by key: String, descending: Bool = false) -> RunTable {
        RunTable(runs: runs.enumerated().sorted { a, b in
            switch (a.element.value(key), b.element.value(key)) {
            case (nil, nil): return a.offset < b.offset
            case (nil, _): return false
            case (_, nil): return true
            case let (x?, y?):
                if x == y { return a.offset < b.offset }
                if let p = Double(x), let q = Double(y) { return descending ? p > q : p < q }
                return descending ? x > y : x < y
            }
        }.map(\.element))
    }

    /// The columns: run, date, the differing keys, then the outcomes any run has.
    public var columns: [String] {
        ["run", "date"] + differingKeys + Self.outcomes.filter { k in runs.contains { $0.summary[k] != nil } }
    }

    /// One row of texts per run, in `columns`' order.
    public var rows: [[String]] {
        let iso = ISO8601DateFormatter()
        return runs.map { r in
            [r.folder, r.date.map { iso.string(from: $0) } ?? ""] + columns.dropFirst(2).map { r.value($0) ?? "" }
        }
    }

    public enum Format: String, CaseIterable, Sendable { case text, csv, markdown }

    public func render(_ format: Format) -> String {
        let table = [columns] + rows
        switch format {
        case .csv:
            return table.map { $0.map(csvField).joined(separator: ",") }.joined(separator: "\n") + "\n"
        case .markdown:
            let cells = table.map { $0.map { $0.replacingOccurrences(of: "|", with: "\\|") } }
            var lines = ["| " + cells[0].joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: columns.count)]
            lines += cells.dropFirst().map { "| " + $0.joined(separator: " | ") + " |" }
            return lines.joined(separator: "\n") + "\n"
        case .text:
            let widths = columns.indices.map { c in table.map { $0[c].count }.max() ?? 0 }
            return table.map { row in
                zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                    .trimmingCharacters(in: .whitespaces)
            }.joined(separator: "\n") + "\n"
        }
    }

    /// Every run's `metric` column of metrics.csv (the rows that have it) against epochs, overlaid in one chart,
    /// each curve labelled by its folder and the keys in which the runs differ.
    public func chart(_ metric: String) throws -> Chart {
        let keys = differingKeys
        var series: [Series] = []
        for (k, r) in runs.enumerated() {
            let path = r.folder + "/metrics.csv"
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), let header = csvRows(text).first else {
                throw DataFileError(file: path, field: "metrics", expected: "metrics.csv as descent writes it", found: "no readable file", kind: "file")
            }
            guard let column = header.firstIndex(of: metric), let epoch = header.firstIndex(of: "epoch") else {
                throw DataFileError(file: path, field: "columns", expected: "a column '\(metric)' (one of \(header.joined(separator: ", ")))",
                                    found: "none", kind: "file")
            }
            let points = csvRows(text).dropFirst().compactMap { row -> SIMD2<Double>? in
                guard row.count > max(column, epoch), let x = Double(row[epoch]), let y = Double(row[column]), y.isFinite else { return nil }
                return SIMD2(x, y)
            }
            let label = ([URL(fileURLWithPath: r.folder).lastPathComponent] + keys.map { "\($0) \(r.config[$0] ?? "–")" }).joined(separator: ", ")
            series.append(Series(label: label, points: points, style: Palette.style(k), lineWidth: 1.6, dots: points.count <= 30))
        }
        var chart = Chart(title: "\(metric) of \(runs.count) run\(runs.count == 1 ? "" : "s")",
                          subtitle: keys.isEmpty ? nil : "differing in " + keys.joined(separator: ", "),
                          x: Axis("epoch"), y: Axis(metric))
        chart.series = series.filter { !$0.points.isEmpty }
        chart.sizePlot(width: 560, height: 340)
        return chart
    }
}
