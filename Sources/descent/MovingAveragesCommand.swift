// `descent ewma`: the figure of exponentially weighted averages of a noisy series for several β, with and without
// bias correction. One process, no MPI.
import ArgumentParser
import Experiments
import Foundation
import Numerics
import Training

struct MovingAveragesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ewma",
        abstract: "Draw exponentially weighted averages of a noisy series (ewma.svg, ewma.csv), with and without bias correction."
    )

    @Option(help: "The folder to write into (created if needed).")
    var output = "runs/ewma"

    @Option(help: ArgumentHelp("The βs, comma-separated, each in [0, 1).", valueName: "b1,b2,…"))
    var betas = "0.5,0.9,0.98"

    @Option(help: "Points in the series.")
    var count = 200

    @Option(help: "Seed of the noise.")
    var seed: UInt64 = 1

    func validate() throws {
        _ = try OptionList.fractions(betas, "--betas")
        guard count >= 2 else { throw ValidationError("--count: expected at least 2 points, found \(count)") }
    }

    func run() throws {
        try singleProcess {
            do {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            } catch {
                throw OutputError(path: output, reason: "cannot create the folder (\(error.localizedDescription))")
            }
            let files = MovingAverages.outputs(count: count, betas: try OptionList.fractions(betas, "--betas"), seed: seed)
            for f in files { try writeAtomically(f.text, to: output + "/" + f.name) }
            print("wrote \(output)/: " + files.map(\.name).joined(separator: ", "))
        }
    }
}
