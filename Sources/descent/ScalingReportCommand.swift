// `descent scaling-report DIR`: the table and charts of a scaling sweep; `--project RUN`: the same on paper, for
// rank counts and a network this machine does not have.
import ArgumentParser
import Collectives
import Config
import Experiments
import Foundation
import MPICollectives
import Numerics
import Optimizers
import Training

struct ScalingReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaling-report",
        abstract: "Tabulate a scaling sweep (folders np-<N>/ with summary.json, as launch/scale writes them), or project one.",
        discussion: """
            scaling-report DIR writes scaling.csv, scaling.svg, phases.svg and report.html into the folder and prints the table.
            scaling-report --project RUN --timings FILE [--network 100Gb/s,2us] projects RUN's step (its summary.json) to \
            --ranks ranks: compute per sample and optimizer per parameter as measured, the exchange from the α–β model \
            fitted to FILE (rows from descent time-exchange) with the network's latency and bandwidth. --study adds the \
            steps and time to the study's target from its critical-batch fit. launch/exchange-model does it all.
            """
    )

    @Argument(help: "The sweep folder, e.g. runs/fashion-momentum-scale-strong.") var directory: String?
    @Option(help: "strong (fixed global batch) or weak (fixed batch per rank); used in titles.") var mode = "strong"

    // --project RUN and what it reads.
    @Option(help: "Project this run folder (its summary.json) instead of tabulating a sweep.") var project: String?
    @Option(help: "The exchange timings to fit (CSV from descent time-exchange).") var timings: String?
    @Option(help: "The network to project onto: bandwidth and latency, e.g. 100Gb/s,2us. Without it, the fit of --transport.")
    var network: String?
    @Option(help: "The timings' transport whose fit projects when no --network is given; shm gives the local work γ.")
    var transport = "shm"
    @Option(help: ArgumentHelp("The rank counts of the timings to fit; the others check the fit.", valueName: "n1,n2,…"))
    var fitRanks = "2,4"
    @Option(help: ArgumentHelp("Rank counts to project.", valueName: "n1,n2,…")) var ranks = "8,16,32,64,128,256,512,1024"
    @Option(help: "Strong scaling's global batch (default: the run's).") var batch: Int?
    @Option(help: "Weak scaling's samples per rank (default: the run's).") var perRank: Double?
    @Option(help: "A study folder (best.csv) whose critical-batch fit gives the steps to its target.") var study: String?
    @Option(help: "The study's variant to use (default: its first with a fit).") var variant: String?
    @Option(parsing: .upToNextOption, help: "Run folders whose measured exchange checks the model (it did not fit them).")
    var check: [String] = []

    func run() throws {
        try singleProcess {
            if let project {
                print(try projection(project))
            } else {
                guard let directory else { throw ValidationError("give a sweep folder, or --project RUN") }
                print(try ScalingReport.write(directory, mode: mode))
                print("scaling report in \(directory)/ (report.html, scaling.csv, scaling.svg, phases.svg)")
            }
        }
    }

    private func projection(_ run: String) throws -> String {
        guard let timings else { throw ValidationError("--project needs --timings FILE (rows from descent time-exchange)") }
        let network = try self.network.map { text in
            guard let n = Network(text) else { throw ValidationError("--network: expected a bandwidth and a latency such as 100Gb/s,2us, found '\(text)'") }
            return n
        }
        let projected = try OptionList.positiveIntegers(ranks, "--ranks")
        let fitted = Set(try OptionList.positiveIntegers(fitRanks, "--fit-ranks"))
        let measured = try ScalingProjection.Measured.read(run)
        let all = try ExchangeModel.readTimings(timings)
        var out: [String] = []
        let (localModel, localText) = try fitModel(all.filter { $0.transport == "shm" }, fitted, local: nil, label: "shm", file: timings)
        out += localText
        var model = localModel
        if transport != "shm" {
            let (m, text) = try fitModel(all.filter { $0.transport == transport }, fitted, local: localModel.secondsPerParameter,
                                         label: transport, file: timings)
            model = m
            out += text
        }
        for dir in check {
            let m = try ScalingProjection.Measured.read(dir)
            let fit = m.hosts > 1 && transport != "shm" ? model : localModel
            let predicted = fit.seconds(ranks: m.ranks, parameters: m.parameters)
            out.append("check \(dir): \(m.ranks) ranks on \(m.hosts) host\(m.hosts == 1 ? "" : "s"), \(m.parameters) parameters: "
                       + "exchange \(fixed(m.exchange * 1e3, 3)) ms per step measured, \(fixed(predicted * 1e3, 3)) ms modelled "
                       + "(error \(signedPercent(predicted / m.exchange - 1)))")
        }
        if let network { model = model.on(network) }
        let studyFit = try study.map { try ScalingProjection.studyFit($0, variant: variant) }
        let projection = ScalingProjection(measured: measured, model: model, fit: studyFit?.fit)
        out.append("projecting \(run) (\(measured.ranks) ranks, batch \(measured.globalBatch), \(measured.parameters) parameters: "
                   + "compute \(fixed(measured.computePerSample * 1e6, 2)) µs per sample, optimizer \(fixed(measured.optimizerPerParameter * 1e9, 3)) ns per parameter) "
                   + "onto " + (network.map { $0.text } ?? "the \(transport) fit")
                   + (studyFit.map { ", with the critical-batch fit of \(study!) (\($0.variant))" } ?? ""))
        let perRank = self.perRank ?? Double(measured.globalBatch) / Double(measured.ranks)
        let strong = projection.rows(ranks: projected, globalBatch: batch)
        let weak = projection.rows(ranks: projected, perRank: perRank)
        out.append("\nstrong scaling, global batch \(batch ?? measured.globalBatch):\n" + aligned(ScalingProjection.table(strong)))
        out.append("\nweak scaling, \(fixed(perRank, 0)) samples per rank:\n" + aligned(ScalingProjection.table(weak)))
        if let limits = projection.limits(weak, perRank: perRank) { out.append("\n" + limits) }
        return out.joined(separator: "\n")
    }

    /// Fits one transport's timings at the fitted rank counts and reports the error on the others.
    private func fitModel(_ rows: [ExchangeModel.Timing], _ fitted: Set<Int>, local: Double?, label: String,
                          file: String) throws -> (ExchangeModel, [String]) {
        let used = rows.filter { fitted.contains($0.ranks) }
        guard let model = ExchangeModel.fit(used, local: local) else {
            throw OutputError(path: file, reason: "\(label): too few timings at ranks \(fitted.sorted().map(String.init).joined(separator: ", ")) to fit the model")
        }
        var text = ["\(label) fit on \(used.count) timings (ranks \(fitted.sorted().map(String.init).joined(separator: ", "))): "
                    + "α \(fixed(model.latency * 1e6, 2)) µs per message, β⁻¹ \(fixed(model.bandwidth / 1e9, 2)) GB/s, "
                    + "γ \(fixed(model.secondsPerParameter * 1e9, 3)) ns per parameter"]
        for r in rows {
            let predicted = model.seconds(ranks: r.ranks, parameters: r.parameters)
            text.append("  \(fitted.contains(r.ranks) ? "fit  " : "check") \(r.ranks) ranks \(r.parameters) parameters: measured "
                        + "\(fixed(r.seconds * 1e6, 1)) µs, modelled \(fixed(predicted * 1e6, 1)) µs (\(signedPercent(predicted / r.seconds - 1)))")
        }
        let checks = rows.filter { !fitted.contains($0.ranks) }.map { abs(model.seconds(ranks: $0.ranks, parameters: $0.parameters) / $0.seconds - 1) }
        if !checks.isEmpty {
            text.append("  \(label) error on the \(checks.count) timings not fitted: median \(fixed(100 * checks.sorted()[checks.count / 2], 0)) %, "
                        + "largest \(fixed(100 * checks.max()!, 0)) %")
        }
        return (model, text)
    }

    private func signedPercent(_ x: Double) -> String { (x >= 0 ? "+" : "") + fixed(100 * x, 0) + " %" }

    private func aligned(_ rows: [[String]]) -> String {
        let all = [ScalingProjection.header] + rows
        let widths = all[0].indices.map { c in all.map { $0[c].count }.max()! }
        return all.map { row in zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") }
            .joined(separator: "\n")
    }
}
