// Launch sanity: the world MPI gave this process against the one its launcher meant to start.
import Collectives

/// Compares the MPI world size with what `mpirun` or `srun` say they started, so that N processes that each
/// came up as a one-rank world (plain `srun` with an Open MPI that has no PMI support for it) refuse to train
/// as N separate jobs writing the same run folder.
public enum LaunchCheck {
    /// Why this launch is wrong, or nil when the world size agrees with the launcher.
    ///
    /// - `OMPI_COMM_WORLD_SIZE` is set by `mpirun` for every rank it starts: authoritative when present.
    /// - Otherwise `SLURM_STEP_NUM_TASKS` (with `SLURM_PROCID`) is set by `srun` for the tasks of a job step.
    public static func problem(worldSize: Int, environment: [String: String]) -> String? {
        if let text = environment["OMPI_COMM_WORLD_SIZE"] {
            guard let intended = Int(text), intended == worldSize else {
                return "mpirun started OMPI_COMM_WORLD_SIZE=\(text) ranks, but MPI gives this process a world of "
                    + "\(worldSize); the processes do not form one job (is this descent built against the Open MPI "
                    + "of that mpirun?)"
            }
            return nil
        }
        if environment["SLURM_PROCID"] != nil, let text = environment["SLURM_STEP_NUM_TASKS"] {
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
        guard environment["OMPI_COMM_WORLD_SIZE"] == nil, environment["SLURM_STEP_NUM_TASKS"] == nil,
              environment["SLURM_JOB_ID"] != nil, let text = environment["SLURM_NTASKS"], let tasks = Int(text),
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
