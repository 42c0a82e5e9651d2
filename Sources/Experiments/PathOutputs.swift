// The lab's files (paths.csv, the SVGs, config.yaml) and its console summary.
import Config
import Foundation
import Numerics
import Reports
import Training

extension PathLab {
    /// The trajectories as CSV: step, epoch (finite sums), optimizer, repeat, x, y, f.
    public static func csv(_ trajectories: [Trajectory]) -> String {
        var out = "step,epoch,optimizer,repeat,x,y,f\n"
        for t in trajectories {
            let label = csvField(t.label)
            for p in t.points { out += "\(p.step),\(p.epoch.map { String($0) } ?? ""),\(label),\(t.repeatIndex),\(p.x),\(p.y),\(p.f)\n" }
        }
        return out
    }

    /// The files of a finished run, by name.
    public static func outputs(_ c: PathConfig, _ trajectories: [Trajectory]) -> [(name: String, text: String)] {
        let land = Landscape(c)
        let paths = pathChart(c, land, trajectories)
        var left = paths
        left.title = "\(land.title): paths"
        left.subtitle = nil
        let plot = equalAspect(x: c.window.x, y: c.window.y)
        left.sizePlot(width: plot.width, height: plot.height)
        var charts = [left]
        if c.function.isFiniteSum {
            var byEpoch = valueChart(c, land, trajectories, against: .epoch, title: "f against epoch", legend: false)
            var byStep = valueChart(c, land, trajectories, against: .step, title: "f against step", legend: false)
            byEpoch.subtitle = nil
            byStep.subtitle = nil
            byEpoch.sizePlot(width: 400, height: 480)
            byStep.sizePlot(width: 400, height: 480)
            charts += [byEpoch, byStep]
        } else {
            var right = valueChart(c, land, trajectories, title: "f against step", legend: false)
            right.subtitle = nil
            right.sizePlot(width: 540, height: 480)
            charts.append(right)
        }
        let figure = Figure(charts, title: paths.title, subtitle: paths.subtitle)
        var files = [("paths.csv", csv(trajectories)), ("paths.svg", paths.svg()),
                     ("f.svg", valueChart(c, land, trajectories).svg()), ("step_size.svg", stepSizeChart(c, land, trajectories).svg()),
                     ("figure.svg", figure.svg()), ("config.yaml", c.resolvedYAML)]
        if c.animate {
            var animated = paths
            animated.drawSeconds = 6
            files.append(("paths-animated.svg", animated.svg()))
        }
        return files
    }

    /// Writes the outputs into `<output.dir>/<name>/` (created if needed; files of an earlier run of the same
    /// name are replaced, each one whole). Returns the folder and the files' names.
    @discardableResult
    public static func write(_ c: PathConfig, _ trajectories: [Trajectory]) throws -> (folder: String, files: [String]) {
        let files = outputs(c, trajectories)
        let folder = c.outputDirectory + "/" + c.name
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw OutputError(path: folder, reason: "cannot create the folder (\(error.localizedDescription))")
        }
        for file in files { try writeAtomically(file.text, to: folder + "/" + file.name) }
        return (folder, files.map(\.name))
    }

    /// A console summary: one line per entry with its (first run's) final point, f and distance to the minimum,
    /// and for a repeated entry how many of its seeds reached the deep minimum.
    public static func summary(_ c: PathConfig, _ trajectories: [Trajectory]) -> String {
        let land = Landscape(c)
        var lines = ["\(land.title): f = \(land.formula), \(runText(c))"]
        let width = max(12, trajectories.map(\.label.count).max() ?? 0)
        let to = land.minimaName == "saddle point" ? "to saddle" : "to minimum"
        lines.append("optimizer".padding(toLength: width, withPad: " ", startingAt: 0)
                     + "        x            y            f   " + to)
        for group in groups(c, trajectories) {
            for t in group.runs.prefix(1) {
                let p = t.last
                var line = t.label.padding(toLength: width, withPad: " ", startingAt: 0)
                    + String(format: "  %11.5g  %11.5g  %11.4g  %9.3g", Double(p.x), Double(p.y), p.f,
                             land.distanceToMinimum(Double(p.x), Double(p.y)))
                if let d = t.divergedAt { line += "   diverged at step \(d)" }
                lines.append(line)
            }
            if group.runs.count > 1 {
                let f = Spread(group.runs.map { Double($0.last.f) })
                lines.append("  \(group.runs.count) seeds (the first above)" + (land.localMinima.isEmpty ? ""
                    : ": \(escapes(group.runs, land)) end in the deep minimum")
                    + (f.map { String(format: "; final f median %.4g [quartiles %.4g–%.4g], mean %.4g (95 %% interval %.4g–%.4g)",
                                      $0.median, $0.q1, $0.q3, $0.mean, $0.low, $0.high) } ?? ""))
            }
        }
        return lines.joined(separator: "\n")
    }
}
