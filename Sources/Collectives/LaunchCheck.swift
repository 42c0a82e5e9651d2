// What the launcher (mpirun, srun, sbatch) tells a process through its environment — read here and nowhere
// else — and launch sanity: the world MPI gave this process against the one its launcher meant to start.
import Foundation

/// The launcher's variables, as this process sees them before and after MPI starts.
public struct Launcher: Sendable {
    /// mpirun's OMPI_COMM_WORLD_SIZE, as text (nil when not started by mpirun).
    public var mpirunWorldSize: String?
    /// This process's rank as the launcher numbered it (mpirun, PMIx or srun), readable before MPI starts.
    public var rank: String?
    /// Ranks the launcher placed on this node (OMPI_COMM_WORLD_LOCAL_SIZE, or SLURM_NTASKS_PER_NODE).
    public var ranksOnThisNode: Int?
    /// srun's task id and the tasks of its job step (set for the tasks srun starts).
    public var slurmTask: String?
    public var slurmStepTasks: String?
    /// The Slurm job and its task count (set inside any Slurm job, batch scripts included).
    public var slurmJob: String?
    public var slurmJobTasks: String?

    public init(environment e: [String: String]) {
        mpirunWorldSize = e["OMPI_COMM_WORLD_SIZE"]
        rank = e["OMPI_COMM_WORLD_RANK"] ?? e["PMIX_RANK"] ?? e["SLURM_PROCID"]
        ranksOnThisNode = Int(e["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? e["SLURM_NTASKS_PER_NODE"] ?? "")
        slurmTask = e["SLURM_PROCID"]
        slurmStepTasks = e["SLURM_STEP_NUM_TASKS"]
        slurmJob = e["SLURM_JOB_ID"]
        slurmJobTasks = e["SLURM_NTASKS"]
    }

    /// This process's launcher.
    public static let current = Launcher(environment: ProcessInfo.processInfo.environment)
}

/// Compares the MPI world size with what `mpirun` or `srun` say they started, so that N processes that each
/// came up as a one-rank world (plain `srun` with an Open MPI that has no PMI support for it) refuse to train
/// as N separate jobs writing the same run folder.
public enum LaunchCheck {
    /// Why this launch is wrong, or nil when the world size agrees with the launcher.
    ///
    /// - `OMPI_COMM_WORLD_SIZE` is set by `mpirun` for every rank it starts: authoritative when present.
    /// - Otherwise `SLURM_STEP_NUM_TASKS` (with `SLURM_PROCID`) is set by `srun` for the tasks of a job step.
    public static func problem(worldSize: Int, environment: [String: String]) -> String? {
        let launcher = Launcher(environment: environment)
        if let text = launcher.mpirunWorldSize {
            guard let intended = Int(text), intended == worldSize else {
                return "mpirun started OMPI_COMM_WORLD_SIZE=\(text) ranks, but MPI gives this process a world of "
                    + "\(worldSize); the processes do not form one job (is this descent built against the Open MPI "
                    + "of that mpirun?)"
            }
            return nil
        }
        if launcher.slurmTask != nil, let text = launcher.slurmStepTasks {
            guard let intended = Int(text), intended == worldSize else {
                return "srun started SLURM_STEP_NUM_TASKS=\(text) tasks, but MPI gives this process a world of "
                    + "\(worldSize): they would train as \(text) separate \(worldSize)-rank jobs. Launch with "
                    + "`srun --mpi=pmix` (see `srun --mpi=list`), or with mpirun inside the allocation"
            }
            return nil
        }
        return nil
    }
}

extension LaunchCheck {
    /// A warning for a launch that works but leaves tasks idle, or nil: `descent` started directly in a Slurm
    /// batch script, whose own step is one process (it sets SLURM_NTASKS for the job, not SLURM_STEP_NUM_TASKS).
    public static func note(worldSize: Int, environment: [String: String]) -> String? {
        let launcher = Launcher(environment: environment)
        guard launcher.mpirunWorldSize == nil, launcher.slurmStepTasks == nil,
              launcher.slurmJob != nil, let text = launcher.slurmJobTasks, let tasks = Int(text),
              tasks > worldSize else { return nil }
        return "this Slurm job has SLURM_NTASKS=\(tasks) tasks but descent runs as \(worldSize) rank"
            + (worldSize == 1 ? "" : "s") + ": start it with `mpirun` or `srun --mpi=pmix` inside the batch script "
            + "(see launch/descent.sbatch) to use them all"
    }
}

/// A launch whose processes do not form the job the launcher meant.
public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

extension LaunchCheck {
    /// Throws on every rank (one message, from the lowest rank that sees the problem) when the launch is wrong.
    public static func verify(on communicator: Communicator, environment: [String: String]) throws {
        try communicator.collectively {
            if let problem = problem(worldSize: communicator.size, environment: environment) {
                throw LaunchError(description: problem)
            }
        }
    }
}
