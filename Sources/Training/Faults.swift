// Fault injection: one switch, DESCENT_FAULT, that makes one rank misbehave at one step, so that every guard
// is exercised under a real mpirun.
import Config
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `DESCENT_FAULT=KIND[,rank=R][,step=S][,ms=M]` (rank 0, step 1 and 100 ms by default):
/// - `kill`: the rank sends itself SIGKILL during step S (a node dies);
/// - `exit`: the rank exits alone with status 3 during step S, without telling the others;
/// - `term`: the rank receives SIGTERM during step S (what a batch system sends before a time limit);
/// - `nan`: the rank's local loss and gradient of step S become NaN;
/// - `stall`: the rank stops making progress during step S (sleeps until killed);
/// - `slow`: the rank sleeps M milliseconds in every step from step S on (a straggler; it also stretches a short
///   run over a known wall time, which the batch-system tests need to be cut by a time limit);
/// - `config`: the rank reads a different seed than the others (a config edited on one node);
/// - `crash-in-commit`: the rank dies after writing the first checkpoint at or after step S and before
///   committing it.
public struct FaultPlan: Equatable, Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case kill, exit, term, nan, stall, slow, config
        case crashInCommit = "crash-in-commit"
    }

    public var kind: Kind
    public var rank: Int
    public var step: Int
    /// The sleep per step of `slow`, in milliseconds.
    public var milliseconds: Int = 100

    public static let variable = "DESCENT_FAULT"

    /// The plan in the environment, or nil when the variable is unset or empty.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> FaultPlan? {
        guard let text = environment[variable], !text.isEmpty else { return nil }
        return try parse(text)
    }

    public static func parse(_ text: String) throws -> FaultPlan {
        let expected = "KIND[,rank=R][,step=S][,ms=M] with KIND one of " + Kind.allCases.map(\.rawValue).joined(separator: ", ")
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = parts.first, let kind = Kind(rawValue: first) else {
            throw ConfigError(source: "environment", key: variable, expected: expected, found: "'\(text)'")
        }
        var plan = FaultPlan(kind: kind, rank: 0, step: 1)
        for part in parts.dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, let value = Int(kv[1]), value >= 0 else {
                throw ConfigError(source: "environment", key: variable, expected: expected, found: "'\(part)' in '\(text)'")
            }
            switch kv[0] {
            case "rank": plan.rank = value
            case "step" where value >= 1: plan.step = value
            case "ms": plan.milliseconds = value
            default: throw ConfigError(source: "environment", key: variable, expected: expected, found: "'\(part)' in '\(text)'")
            }
        }
        return plan
    }

    /// Whether this plan strikes `rank` now, at optimizer step `step` (counted from 1).
    func strikes(_ kind: Kind, rank: Int, step: Int) -> Bool {
        self.kind == kind && self.rank == rank && self.step == step
    }
}

/// Named points at which a run lets a test act on it. The training loop calls them; production runs pass none.
public protocol TrainingHooks: Sendable {
    /// Before anything else, on `rank`: may change the config this rank trains with.
    func adjust(_ config: inout RunConfig, rank: Int)
    /// At the start of step `step` (counted from 1) on `rank`.
    func stepStarting(rank: Int, step: Int)
    /// Whether `rank`'s local loss and gradient sums of step `step` are to be made non-finite.
    func corruptsSums(rank: Int, step: Int) -> Bool
    /// On rank 0, after the checkpoint of step `step` is written and before it is committed.
    func checkpointWritten(step: Int)
}

extension FaultPlan: TrainingHooks {
    public func adjust(_ config: inout RunConfig, rank: Int) {
        if kind == .config, self.rank == rank { config.seed &+= 1 }
    }

    public func corruptsSums(rank: Int, step: Int) -> Bool { strikes(.nan, rank: rank, step: step) }

    public func checkpointWritten(step: Int) {
        guard kind == .crashInCommit, rank == 0, step >= self.step else { return }
        FileHandle.standardError.write(Data(("descent: fault injection: rank 0 dies after writing "
            + "\(CheckpointStore.fileName(step: step)) and before committing it\n").utf8))
        kill(getpid(), SIGKILL)
    }

    /// Carries out a process-level fault (kill, exit, term, stall; slow at every step from `step` on) if it strikes
    /// `rank` at `step`.
    public func stepStarting(rank: Int, step: Int) {
        if kind == .slow, self.rank == rank, step >= self.step {
            usleep(useconds_t(milliseconds) * 1000)
            return
        }
        guard self.rank == rank, self.step == step else { return }
        let now = Date().timeIntervalSince1970
        func say(_ what: String) {
            FileHandle.standardError.write(Data("descent: fault injection: rank \(rank) \(what) at step \(step) (unix time \(now))\n".utf8))
        }
        switch kind {
        case .kill:
            say("sends itself SIGKILL")
            kill(getpid(), SIGKILL)
        case .exit:
            say("exits alone with status 3")
            Glibc.exit(3)
        case .term:
            say("receives SIGTERM")
            kill(getpid(), SIGTERM)
        case .stall:
            say("stalls")
            while true { sleep(3600) }
        default:
            break
        }
    }
}
