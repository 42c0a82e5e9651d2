// The deterministic reduction's promise under real mpirun: the same parameters and metrics, bit for bit, on 1,
// 2, 3 and 4 ranks, for every optimizer, for full-batch GD and on Fashion-MNIST; a checkpoint resumes on another
// number of ranks; Open MPI's choice of allreduce algorithm changes `reduction: mpi` and not the deterministic one.
import Datasets
import DescentTestSupport
import Foundation
import Optimizers
import Testing

/// The final hash and metrics (without wall time) of one finished run, or nil with the failure recorded.
func finishedRun(_ r: ProcessOutput, _ run: URL, _ label: String) throws -> (hash: String, metrics: [[String: String]])? {
    #expect(r.status == 0 && !r.timedOut, "\(label): \(r.stderr)")
    guard let hash = finalHash(r) else {
        Issue.record("\(label): no final hash in \(r.stdout)")
        return nil
    }
    return (hash, try metricsWithoutWallTime(run))
}

/// The config block that runs optimizer `name` at its torch defaults, except L-BFGS: torch's default, a fixed step
/// of 1 with twenty iterations on one mini-batch, diverges; three iterations with the line search do not. Shampoo
/// refreshes its inverse roots every 3 steps, so that a short run uses them. Full Newton steps on a network's
/// indefinite Hessian leap; Newton and saddle-free Newton take a tenth of one, damped.
func defaultOptimizerBlock(_ name: String) -> String {
    switch name {
    case OptimizerKind.lbfgs.rawValue: return "{name: lbfgs, max_iter: 3, line_search_fn: strong_wolfe}"
    case OptimizerKind.shampoo.rawValue: return "{name: shampoo, precondition_frequency: 3}"
    case OptimizerKind.newton.rawValue, OptimizerKind.saddleFreeNewton.rawValue: return "{name: \(name), lr: 0.1, damping: 1}"
    default: return "{name: \(name)}"
    }
}

