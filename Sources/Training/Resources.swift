// Resources before they run out: what a run will hold per rank, against the memory this host has, and what its
// checkpoints will take, against the disk — refused at start with both figures, not killed halfway.
import Collectives
import Config
import Foundation
import Models
import Numerics
import Optimizers

/// The bytes a run holds per rank in its largest buffers, estimated before any is allocated.
public struct MemoryEstimate: Equatable, Sendable {
    /// Every replica's parameters, and the initial copy they start from.
    public var parameters: Int
    /// Every replica's optimizer state for the parameters this rank updates.
    public var optimizerState: Int
    /// The exchange: its buffer of every replica's gradient, the tree's blocks, one scratch vector and the slices
    /// in transit (or the shared-memory regions).
    public var exchange: Int
    /// The model's workspace for one chunk (activations and their gradients), for training and for evaluation.
    public var workspace: Int

    public var total: Int { parameters + optimizerState + exchange + workspace }

    /// - Parameters:
    ///   - owned: the parameters this rank updates (all of them unless the step is sharded).
    public init(parameterCount p: Int, replicas: [OptimizerSettings], owned: Int, chunk: Int, widths: Int) {
        let float = MemoryLayout<Float>.stride, r = replicas.count
        parameters = (r + 1) * p * float
        optimizerState = replicas.map { $0.stateBufferCount }.reduce(0, +) * owned * float
        exchange = 4 * r * (p + 2) * float
        workspace = 2 * 3 * chunk * widths * float
    }

    /// "58.4 GB (parameters 29.2 GB, optimizer state 14.6 GB, exchange 14.6 GB, workspace 0.1 GB)".
    public var text: String {
        "\(gigabytes(total)) (parameters \(gigabytes(parameters)), optimizer state \(gigabytes(optimizerState)), "
            + "exchange \(gigabytes(exchange)), workspace \(gigabytes(workspace)))"
    }
}

func gigabytes(_ bytes: Int) -> String { fixed(Double(bytes) / 1e9, 1) + " GB" }

enum Resources {
    /// The memory this host has left for new allocations (MemAvailable), nil where /proc/meminfo does not say.
    static func availableMemory() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kilobytes * 1024
    }

    /// The free bytes of the file system that holds `path` (or its nearest existing parent).
    static func freeDisk(at path: String) -> Int? {
        var probe = path
        while !FileManager.default.fileExists(atPath: probe), probe.contains("/") {
            probe = String(probe[..<probe.lastIndex(of: "/")!])
            if probe.isEmpty { probe = "/" }
        }
        var info = statvfs()
        guard statvfs(probe.isEmpty ? "." : probe, &info) == 0 else { return nil }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// Refuses, on this rank, a run whose estimate exceeds its share of the host's available memory (the ranks on
    /// this host share it evenly), naming both figures.
    static func checkMemory(_ estimate: MemoryEstimate, model: String, ranksOnHost: Int, available: Int?) throws {
        guard let available else { return }
        let share = available / max(ranksOnHost, 1)
        guard estimate.total > share else { return }
        throw AgreedFailure(description: "the run needs about \(estimate.text) per rank for model \(model), and this host has "
                            + "\(gigabytes(available)) available for its \(ranksOnHost) rank\(ranksOnHost == 1 ? "" : "s") "
                            + "(\(gigabytes(share)) each); use a smaller model, fewer replicas or fewer ranks per host")
    }

    /// Refuses checkpoints that would not fit: `keep` of them (the parameters and optimizer state of every replica,
    /// whole) against the free space where they go.
    static func checkDisk(checkpointBytes: Int, keep: Int, directory: String, free: Int?) throws {
        guard let free, checkpointBytes * (keep + 1) > free else { return }
        throw AgreedFailure(description: "checkpoints in \(directory) need about \(gigabytes(checkpointBytes * (keep + 1))) "
                            + "(\(keep) kept and one being written, \(gigabytes(checkpointBytes)) each), and the disk there has "
                            + "\(gigabytes(free)) free; lower checkpoint.keep, or set checkpoint.every: 0")
    }
}

extension Trainer {
    /// Before the large buffers are allocated: the memory every rank will hold against its share of its host's,
    /// and the disk the checkpoints will take. Collective: any rank's refusal stops every rank with its message.
    static func checkResources(_ plan: [ReplicaPlan], model: any Model, chunk: Int, config: RunConfig, output: RunOutput,
                               on communicator: Communicator) throws {
        let p = model.parameterCount, n = communicator.size
        let sharded = plan.count == 1 && n > 1 && config.training.reduction == .deterministic
        let widths = (model as? MLP)?.sizes.reduce(0, +) ?? 0
        let estimate = MemoryEstimate(parameterCount: p, replicas: plan.map(\.settings), owned: sharded ? (p + n - 1) / n : p,
                                      chunk: chunk, widths: widths)
        try communicator.collectively {
            try Resources.checkMemory(estimate, model: model.shapeText, ranksOnHost: Launcher.current.ranksOnThisNode ?? 1,
                                      available: Resources.availableMemory())
            guard communicator.rank == 0, case let .folder(_, checkpoints, _) = output, checkpoints, config.checkpoint.every > 0,
                  plan.count == 1 else { return }
            let bytes = (1 + plan[0].settings.stateBufferCount) * p * MemoryLayout<Float>.stride
            let directory = CheckpointStore.directory(ofRun: config.outputDirectory + "/" + config.name)
            try Resources.checkDisk(checkpointBytes: bytes, keep: config.checkpoint.keep, directory: directory,
                                    free: Resources.freeDisk(at: directory))
        }
    }
}
