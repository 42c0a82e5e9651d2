// The command line: `descent train`, `compare`, `study`, `path`, `ewma`, `scaling-report`, `time-optimizers` and `roofline`, one
// file per subcommand; this one holds the root command and how failures are reported on every rank.
import ArgumentParser
import Collectives
import Config
import Experiments
import Foundation
import MPICollectives
import Optimizers
import Training

@main
struct Descent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "descent",
        abstract: "Data-parallel training under mpirun, to compare gradient descent and its optimizers.",
        version: descentVersion,
        subcommands: [Train.self, Compare.self, StudyCommand.self, PathCommand.self, MovingAveragesCommand.self, ScalingReportCommand.self,
                      TimeOptimizers.self, RooflineCommand.self, TimeExchangeCommand.self, EvalCommand.self, DoctorCommand.self]
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
