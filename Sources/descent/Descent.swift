// The command line: `descent train --config FILE [--set key=value ...]`, run on every rank under mpirun;
// `descent path` for optimizer paths on 2-D test functions; `descent time-optimizers`.
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
        subcommands: [Train.self, Compare.self, PathCommand.self, ScalingReportCommand.self, TimeOptimizers.self]
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

    @Flag(help: "Continue from the newest committed checkpoint of the run folder (start at step 0 when there is none). Same as --set checkpoint.resume=auto.")
    var resume = false

    @Option(help: ArgumentHelp("Continue from this checkpoint file (e.g. an older one after a corrupt newest one).", valueName: "file"))
    var resumeFrom: String?

    @Option(help: "Progress display: auto, line (one updating terminal line), plain (a line every 10 s), off.")
    var progress: Console.Style = .auto

    func run() throws {
        // From the first moment: a batch system's warning signal during start-up is kept for step 1, not fatal.
        StopSignals.install()
        let communicator = try watchedWorld()
        let status = train(on: communicator)
        MPICommunicator.finalize()
        if status != 0 { throw ExitCode(status) }
    }

    /// Runs training and turns failures into one message and an exit status on every rank.
    func train(on communicator: Communicator) -> Int32 {
        onEveryRank(communicator) {
            let environment = ProcessInfo.processInfo.environment
            try LaunchCheck.verify(on: communicator, environment: environment)
            if communicator.rank == 0, let note = LaunchCheck.note(worldSize: communicator.size, environment: environment) {
                FileHandle.standardError.write(Data("descent: note: \(note)\n".utf8))
            }
            let faults = try communicator.collectively { try FaultPlan.fromEnvironment() }
            try Agreement.check("the build", Agreement.buildIdentity, on: communicator)
            let runConfig = try communicator.collectively { try loadConfig() }
            let console = Console(enabled: communicator.rank == 0, style: progress)
            let trainer = try Trainer(config: runConfig, communicator: communicator, overwrite: overwrite, console: console,
                                      resumeFrom: resumeFrom, hooks: faults)
            try trainer.run()
        }
    }

    func loadConfig() throws -> RunConfig {
        try RunConfig.load(yaml: readConfigFile(config), fileName: config,
                           overrides: overrides + (resume ? ["checkpoint.resume=auto"] : []))
    }
}

/// MPI_COMM_WORLD under a watchdog (its deadline becomes the config's once that is read).
func watchedWorld() throws -> WatchedCommunicator {
    WatchedCommunicator(try MPICommunicator.world(), deadline: RunConfig().guards.collectiveTimeout)
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

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the variants of a comparison in one launch (global batch sizes, or optimizers on one data stream).",
        discussion: "The config is a training config with a compare: block (see configs/sgd-vs-gd.yaml and "
            + "configs/dlfs-optimizers.yaml). Results go to <output.dir>/<name>/: report.html, comparison.csv, charts, "
            + "and one run folder per variant."
    )

    @Option(name: .shortAndLong, help: "The YAML config file with a compare: block.")
    var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, e.g. --set compare.target_loss=0.5.", valueName: "key=value"))
    var overrides: [String] = []

    @Flag(help: "Replace an existing comparison folder of the same name.")
    var overwrite = false

    @Option(help: "Progress display: auto, line, plain, off.")
    var progress: Console.Style = .auto

    func run() throws {
        let communicator = try watchedWorld()
        let status = onEveryRank(communicator) {
            try LaunchCheck.verify(on: communicator, environment: ProcessInfo.processInfo.environment)
            let c = try communicator.collectively {
                try CompareConfig.load(yaml: readConfigFile(config), fileName: config, overrides: overrides)
            }
            let console = Console(enabled: communicator.rank == 0, style: progress)
            try Comparison(config: c, communicator: communicator, overwrite: overwrite, console: console).run()
        }
        MPICommunicator.finalize()
        if status != 0 { throw ExitCode(status) }
    }
}

extension Console.Style: ExpressibleByArgument {}

struct TimeOptimizers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "time-optimizers",
        abstract: "Time one update of every optimizer on flat buffers (no data, no MPI); prints medians."
    )

    @Option(help: "Parameters per update (default: the default MLP, 784-100-100-100-100-10).")
    var parameters = 109_386

    @Option(help: "Updates per timed round.")
    var updates = 50

    @Option(help: "Timed rounds; the median is reported.")
    var repeats = 7

    func validate() throws {
        guard parameters > 0, updates > 0, repeats > 0 else {
            throw ValidationError("--parameters, --updates and --repeats must be positive")
        }
    }

    func run() throws {
        print("optimizer                 µs/update  ns/parameter  (min..max µs)")
        var cases: [(String, OptimizerSettings)] = OptimizerKind.allCases.map { ($0.rawValue, OptimizerSettings($0)) }
        var amsgrad = OptimizerSettings(.adam)
        amsgrad.amsgrad = true
        cases.insert(("adam amsgrad", amsgrad), at: cases.firstIndex { $0.0 == "adamw" }!)
        for (label, settings) in cases {
            let rounds = OptimizerTiming.measure(settings, parameterCount: parameters, updates: updates, repeats: repeats)
                .sorted()
            let median = rounds[rounds.count / 2]
            print(label.padding(toLength: 24, withPad: " ", startingAt: 0)
                  + String(format: "%10.1f  %12.2f  (%.1f..%.1f)", median * 1e6, median * 1e9 / Double(parameters),
                           rounds.first! * 1e6, rounds.last! * 1e6))
        }
    }
}

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
