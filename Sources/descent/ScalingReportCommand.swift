// `descent scaling-report DIR`: the table and charts of a scaling sweep.
import ArgumentParser
import Collectives
import Config
import Experiments
import Foundation
import MPICollectives
import Optimizers
import Training

struct ScalingReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaling-report",
        abstract: "Tabulate a scaling sweep (folders np-<N>/ with summary.json, as launch/scale writes them).",
        discussion: "Writes scaling.csv, scaling.svg, phases.svg and report.html into the folder and prints the table."
    )

    @Argument(help: "The sweep folder, e.g. runs/fashion-momentum-scale-strong.")
    var directory: String

    @Option(help: "strong (fixed global batch) or weak (fixed batch per rank); used in titles.")
    var mode = "strong"

    func run() throws {
        do {
            print(try ScalingReport.write(directory, mode: mode))
            print("scaling report in \(directory)/ (report.html, scaling.csv, scaling.svg, phases.svg)")
        } catch let error as OutputError {
            FileHandle.standardError.write(Data("descent: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
