// The command line: `descent train`, `compare`, `study`, `path`, `runs`, `ewma`, `scaling-report`, `time-optimizers`, `roofline`, …, one
// file per subcommand; this one holds the root command and how failures are reported on every rank.
import ArgumentParser
import Collectives
import Config
import Experiments
import Foundation
import MPICollectives
import Numerics
import Optimizers
import Training

@main
struct Descent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "descent",
        abstract: "Data-parallel training under mpirun, to compare gradient descent and its optimizers.",
        version: descentVersion,
        subcommands: [Train.self, Compare.self, StudyCommand.self, BenchmarkCommand.self, PathCommand.self, MovingAveragesCommand.self, ScalingReportCommand.self,
                      TimeOptimizers.self, RooflineCommand.self, TimeExchangeCommand.self, EvalCommand.self, DoctorCommand.self,
                      RunsCommand.self, HessianCommand.self]
    )

    /// Usage errors are printed by one rank only, so `mpirun -np 4` shows one message, not four.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let rank = Launcher.current.rank ?? "0"
            if rank == "0" || exitCode(for: error) == .success {
                exit(withError: error)
            }
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}

/// MPI_COMM_WORLD under a watchdog (its deadline becomes the config's once that is read).
func watchedWorld() throws -> WatchedCommunicator {
    WatchedCommunicator(try MPICommunicator.world(), deadline: RunConfig().guards.collectiveTimeout)
}

/// The one preamble of every subcommand that runs on the ranks of a job: MPI_COMM_WORLD under the watchdog, the
/// launch check (and its note), the agreement on the build, the fault plan (`DESCENT_FAULT`), then `body`; any
/// failure becomes one message and one exit status on every rank, and MPI is finalised. (The matrix kernels are
/// agreed with the config, by the trainer.) `stopSignals` keeps a batch system's SIGTERM for a checkpoint instead
/// of ending the process: for the commands that train.
/// `check` (reading the config) runs first, before MPI starts, so that a mistake is reported at once rather than
/// after MPI's start (2.6 s for a process of its own); see `checkBeforeMPI`.
func distributed(stopSignals: Bool = false, check: () throws -> Void = {}, _ body: (Communicator, FaultPlan?) throws -> Void) throws {
    // From the first moment: a batch system's warning signal during start-up is kept for step 1, not fatal.
    if stopSignals { StopSignals.install() }
    try checkBeforeMPI(check)
    let communicator = try watchedWorld()
    let status = onEveryRank(communicator) {
        let environment = ProcessInfo.processInfo.environment
        try LaunchCheck.verify(on: communicator, environment: environment)
        if communicator.rank == 0, let note = LaunchCheck.note(worldSize: communicator.size, environment: environment) {
            FileHandle.standardError.write(Data("descent: note: \(note)\n".utf8))
        }
        try Agreement.check("the build", Agreement.buildIdentity, on: communicator)
        let faults = try communicator.collectively { try FaultPlan.fromEnvironment() }
        try body(communicator, faults)
    }
    MPICommunicator.finalize()
    if status != 0 { throw ExitCode(status) }
}

/// `distributed` for a command that reads a config: `load` runs once before MPI starts (`checkBeforeMPI`), then on
/// every rank collectively, and `body` gets the config every rank read.
func distributed<C>(stopSignals: Bool = false, config load: () throws -> C,
                    _ body: (Communicator, FaultPlan?, C) throws -> Void) throws {
    try distributed(stopSignals: stopSignals, check: { _ = try load() }) { communicator, faults in
        try body(communicator, faults, communicator.collectively(load))
    }
}

/// Runs `check` before MPI starts where an early exit cannot leave another rank waiting: in a process of its own,
/// and on mpirun's rank 0 (mpirun ends the whole job when a rank exits with an error). A failure is printed once and
/// ends the process with status 1. Other ranks, and srun's tasks (whose peers would wait in MPI_Init for one that
/// left), find the same mistake collectively once MPI has started, as every rank reads the config again there.
func checkBeforeMPI(_ check: () throws -> Void) throws {
    let launcher = Launcher.current
    guard launcher.rank == nil || (launcher.mpirunWorldSize != nil && launcher.rank == "0") else { return }
    do {
        try check()
    } catch {
        report("\(error)", rank: nil, of: 1)
        throw ExitCode(1)
    }
}

/// Runs a single-process command's work; a failure is printed as every rank's failures are, and ends with status 1.
func singleProcess(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        report("\(error)", rank: nil, of: 1)
        throw ExitCode(1)
    }
}

/// The config file of a training, comparison or study command.
struct ConfigFileOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "The YAML config file (see configs/ and docs/config.md).")
    var config: String
}

/// `--set key=value`, for every command that reads a config.
struct OverrideOptions: ParsableArguments {
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, e.g. --set optimizer.lr=0.05 (repeatable).",
                                                         valueName: "key=value"))
    var overrides: [String] = []
}

/// What a command that writes an output folder and trains shows and replaces.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Replace an existing output folder of the same name (a run, comparison or study folder).")
    var overwrite = false

    @Option(help: "Progress display: auto, line (one updating terminal line), plain (a line every 10 s), off.")
    var progress: Console.Style = .auto
}

/// The text of a config file, or a ConfigError naming it.
func readConfigFile(_ path: String) throws -> String {
    do {
        return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        let reason = FileManager.default.fileExists(atPath: path) ? "an unreadable file" : "no such file"
        throw ConfigError(source: path, key: "(file)", expected: "a readable YAML config file", found: reason)
    }
}

/// Runs `body` on every rank and turns failures into one message and an exit status on every rank.
func onEveryRank(_ communicator: Communicator, _ body: () throws -> Void) -> Int32 {
        do {
            try body()
            return 0
        } catch let stop as StopRequested {
            if communicator.rank == 0 { FileHandle.standardError.write(Data("descent: \(stop)\n".utf8)) }
            return Trainer.stoppedStatus
        } catch let failure as FailedOnThisRank {
            report(failure.description, rank: communicator.rank, of: communicator.size)
        } catch is FailedOnAnotherRank {
            // The failing rank reports the cause.
        } catch let failure as AgreedError {
            if communicator.rank == 0 { report(failure.description, rank: nil, of: communicator.size) }
        } catch {
            // A failure on this rank alone in the middle of collective work: the others cannot be told, so the
            // whole job is ended rather than left waiting.
            communicator.abort("error: \(error)", code: 1)
        }
        return 1
}

func report(_ message: String, rank: Int?, of size: Int) {
    // With several ranks the failing one names itself and its host (a file missing on one node of a cluster).
    let prefix = size > 1 && rank != nil ? "descent: rank \(rank!) on \(MPICommunicator.processorName): error: " : "descent: error: "
    FileHandle.standardError.write(Data((prefix + message + "\n").utf8))
}

extension Console.Style: ExpressibleByArgument {}
extension KernelMode: ExpressibleByArgument {}
