// `descent doctor`: what this machine (or every rank of a job) would train with — the build, MPI, the CPU, both
// kernel modes and how they did against an exact product, the threads and the data — before anything is trained.
import ArgumentParser
import Collectives
import Datasets
import Foundation
import MPICollectives
import Numerics
import Training

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Print the build, MPI, the CPU, the matrix kernels of both modes (checked against a Double product), threads and data.",
        discussion: "Run it as a job is run (mpirun -np 4 descent doctor, srun descent doctor): every rank reports, and ranks "
            + "that would compute with different native kernels are named."
    )

    @Option(help: "The data folder to look for Fashion-MNIST in.")
    var data = FashionMNIST.defaultDirectory

    func run() throws {
        try distributed { communicator, _ in
            let (line, native) = try communicator.collectively { try rankReport() }
            let lines = try communicator.allGather(text: line)
            let natives = try communicator.allGather(text: native)
            guard communicator.rank == 0 else { return }
            print(header(ranks: communicator.size))
            print(grouped(lines).joined(separator: "\n"))
            let kinds = Set(natives)
            print(kinds.count == 1 ? "native kernels: the same on every rank"
                  : "native kernels: \(kinds.count) kinds across the ranks — runtime.kernels: native would be refused; portable runs")
        }
    }

    func header(ranks: Int) -> String {
        let environment = ProcessInfo.processInfo.environment
        let files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        let missing = files.filter { !FileManager.default.fileExists(atPath: data + "/" + $0) }
        let variables = ["OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "DESCENT_PORTABLE_PATH"]
            .map { "\($0)=\(environment[$0] ?? "(unset)")" }.joined(separator: " ")
        return """
            descent \(descentVersion), \(Agreement.buildIdentity)
            MPI: \(MPICommunicator.libraryVersion); \(ranks) rank\(ranks == 1 ? "" : "s")\(launcherText)
            threads: \(ProcessInfo.processInfo.activeProcessorCount) cores for rank 0; \(variables)
            data: \(data): \(missing.isEmpty ? "Fashion-MNIST found" : "missing \(missing.joined(separator: ", ")) (apt-get install dataset-fashion-mnist)")
            """
    }

    var launcherText: String {
        let l = Launcher.current
        if let job = l.slurmJob { return ", Slurm job \(job)" }
        return l.mpirunWorldSize == nil ? ", no launcher (a singleton)" : ", mpirun"
    }

    /// This rank's line: host, CPU, both modes with their check; and its native kernels, to compare.
    func rankReport() throws -> (String, String) {
        let cpu = CPUDescription.current
        let portable = try MatrixKernels.use(.portable)
        let portableCheck = MatrixKernels.checkAgainstDouble()
        let paths = PortablePath.allCases.filter { $0 <= PortablePath.best }.map(\.name).joined(separator: ", ")
        var line = " on \(hostName()): \(cpu.description), \(cpu.extensions.joined(separator: " "))\n"
            + "  \(portable.description) (\(portable.reason); paths here: \(paths)); error \(check(portableCheck))"
        var native = "none"
        do {
            let choice = try MatrixKernels.use(.native)
            native = choice.bits
            line += "\n  \(choice.description); error \(check(MatrixKernels.checkAgainstDouble()))"
        } catch {
            line += "\n  native: unavailable: \(error)"
        }
        _ = try MatrixKernels.use(.portable)
        return (line, native)
    }

    func check(_ ratio: Double) -> String {
        "\(fixed(ratio, 3)) of the rounding bound on the default MLP's products" + (ratio <= 1 ? "" : " — WRONG RESULTS on this CPU")
    }

    /// Identical rank reports (" on HOST: …") once, after the ranks that share them.
    func grouped(_ lines: [String]) -> [String] {
        var order: [String] = [], ranks: [String: [Int]] = [:]
        for (r, line) in lines.enumerated() {
            let body = line
            if ranks[body] == nil { order.append(body) }
            ranks[body, default: []].append(r)
        }
        return order.map { body in
            let r = ranks[body]!
            return (r.count == 1 ? "rank \(r[0])" : "ranks " + r.map(String.init).joined(separator: ", ")) + body
        }
    }
}
