// `descent runs DIR…`: a table of run folders from any launches, and their curves in one picture. One process, no MPI.
import ArgumentParser
import Experiments
import Foundation
import Training

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "Tabulate run folders from any launches: the config keys in which they differ, final metrics, steps, seconds, hash.",
        discussion: "A folder without summary.json (a compare's or a study's) stands for the run folders below it. "
            + "descent runs runs/* --where optimizer.name=adam --sort test_accuracy --descending --format markdown; "
            + "--plot test_accuracy --output runs.svg overlays their curves."
    )

    @Argument(help: "Run folders (or folders holding run folders).") var folders: [String]
    @Option(name: .customLong("where"), help: ArgumentHelp("Keep the runs whose config key or summary field has this value (repeatable).", valueName: "key=value"))
    var filters: [String] = []
    @Option(help: ArgumentHelp("Sort by a config key or a summary field (test_accuracy, steps, optimizer.lr, …).", valueName: "key")) var sort: String?
    @Flag(help: "Sort in descending order.") var descending = false
    @Option(help: "text, csv or markdown.") var format = RunTable.Format.text
    @Option(help: ArgumentHelp("Overlay this metrics.csv column of every run (test_accuracy, batch_loss, …) against epochs in one SVG.", valueName: "metric"))
    var plot: String?
    @Option(help: "Where --plot writes its SVG.") var output = "runs.svg"

    func run() throws {
        try singleProcess {
            var table = try RunTable.load(folders).filtered(filters)
            if let sort { table = table.sorted(by: sort, descending: descending) }
            guard !table.runs.isEmpty else {
                throw ValidationError("no run folder (with summary.json and config.yaml) among \(folders.joined(separator: " "))"
                                      + (filters.isEmpty ? "" : " matches " + filters.joined(separator: ", ")))
            }
            print(table.render(format), terminator: "")
            if let plot {
                try writeAtomically(try table.chart(plot).svg(), to: output)
                print("\(plot) of \(table.runs.count) runs in \(output)")
            }
        }
    }
}

extension RunTable.Format: ExpressibleByArgument {}
