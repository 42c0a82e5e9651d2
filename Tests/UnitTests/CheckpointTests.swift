// The parts of checkpoints and guards that need no mpirun: the file format, the commit and pruning of a folder,
// the finiteness kernel, the fault switch and the comparison of configs.
import DescentTestSupport
import Foundation
import Numerics
import Testing
@testable import Config
@testable import Experiments
@testable import Training

@Suite("Checkpoint files")
struct CheckpointFileTests {
    static func header(step: Int, buffers: [(String, Int)]) -> CheckpointHeader {
        var progress = ReplicaProgress()
        (progress.windowLoss, progress.epochLoss, progress.lastTrainLoss, progress.lastTestLoss) = (.nan, 1.5, .infinity, 0.3)
        (progress.lastTestAccuracy, progress.updateSeconds) = (0.9, 0.1)
        let position = RunPosition(step: step, epoch: 2, batch: 3, samples: 99, windowSteps: 1, epochSteps: 2,
                                   compute: 0.5, exchange: 0.25, wall: 1)
        return CheckpointHeader(
            format: 1, position: position, ranks: 2, configHash: "x", config: "name: a\n",
            random: .init(generator: "g", seed: 5, stream: 2), orderHash: "y", parameterCount: 7,
            replicas: [.init(label: "a", optimizer: "nadam", optimizerStep: 4, scalars: ["mu_product": 0.1 + 0.2],
                             progress: progress, guards: GuardState(firstLoss: 2.3, skippedInRow: 0, skipped: 1, divergingInRow: 0))],
            buffers: buffers.map { .init(name: $0.0, count: $0.1) })
    }

    @Test("encode then decode gives back every buffer bit for bit and the header's numbers exactly")
    func roundTrip() throws {
        let theta: [Float] = [1, -0, .leastNonzeroMagnitude, 3.25, -7e30, .greatestFiniteMagnitude, 0.1]
        let m: [Float] = (0..<7).map { Float($0) / 3 }
        let bytes = try CheckpointStore.encode(Self.header(step: 12, buffers: [("0/parameters", 7), ("0/optimizer/m", 7)]),
                                               buffers: [theta, m])
        let (h, buffers) = try CheckpointStore.decode(bytes, file: "f")
        #expect(buffers["0/parameters"]!.map(\.bitPattern) == theta.map(\.bitPattern))
        #expect(buffers["0/optimizer/m"]!.map(\.bitPattern) == m.map(\.bitPattern))
        #expect(h.step == 12 && h.epoch == 2 && h.batch == 3 && h.random.seed == 5)
        // Doubles survive the JSON exactly, NaN and ∞ included.
        #expect(h.replicas[0].scalars["mu_product"]!.bitPattern == (0.1 + 0.2).bitPattern)
        #expect(h.replicas[0].progress.windowLoss.isNaN && h.replicas[0].progress.lastTrainLoss == .infinity)
        // The run state comes back whole.
        #expect(h.position == Self.header(step: 12, buffers: []).position)
        #expect(h.replicas[0].guards == GuardState(firstLoss: 2.3, skippedInRow: 0, skipped: 1, divergingInRow: 0))
    }

    @Test("every single flipped bit of a checkpoint file, frame and payload, is caught")
    func everyBit() throws {
        let bytes = try CheckpointStore.encode(Self.header(step: 1, buffers: [("0/parameters", 3)]), buffers: [[1, 2, 3]])
        for i in 0..<bytes.count {
            for bit in 0..<8 {
                var damaged = bytes
                damaged[i] ^= UInt8(1 << bit)
                #expect(throws: CheckpointError.self) { try CheckpointStore.decode(damaged, file: "f") }
            }
        }
    }

    @Test("a commit keeps the newest K committed files and removes uncommitted and temporary leftovers")
    func pruning() throws {
        let dir = try temporaryDirectory("descent-ckpt").path
        let bytes = try CheckpointStore.encode(Self.header(step: 1, buffers: []), buffers: [])
        // Leftovers of an earlier attempt that went further before it crashed.
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + CheckpointStore.fileName(step: 40)))
        try Data([1, 2]).write(to: URL(fileURLWithPath: dir + "/step-000000016.ckpt.tmp"))
        for step in [4, 8, 12, 16] { try CheckpointStore.commit(bytes, step: step, directory: dir, keep: 2) }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(names == ["LATEST", "step-000000012.ckpt", "step-000000016.ckpt"])
        let record = try #require(try CheckpointStore.latest(in: dir))
        #expect(record.step == 16 && record.file == "step-000000016.ckpt")
        #expect(record.fingerprint == hexDigest(CheckpointStore.storedFingerprint(bytes)))
        #expect(try CheckpointStore.latest(in: dir + "/nothing") == nil)
    }
}

@Suite("Guards and fault switch")
struct GuardUnitTests {
    @Test("allFinite finds NaN, +∞ and −∞ anywhere, in the vector part and in the tail", arguments: [0, 5, 8, 16, 21, 22])
    func finiteness(position: Int) {
        var x = (0..<23).map { Float($0) * 1e37 - 1e38 }  // large but finite values
        #expect(Kernels.allFinite(x, count: x.count))
        for bad in [Float.nan, .infinity, -.infinity] {
            x[position] = bad
            #expect(!Kernels.allFinite(x, count: x.count), "\(bad) at \(position)")
        }
    }

    @Test("DESCENT_FAULT is read with its defaults, and anything else is refused naming the variable")
    func faultSwitch() throws {
        #expect(try FaultPlan.parse("kill,rank=1,step=15") == FaultPlan(kind: .kill, rank: 1, step: 15))
        #expect(try FaultPlan.parse("crash-in-commit") == FaultPlan(kind: .crashInCommit, rank: 0, step: 1))
        #expect(try FaultPlan.parse("slow,rank=1,ms=250") == FaultPlan(kind: .slow, rank: 1, step: 1, milliseconds: 250))
        #expect(try FaultPlan.fromEnvironment([:]) == nil)
        for bad in ["explode", "kill,rank=x", "nan,step=0", "stall,when=3"] {
            #expect(throws: ConfigError.self, "\(bad)") { try FaultPlan.parse(bad) }
        }
    }

    @Test("resume compares the keys that change the trajectory and lets the others change")
    func trajectoryKeys() throws {
        let base = try RunConfig.load(yaml: "optimizer: {name: adam}\ntraining: {epochs: 3}", fileName: "a")
        func with(_ overrides: String...) throws -> RunConfig {
            try RunConfig.load(yaml: "optimizer: {name: adam}\ntraining: {epochs: 3}", fileName: "a", overrides: overrides)
        }
        #expect(try with("optimizer.lr=0.01", "seed=2").trajectoryDifferences(from: base).map(\.key) == ["optimizer.lr", "seed"])
        #expect(try with("training.log_every=7", "training.epochs=9", "checkpoint.every=3", "guards.non_finite=skip",
                         "name=other").trajectoryDifferences(from: base).isEmpty)
        #expect(try with("training.chunk=16").trajectoryDifferences(from: base).map(\.key) == ["training.chunk"])
        // With a cosine schedule over the whole run, its length decides every learning rate.
        let cosine = try with("schedule.name=cosine")
        #expect(try with("schedule.name=cosine", "training.epochs=9").trajectoryDifferences(from: cosine).map(\.key)
                == ["training.epochs"])
    }
}
