// The command line: `descent train --config FILE [--set key=value ...]`, run on every rank under mpirun.
import ArgumentParser
import Collectives
import Foundation
import MPICollectives
import Training

@main
struct Descent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "descent",
        abstract: "Data-parallel training under mpirun, to compare gradient descent and its optimizers.",
        subcommands: [Train.self]
    )

    /// Usage errors are printed by one rank only, so `mpirun -np 4` shows one message, not four.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let env = ProcessInfo.processInfo.environment
            let rank = env["OMPI_COMM_WORLD_RANK"] ?? env["PMIX_RANK"] ?? env["SLURM_PROCID"] ?? "0"
            if rank == "0" || exitCode(for: error) == .success {
                exit(withError: error)
            }
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model as the config file says; results go to <output.dir>/<name>/."
    )

    @Option(name: .shortAndLong, help: "The YAML config file (see configs/).")
    var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, e.g. --set optimizer.lr=0.05.", valueName: "key=value"))
    var overrides: [String] = []

    @Flag(help: "Replace an existing run folder of the same name.")
    var overwrite = false

    @Option(help: "Progress display: auto, line (one updating terminal line), plain (a line every 10 s), off.")
    var progress: Console.Style = .auto

    func run() throws {
        let communicator = try MPICommunicator.world()
        let status = train(on: communicator)
        MPICommunicator.finalize()
        if status != 0 { throw ExitCode(status) }
    }

    /// Runs training and turns failures into one message and an exit status on every rank.
    func train(on communicator: MPICommunicator) -> Int32 {
        do {
            let runConfig = try communicator.collectively { try loadConfig() }
            let console = Console(enabled: communicator.rank == 0, style: progress)
            let trainer = try Trainer(config: runConfig, communicator: communicator, overwrite: overwrite, console: console)
            try trainer.run()
            return 0
        } catch let failure as FailedOnThisRank {
            report(failure.description, rank: communicator.rank, of: communicator.size)
        } catch is FailedOnAnotherRank {
            // The failing rank reports the cause.
        } catch let failure as AgreedFailure {
            if communicator.rank == 0 { report(failure.description, rank: nil, of: communicator.size) }
        } catch {
            // A failure on this rank alone in the middle of collective work: the others cannot be told, so the
            // whole job is ended rather than left waiting.
            communicator.abort("error: \(error)", code: 1)
        }
        return 1
    }

    func loadConfig() throws -> RunConfig {
        let text: String
        do {
            text = try String(contentsOfFile: config, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: config) ? "an unreadable file" : "no such file"
            throw ConfigError(source: config, key: "(file)", expected: "a readable YAML config file", found: reason)
        }
        return try RunConfig.load(yaml: text, fileName: config, overrides: overrides)
    }

    func report(_ message: String, rank: Int?, of size: Int) {
        let prefix = size > 1 && rank != nil && rank != 0 ? "descent: rank \(rank!): error: " : "descent: error: "
        FileHandle.standardError.write(Data((prefix + message + "\n").utf8))
    }
}

extension Console.Style: ExpressibleByArgument {}
