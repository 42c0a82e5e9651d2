// The table and chart of a scaling sweep: one run per rank count (folders np-<N>/ with summary.json), compared
// with the smallest rank count.
import Config
import Datasets
import Training
import Foundation
import Numerics
import Reports

public enum ScalingReport {
    /// One run of the sweep, from its summary.json.
    public struct Point: Sendable {
        public var ranks: Int
        public var globalBatch: Int
        public var steps: Int
        public var samples: Int
        public var samplesPerSecond: Double
        /// Per-step seconds, each the maximum over ranks.
        public var stepSeconds: Double
        public var computeSeconds: Double
        public var exchangeSeconds: Double
        public var updateSeconds: Double
        public var finalHash: String
    }

    /// summary.json's exchange and update seconds, under their names or the names of earlier builds
    /// (`allreduce_seconds`, `optimizer_seconds`).
    enum PhaseKeys {
        static func exchangeAndUpdate(_ j: [String: Any]) -> (Double, Double)? {
            guard let exchange = (j["exchange_seconds"] ?? j["allreduce_seconds"]) as? Double,
                  let update = (j["update_seconds"] ?? j["optimizer_seconds"]) as? Double else { return nil }
            return (exchange, update)
        }
    }

    /// Reads `<directory>/np-*/summary.json`, ordered by rank count.
    public static func read(_ directory: String) throws -> [Point] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var points: [Point] = []
        for name in names where name.hasPrefix("np-") {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isFolder), isFolder.boolValue else {
                continue  // a job log beside the runs
            }
            let file = directory + "/" + name + "/summary.json"
            guard let data = FileManager.default.contents(atPath: file),
                  let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let ranks = j["ranks"] as? Int, let batch = j["global_batch"] as? Int, let steps = j["steps"] as? Int, steps > 0,
                  let samples = j["samples"] as? Int, let rate = j["samples_per_second"] as? Double,
                  let train = j["train_seconds"] as? Double, let compute = j["compute_seconds"] as? Double,
                  let (exchange, update) = PhaseKeys.exchangeAndUpdate(j),
                  let hash = j["final_hash"] as? String else {
                throw DataFileError(file: file, field: "summary", expected: "the summary.json of a finished run", found: "something else",
                                    kind: "file")
            }
            let s = Double(steps)
            points.append(Point(ranks: ranks, globalBatch: batch, steps: steps, samples: samples, samplesPerSecond: rate,
                                stepSeconds: train / s, computeSeconds: compute / s, exchangeSeconds: exchange / s,
                                updateSeconds: update / s, finalHash: hash))
        }
        guard !points.isEmpty else {
            throw DataFileError(file: directory, field: "runs", expected: "np-*/summary.json of finished runs (as launch/scale writes them)",
                                found: "none", kind: "folder")
        }
        return points.sorted { $0.ranks < $1.ranks }
    }

    public static let header = ["ranks", "global_batch", "samples_per_s", "speedup", "efficiency", "step_ms",
                                "compute_ms", "exchange_ms", "update_ms", "final_hash"]

    /// The table rows: speedup and efficiency relative to the smallest rank count (strong scaling compares
    /// throughput; weak scaling too, since the work per rank is fixed).
    public static func rows(_ points: [Point]) -> [[String]] {
        let base = points[0]
        return points.map { p in
            let speedup = p.samplesPerSecond / base.samplesPerSecond
            let efficiency = speedup / (Double(p.ranks) / Double(base.ranks))
            return ["\(p.ranks)", "\(p.globalBatch)", "\(fixed(p.samplesPerSecond, 0))",
                    fixed(speedup, 2), fixed(efficiency, 2), fixed(p.stepSeconds * 1e3, 3),
                    fixed(p.computeSeconds * 1e3, 3), fixed(p.exchangeSeconds * 1e3, 3), fixed(p.updateSeconds * 1e3, 3),
                    p.finalHash]
        }
    }

    /// Writes scaling.csv, scaling.svg, phases.svg and report.html into `directory`; returns the table as text.
    @discardableResult
    public static func write(_ directory: String, mode: String) throws -> String {
        let points = try read(directory)
        let rows = rows(points)
        let csv = ([header] + rows).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
        try writeAtomically(csv, to: directory + "/scaling.csv")
        let ranks = points.map { Double($0.ranks) }
        let base = points[0]
        var speed = RunReport.curves("\(mode) scaling: speedup against ranks", x: "ranks (MPI processes)",
                                     y: "speedup over \(base.ranks) rank\(base.ranks == 1 ? "" : "s")", [
            ("measured", zip(ranks, points).map { SIMD2($0, $1.samplesPerSecond / base.samplesPerSecond) }, Palette.style(0)),
            ("ideal", ranks.map { SIMD2($0, $0 / Double(base.ranks)) }, SeriesStyle(colour: "#999999", dash: "6 3")),
        ])
        speed.series = speed.series.map { var s = $0; s.dots = true; return s }
        let phases = RunReport.curves("time per step by phase (max over ranks)", x: "ranks (MPI processes)", y: "milliseconds per step", [
            ("whole step", zip(ranks, points).map { SIMD2($0, $1.stepSeconds * 1e3) }, Palette.style(6)),
            ("compute (forward, backward)", zip(ranks, points).map { SIMD2($0, $1.computeSeconds * 1e3) }, Palette.style(0)),
            ("exchange", zip(ranks, points).map { SIMD2($0, $1.exchangeSeconds * 1e3) }, Palette.style(1)),
            ("update", zip(ranks, points).map { SIMD2($0, $1.updateSeconds * 1e3) }, Palette.style(2)),
        ])
        let speedSVG = speed.svg(id: "s-"), phasesSVG = phases.svg(id: "p-")
        try writeAtomically(speedSVG, to: directory + "/scaling.svg")
        try writeAtomically(phasesSVG, to: directory + "/phases.svg")
        var report = HTMLReport(title: "descent scaling sweep (\(mode))",
                                subtitle: "the same training at \(points.map { String($0.ranks) }.joined(separator: ", ")) ranks, \(base.steps) steps each")
        report.tables = [("Throughput and step time", header, rows)]
        report.charts = [speedSVG, phasesSVG]
        report.files = ["scaling.csv", "scaling.svg", "phases.svg"] + points.map { "np-\($0.ranks)/report.html" }
        try writeAtomically(report.html, to: directory + "/report.html")
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max()! }
        return ([header] + rows).map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