@Suite("Same bits on any number of ranks", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct SameBitsTests {
    /// Trains `config` with `sets` at each world size and expects one hash and one metrics table for all of them.
    /// Returns the hash.
    @discardableResult
    func expectSameBits(_ config: URL, name: String, ranks: [Int], sets: [String], in dir: URL,
                        mpirunArguments: [String] = []) throws -> String? {
        var runs: [(ranks: Int, hash: String, metrics: [[String: String]])] = []
        for n in ranks {
            let r = try runDescent(ranks: n, ["train", "--config", config.path, "--overwrite"] + sets.flatMap { ["--set", $0] },
                                   directory: dir, mpirunArguments: mpirunArguments)
            guard let run = try finishedRun(r, dir.appendingPathComponent("runs/\(name)"), "\(name) at np \(n)") else { return nil }
            runs.append((n, run.hash, run.metrics))
        }
        for other in runs.dropFirst() {
            #expect(other.hash == runs[0].hash, "\(name): np \(other.ranks) ends on \(other.hash), np \(runs[0].ranks) on \(runs[0].hash)")
            #expect(other.metrics == runs[0].metrics, "\(name): the metrics at np \(other.ranks) differ from np \(runs[0].ranks)")
        }
        // Metrics that were really evaluated: losses and accuracies in the epoch rows.
        #expect(runs[0].metrics.contains { Double($0["test_loss"] ?? "") != nil && Double($0["batch_loss"] ?? "") != nil })
        return runs[0].hash
    }

    @Test("20 steps of every optimizer give one hash and one metrics table at np = 1, 2, 3 and 4",
          arguments: OptimizerKind.allCases.map(\.rawValue))
    func everyOptimizer(_ optimizer: String) throws {
        let dir = try temporaryDirectory("descent-bits")
        // Batch 64 in chunks of 8: 8 chunks, so 3 ranks own 3, 3 and 2 of them, in blocks of 2 + 1, 1 + 2 and 2.
        let config = try writeSyntheticConfig(in: dir, name: "bits", optimizer: defaultOptimizerBlock(optimizer),
                                              extra: "checkpoint: {every: 0}")
        try expectSameBits(config, name: "bits", ranks: [1, 2, 3, 4],
                           sets: ["training.steps=20", "training.chunk=8", "training.log_every=2"], in: dir)
    }

    @Test("full-batch GD gives one hash and one metrics table, its curvature rows (Lanczos on H·v) included, at np = 1, 2, 3 and 4")
    func fullBatch() throws {
        let dir = try temporaryDirectory("descent-bits-gd")
        let config = try writeSyntheticConfig(in: dir, name: "gd", optimizer: "{name: sgd, lr: 0.5}")
        // 600 samples in the automatic chunks of 64: 10 chunks; the curvature's 300 samples in 5.
        try expectSameBits(config, name: "gd", ranks: [1, 2, 3, 4],
                           sets: ["training.batch=full", "training.epochs=5", "training.log_every=1", "curvature.every=2",
                                  "curvature.subset=300", "curvature.iterations=8", "curvature.top_k=2", "curvature.trace_probes=2"], in: dir)
        let rows = try readCSV(dir.appendingPathComponent("runs/gd/metrics.csv")).filter { $0["kind"] == "curvature" }
        #expect(rows.map { $0["step"]! } == ["0", "2", "4"])
        #expect(rows.allSatisfy { row in
            guard let top = Double(row["sharpness"]!), let bottom = Double(row["lambda_min"]!), Double(row["hessian_trace"]!) != nil else { return false }
            return top > 0 && bottom < top
        }, "\(rows)")
    }

    @Test("descent hessian writes the same spectrum (top eigenvalues, trace, density nodes) at np = 1, 2, 3 and 4, and its files; with no probes the top eigenvalues alone")
    func hessianSpectrum() throws {
        let dir = try temporaryDirectory("descent-bits-hessian")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: "h", extra: "checkpoint: {every: 0}")
        #expect(try runDescent(ranks: 2, ["train", "--config", config.path, "--set", "training.steps=12"], directory: dir).status == 0)
        var spectra: [NSDictionary] = []
        for n in [1, 2, 3, 4] {
            let out = dir.appendingPathComponent("hessian-\(n)")
            let r = try runDescent(ranks: n, ["hessian", "--run", dir.appendingPathComponent("runs/h").path, "--out", out.path,
                                               "--iterations", "12", "--probes", "4", "--density-probes", "2", "--set", "curvature.subset=300"],
                                   directory: dir)
            #expect(r.status == 0 && r.stdout.contains("λ5 = ") && r.stdout.contains("trace = "), "\(r.stdout)\n\(r.stderr)")
            var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("hessian.json"))) as? [String: Any])
            json["seconds"] = nil
            spectra.append(json as NSDictionary)
            for file in ["density.svg", "top_eigenvector.safetensors"] {
                #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), "\(file) at np \(n)")
            }
        }
        #expect(spectra.allSatisfy { $0 == spectra[0] }, "\(spectra)")
        #expect((spectra[0]["samples"] as? Int) == 300 && (spectra[0]["hessian_vector_products"] as? Int) == 12 + 4 + 2 * 12)
        // The top eigenvalues alone, into a folder that holds a density: the same eigenvalues from 12 products, and the
        // earlier density.svg goes with the density it drew.
        let out = dir.appendingPathComponent("hessian-1")
        let lean = try runDescent(ranks: 2, ["hessian", "--run", dir.appendingPathComponent("runs/h").path, "--out", out.path,
                                             "--iterations", "12", "--probes", "0", "--density-probes", "0", "--set", "curvature.subset=300"],
                                  directory: dir)
        #expect(lean.status == 0 && lean.stdout.contains("λ5 = ") && !lean.stdout.contains("trace = "), "\(lean.stdout)\n\(lean.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("hessian.json"))) as? [String: Any])
        #expect((json["top_eigenvalues"] as? [Double]) == (spectra[0]["top_eigenvalues"] as? [Double]) && json["trace"] as? String == "nan")
        #expect((json["hessian_vector_products"] as? Int) == 12 && !FileManager.default.fileExists(atPath: out.appendingPathComponent("density.svg").path))
    }

    @Test("a CNN (conv, pool, dense) on IDX images gives one hash and one metrics table, curvature rows included, at np = 1, 2, 3 and 4")
    func cnn() throws {
        let dir = try temporaryDirectory("descent-bits-cnn")
        defer { try? FileManager.default.removeItem(at: dir) }
        // 96 images of 8×8 whose class (0–3) is the brightest quadrant, and 32 test images.
        func images(_ n: Int, seed: Int) throws -> (URL, URL) {
            var pixels: [UInt8] = [], labels: [UInt8] = []
            for i in 0..<n {
                let label = (i * 7 + seed) % 4
                labels.append(UInt8(label))
                for y in 0..<8 { for x in 0..<8 {
                    let quadrant = (y / 4) * 2 + x / 4
                    pixels.append(UInt8((quadrant == label ? 150 : 40) + (i * 31 + y * 7 + x * 13 + seed) % 60))
                } }
            }
            let x = dir.appendingPathComponent("x\(seed)"), y = dir.appendingPathComponent("y\(seed)")
            try write(idxBytes(dimensions: [n, 8, 8], payload: pixels), to: x)
            try write(idxBytes(dimensions: [n], payload: labels), to: y)
            return (x, y)
        }
        let (trainX, trainY) = try images(96, seed: 1), (testX, testY) = try images(32, seed: 2)
        let config = dir.appendingPathComponent("cnn.yaml")
        try """
            name: cnn
            data: {source: idx, train_images: \(trainX.path), train_labels: \(trainY.path), test_images: \(testX.path), test_labels: \(testY.path)}
            model: {kind: cnn, layers: [conv 4 3, relu, pool, conv 6 3, relu, pool, dense 12, relu]}
            optimizer: {name: adam, lr: 0.01}
            training: {batch: 32, epochs: 2, chunk: 8, log_every: 3}
            curvature: {every: 3, subset: 40, iterations: 4}
            checkpoint: {every: 0}
            output: {dir: runs}
            """.write(to: config, atomically: true, encoding: .utf8)
        try expectSameBits(config, name: "cnn", ranks: [1, 2, 3, 4], sets: [], in: dir)
        let curvature = try readCSV(dir.appendingPathComponent("runs/cnn/metrics.csv")).filter { $0["kind"] == "curvature" }
        #expect(curvature.count == 3 && curvature.allSatisfy { Double($0["sharpness"]!)! > 0 }, "\(curvature)")
    }

    @Test("one epoch on Fashion-MNIST gives one hash and one metrics table at np = 1 and 2",
          .enabled(if: FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory + "/train-images-idx3-ubyte.gz"),
                   "dataset-fashion-mnist is not installed"))
    func fashionMNIST() throws {
        let dir = try temporaryDirectory("descent-bits-fashion")
        let config = packageRoot.appendingPathComponent("configs/default.yaml")
        try expectSameBits(config, name: "fashion-momentum", ranks: [1, 2],
                           sets: ["training.epochs=1", "output.dir=\(dir.appendingPathComponent("runs").path)",
                                  "checkpoint.every=0"], in: dir)
    }

    @Test("a checkpoint written on 4 ranks resumes on 2 and on 3 and ends on the hash and metrics of the uninterrupted 4-rank run")
    func resumeOnAnotherWorldSize() throws {
        let dir = try temporaryDirectory("descent-bits-resume")
        let chunk = ["--set", "training.chunk=8"]
        let reference = try writeFaultConfig(in: dir, name: "reference", optimizer: "{name: adam}")
        let whole = try runDescent(ranks: 4, ["train", "--config", reference.path] + chunk, directory: dir)
        let expected = try #require(try finishedRun(whole, dir.appendingPathComponent("runs/reference"), "uninterrupted"))
        // Stop the 4-rank run at step 13 (SIGTERM on rank 2: checkpoint at the step boundary, status 143).
        let config = try writeFaultConfig(in: dir, name: "moved", optimizer: "{name: adam}")
        let stopped = try runDescent(ranks: 4, ["train", "--config", config.path] + chunk, directory: dir,
                                     environment: ["DESCENT_FAULT": "term,rank=2,step=13"])
        #expect(stopped.status == 143, "\(stopped.stderr)")
        for ranks in [2, 3] {
            let copy = dir.appendingPathComponent("np\(ranks)")
            try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: dir.appendingPathComponent("runs/moved"), to: copy.appendingPathComponent("moved"))
            let resumed = try runDescent(ranks: ranks, ["train", "--config", config.path, "--resume", "--set", "output.dir=\(copy.path)"] + chunk,
                                         directory: dir)
            #expect(resumed.stdout.contains("resuming from ") && resumed.stdout.contains("step 13"), "\(resumed.stdout)")
            #expect(resumed.stdout.contains("(written by 4 ranks)"))
            let run = try #require(try finishedRun(resumed, copy.appendingPathComponent("moved"), "resumed at np \(ranks)"))
            #expect(run.hash == expected.hash, "resumed at np \(ranks)")
            #expect(run.metrics == expected.metrics, "resumed at np \(ranks)")
        }
    }

    @Test("two allreduce algorithms forced in Open MPI change reduction: mpi, and not the deterministic reduction")
    func forcedAlgorithms() throws {
        let dir = try temporaryDirectory("descent-bits-algorithms")
        let config = try writeSyntheticConfig(in: dir, name: "alg", extra: "checkpoint: {every: 0}")
        func forced(_ algorithm: Int) -> [String] {
            ["--mca", "coll_tuned_use_dynamic_rules", "1", "--mca", "coll_tuned_allreduce_algorithm", String(algorithm)]
        }
        // Open MPI's algorithm 1 adds the ranks' buffers one after another at one rank, 4 (ring) adds each slice in
        // a rotated order: on 3 ranks their sums differ in the last bits.
        var mpi: [String] = []
        for algorithm in [1, 4] {
            let r = try runDescent(ranks: 3, ["train", "--config", config.path, "--overwrite", "--set", "training.reduction=mpi"],
                                   directory: dir, mpirunArguments: forced(algorithm))
            mpi += try finishedRun(r, dir.appendingPathComponent("runs/alg"), "mpi, algorithm \(algorithm)").map { [$0.hash] } ?? []
        }
        #expect(mpi.count == 2 && mpi[0] != mpi[1], "reduction: mpi with algorithms 1 and 4: \(mpi)")
        var deterministic: [String] = []
        for algorithm in [1, 4] {
            deterministic += try expectSameBits(config, name: "alg", ranks: [3], sets: [], in: dir,
                                                mpirunArguments: forced(algorithm)).map { [$0] } ?? []
        }
        deterministic += try expectSameBits(config, name: "alg", ranks: [1], sets: [], in: dir).map { [$0] } ?? []
        #expect(deterministic.count == 3 && Set(deterministic).count == 1, "deterministic: \(deterministic)")
    }
}
