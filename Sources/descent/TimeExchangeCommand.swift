// `descent time-exchange`: times the exchange a training step issues, for the α–β model of `scaling-report --project`.
import ArgumentParser
import Collectives
import Experiments
import Foundation
import MPICollectives
import Training

struct TimeExchangeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "time-exchange",
        abstract: "Time one training step's exchange (sharded deterministic reduction, parameters gathered) for several parameter counts.",
        discussion: "Run it under mpirun with the ranks and hosts to measure (mpirun -np 3 descent time-exchange --csv x.csv). "
            + "Prints the median seconds per exchange (slowest rank) and, with --csv, appends transport,ranks,parameters,seconds "
            + "rows for descent scaling-report --project --timings."
    )

    @Option(help: ArgumentHelp("Parameter counts, comma-separated.", valueName: "p1,p2,…")) var parameters = "10000,100000,300000,1000000,3000000"
    @Option(help: "Timed exchanges per parameter count; the median is reported.") var repeats = 30
    @Option(help: "A label for the transport: shm (one host) or tcp (between hosts).") var transport = "shm"
    @Option(help: "Append the rows to this CSV file (written by rank 0; created with its header).") var csv: String?

    func validate() throws {
        _ = try OptionList.positiveIntegers(parameters, "--parameters")
        guard repeats > 0 else { throw ValidationError("--repeats must be positive, found \(repeats)") }
        guard !transport.isEmpty, !transport.contains(",") else { throw ValidationError("--transport: expected a label without commas, found '\(transport)'") }
    }

    func run() throws {
        try distributed { communicator, _ in try time(on: communicator) }
    }

    func time(on communicator: Communicator) throws {
        var rows: [ExchangeModel.Timing] = []
        for p in try OptionList.positiveIntegers(parameters, "--parameters") {
            let seconds = try ExchangeModel.time(parameters: p, repeats: repeats, on: communicator)
            rows.append(.init(transport: transport, ranks: communicator.size, parameters: p, seconds: seconds))
            if communicator.rank == 0 {
                print(String(format: "%@, %d ranks, %9d parameters: %9.1f µs per exchange", transport, communicator.size, p, seconds * 1e6))
            }
        }
        try communicator.collectively {
            guard communicator.rank == 0, let csv else { return }
            let exists = FileManager.default.fileExists(atPath: csv)
            let old = exists ? ((try? String(contentsOfFile: csv, encoding: .utf8)) ?? "") : ExchangeModel.Timing.header + "\n"
            try writeAtomically(old + rows.map(\.csvLine).joined(separator: "\n") + "\n", to: csv)
        }
    }
}
