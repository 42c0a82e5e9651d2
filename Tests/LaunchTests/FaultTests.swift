// Faults under real mpirun: a killed rank, a crash inside a checkpoint commit, damaged checkpoints, a config that
// differs on one rank, NaN on one rank, a stalled rank, a rank that exits alone, a stop signal, bad data files.
// Every fault must end the whole job quickly with one clear message, and a resumed run must end on exactly the
// hash of a run that was never interrupted.
import DescentTestSupport
import Foundation
import Numerics
import Optimizers
import Testing

@Suite("Faults and resume under mpirun", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct FaultTests {
    static let optimizers: [(String, String)] = OptimizerKind.allCases.map { ($0.rawValue, defaultOptimizerBlock($0.rawValue)) } + [
        ("adam amsgrad", "{name: adam, amsgrad: true}"),
        ("rmsprop centered momentum", "{name: rmsprop, lr: 0.001, centered: true, momentum: 0.9}"),
    ]

    static let killCases: [(ranks: Int, label: String, optimizer: String)] =
        optimizers.map { (2, $0.0, $0.1) } + [(3, "momentum", "{name: momentum, lr: 0.05}"), (3, "adam", "{name: adam}")]

    @Test("SIGKILL of one rank mid-epoch ends the job within 10 s, leaves no process, and --resume ends on the uninterrupted hash",
          arguments: killCases)
    func killAndResume(_ c: (ranks: Int, label: String, optimizer: String)) throws {
        let dir = try temporaryDirectory("descent-kill")
        let reference = try writeFaultConfig(in: dir, name: "reference", optimizer: c.optimizer)
        let whole = try runDescent(ranks: c.ranks, ["train", "--config", reference.path], directory: dir)
        #expect(whole.status == 0, "\(c.label): \(whole.stderr)")
        let expected = try #require(finalHash(whole), "\(c.label): \(whole.stdout)")

        let config = try writeFaultConfig(in: dir, name: "killed", optimizer: c.optimizer)
        // Step 15 is mid-epoch 2; the last checkpoint before it is step 12.
        let killed = try runDescent(ranks: c.ranks, ["train", "--config", config.path], directory: dir,
                                    environment: ["DESCENT_FAULT": "kill,rank=\(c.ranks - 1),step=15"])
        let ended = Date().timeIntervalSince1970
        #expect(!killed.timedOut && killed.status != 0, "\(c.label): \(killed.stderr)")
        let kill = try #require(faultTime(killed), "\(c.label): \(killed.stderr)")
        #expect(ended - kill < 10, "\(c.label): the job took \(ended - kill) s to end after the kill")
        // No process of the job may outlive the same bound: one still being reaped as mpirun returns is given until
        // 10 s after the kill (the fault's own timestamp), not a wait of the test's choosing.
        var left = try processesMentioning(dir.path)
        while !left.isEmpty && Date().timeIntervalSince1970 - kill < 10 {
            Thread.sleep(forTimeInterval: 0.1)
            left = try processesMentioning(dir.path)
        }
        #expect(left.isEmpty, "\(c.label): processes left 10 s after the kill: \(left)")
        let run = dir.appendingPathComponent("runs/killed")
        let latest = try String(contentsOf: run.appendingPathComponent("checkpoints/LATEST"), encoding: .utf8)
        #expect(latest.contains("\"step\":12"), "\(c.label): \(latest)")
        print("kill \(c.label) np \(c.ranks): job ended \(String(format: "%.2f", ended - kill)) s after the kill, "
              + "2 completed steps lost (13, 14)")

        let resumed = try runDescent(ranks: c.ranks, ["train", "--config", config.path, "--resume"], directory: dir)
        #expect(resumed.status == 0, "\(c.label): \(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming from \(run.path)/checkpoints/step-000000012.ckpt: step 12"), "\(resumed.stdout)")
        #expect(finalHash(resumed) == expected, "\(c.label): resumed \(finalHash(resumed) ?? "none"), uninterrupted \(expected)")
        // The record is whole too: the same rows and values as the uninterrupted run.
        #expect(try metricsWithoutWallTime(run) == metricsWithoutWallTime(dir.appendingPathComponent("runs/reference")))
        // Two checkpoints are kept (the newest is the final one).
        let kept = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path).sorted()
        #expect(kept == ["LATEST", "step-000000028.ckpt", "step-000000030.ckpt"], "\(kept)")
    }

    @Test("checkpoints written by an earlier build (formats 1 and 2, Tests/Fixtures) resume at 3 ranks to the uninterrupted hash and metrics",
          arguments: ["checkpoint-v1", "checkpoint-v2"], ["step-000000020.ckpt", "step-000000016.ckpt"])  // mid-epoch 2; at the end of epoch 1, after a stop signal
    func earlierBuildCheckpoint(_ format: String, _ file: String) throws {
        let fixture = packageRoot.appendingPathComponent("Tests/Fixtures/\(format)")
        let dir = try temporaryDirectory("descent-fixture")
        let config = fixture.appendingPathComponent("config.yaml").path
        let whole = try runDescent(ranks: 2, ["train", "--config", config, "--set", "name=whole", "--progress", "off"], directory: dir)
        let expected = try #require(finalHash(whole), "\(whole.stderr)")
        // The checkpoint's config names the run "fixture"; its folder exists, as it would where it was written.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("runs/fixture"), withIntermediateDirectories: true)
        let resumed = try runDescent(ranks: 3, ["train", "--config", config, "--progress", "off", "--resume-from",
                                                fixture.appendingPathComponent(file).path], directory: dir)
        let position = file.hasSuffix("20.ckpt") ? "step 20, epoch 2, batch 4" : "step 16, epoch 2, batch 0"
        #expect(resumed.stdout.contains("\(position) (written by 2 ranks)"), "\(resumed.stdout)\(resumed.stderr)")
        #expect(finalHash(resumed) == expected, "\(resumed.stderr)")
        #expect(try metricsWithoutWallTime(dir.appendingPathComponent("runs/fixture"))
                == metricsWithoutWallTime(dir.appendingPathComponent("runs/whole")))
    }

    @Test("a crash between writing a checkpoint and committing it: resume takes the previous committed one")
    func crashInCommit() throws {
        let dir = try temporaryDirectory("descent-commit")
        let reference = try writeFaultConfig(in: dir, name: "reference")
        let expected = try #require(finalHash(try runDescent(ranks: 2, ["train", "--config", reference.path], directory: dir)))
        let config = try writeFaultConfig(in: dir, name: "torn")
        let crashed = try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir,
                                     environment: ["DESCENT_FAULT": "crash-in-commit,step=10"])
        #expect(crashed.status != 0 && !crashed.timedOut)
        let checkpoints = dir.appendingPathComponent("runs/torn/checkpoints")
        // step 12 was written whole but never committed; LATEST still names step 8.
        #expect(FileManager.default.fileExists(atPath: checkpoints.appendingPathComponent("step-000000012.ckpt").path))
        let latest = try String(contentsOf: checkpoints.appendingPathComponent("LATEST"), encoding: .utf8)
        #expect(latest.contains("step-000000008.ckpt"), "\(latest)")
        let resumed = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume"], directory: dir)
        #expect(resumed.stdout.contains("checkpoints/step-000000008.ckpt: step 8"), "\(resumed.stdout)")
        #expect(finalHash(resumed) == expected)
    }

    @Test("a damaged checkpoint is rejected on every rank with a message naming the file and the problem", arguments: [
        ("flipped byte", "checksum mismatch"),
        ("truncated", "truncated or extended: the frame announces"),
        ("wrong version", "format version 7, but this build reads versions 1 and 2"),
        ("not a checkpoint", "not a descent checkpoint"),
    ])
    func damagedCheckpoint(_ damage: String, _ problem: String) throws {
        let dir = try temporaryDirectory("descent-damaged")
        let config = try writeFaultConfig(in: dir, name: "damaged")
        #expect(try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir).status == 0)
        let file = dir.appendingPathComponent("runs/damaged/checkpoints/step-000000030.ckpt")
        var bytes = [UInt8](try Data(contentsOf: file))
        switch damage {
        case "flipped byte": bytes[bytes.count / 2] ^= 0x10
        case "truncated": bytes.removeLast(bytes.count / 3)
        case "wrong version": bytes[8] = 7
        default: bytes = Array("<html>not found</html>\n".utf8) + [UInt8](repeating: 0, count: 64)
        }
        try Data(bytes).write(to: file)
        for ranks in [2, 3] {
            let r = try runDescent(ranks: ranks, ["train", "--config", config.path, "--resume"], directory: dir)
            #expect(r.status != 0 && !r.timedOut, "\(damage)")
            let lines = ownLines(r).filter { $0.contains("error") }
            #expect(lines.count == 1, "\(damage): \(r.stderr)")
            #expect(lines.first?.contains("checkpoint \(file.path): \(problem)") == true, "\(damage): \(r.stderr)")
            // The message points at the older checkpoint that is still good.
            #expect(lines.first?.contains("older checkpoints: step-000000028.ckpt") == true, "\(damage): \(r.stderr)")
        }
        // The older one resumes (and finishes at once: it is 2 steps before the end).
        let older = dir.appendingPathComponent("runs/damaged/checkpoints/step-000000028.ckpt").path
        let r = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume-from", older], directory: dir)
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test("a resume that would change the trajectory is refused, naming the keys; harmless changes are allowed")
    func resumeWithChangedConfig() throws {
        let dir = try temporaryDirectory("descent-changed")
        let config = try writeFaultConfig(in: dir, name: "changed")
        #expect(try runDescent(ranks: 2, ["train", "--config", config.path, "--set", "training.steps=12"], directory: dir).status == 0)
        let refused = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume", "--set", "optimizer.lr=0.1",
                                                "--set", "training.batch=32"], directory: dir)
        #expect(refused.status != 0)
        #expect(ownLines(refused).count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("the config differs from the checkpoint's in keys that change the trajectory: "
                                        + "optimizer.lr (checkpoint: 0.05, now: 0.1), training.batch (checkpoint: 64, now: 32)"),
                "\(refused.stderr)")
        // More steps and another log interval do not change what is computed: allowed, and the result equals a
        // run that went straight to the end.
        let extended = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume", "--set", "training.log_every=2"],
                                      directory: dir)
        #expect(extended.status == 0, "\(extended.stderr)")
        let reference = try writeFaultConfig(in: dir, name: "reference")
        #expect(finalHash(extended) == finalHash(try runDescent(ranks: 2, ["train", "--config", reference.path], directory: dir)))
    }

    @Test("a resume cannot shorten a finished run, one at its end rewrites nothing, and config.yaml records the run, not the resume")
    func resumeBookkeeping() throws {
        let dir = try temporaryDirectory("descent-bookkeeping")
        let config = try writeFaultConfig(in: dir, name: "kept")
        let run = dir.appendingPathComponent("runs/kept")
        #expect(try runDescent(ranks: 2, ["train", "--config", config.path, "--set", "training.steps=12"], directory: dir).status == 0)
        func record() throws -> [String] {
            try ["config.yaml", "summary.json", "metrics.csv", "final_hash"].map {
                try String(contentsOf: run.appendingPathComponent($0), encoding: .utf8)
            }
        }
        let before = try record()
        let shorter = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume", "--set", "training.steps=8"], directory: dir)
        #expect(shorter.status != 0 && ownLines(shorter).count == 1, "\(shorter.stderr)")
        #expect(shorter.stderr.contains("step-000000012.ckpt: it is at step 12, beyond this run's end at step 8 (training.steps: 8)"),
                "\(shorter.stderr)")
        #expect(try record() == before)
        // At the end already, on another rank count (which summary.json records): nothing to train, nothing rewritten.
        let again = try runDescent(ranks: 1, ["train", "--config", config.path, "--resume", "--set", "training.steps=12"], directory: dir)
        #expect(again.status == 0 && again.stdout.contains("nothing to train"), "\(again.stdout)\(again.stderr)")
        #expect(try record() == before)
        // Extended: it trains on, and config.yaml is the run's (it trains it alone from step 0), without the resume.
        let extended = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume", "--set", "training.steps=16"], directory: dir)
        #expect(extended.status == 0, "\(extended.stderr)")
        let recorded = try String(contentsOf: run.appendingPathComponent("config.yaml"), encoding: .utf8)
        #expect(recorded.contains("resume: never") && recorded.contains("steps: 16"), "\(recorded)")
        // A finished run without a checkpoint to continue from is not replaced by a run from step 0.
        try FileManager.default.removeItem(at: run.appendingPathComponent("checkpoints"))
        let lost = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume", "--set", "training.steps=20"], directory: dir)
        #expect(lost.status != 0 && lost.stderr.contains("it holds a finished run but no committed checkpoint"), "\(lost.stderr)")
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("summary.json").path))
    }

    @Test("launch/train CONFIG -- --resume continues the run instead of replacing it")
    func launchTrainResumes() throws {
        let dir = try temporaryDirectory("descent-launch-resume")
        let config = try writeFaultConfig(in: dir, name: "again")
        let exe = try #require(descentExecutable)
        let first = try runScript("train", [config.path, "--", "--set", "training.steps=8"], environment: ["DESCENT": exe.path])
        #expect(first.status == 0, "\(first.stderr)")
        let resumed = try runScript("train", [config.path, "--", "--resume", "--set", "training.steps=12"], environment: ["DESCENT": exe.path])
        #expect(resumed.status == 0 && resumed.stdout.contains("resuming from \(dir.path)/runs/again/checkpoints/step-000000008.ckpt"),
                "\(resumed.stdout)\(resumed.stderr)")
    }

    @Test("launch/train's clean error: descent's one line and its exit status, without mpirun's banner")
    func launchTrainCleanError() throws {
        let dir = try temporaryDirectory("descent-launch-error")
        let config = try writeFaultConfig(in: dir, name: "bad", extra: "trainig: {epochs: 2}\n")
        let r = try runScript("train", [config.path], environment: ["DESCENT": try #require(descentExecutable).path])
        #expect(r.status == 1, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == 1 && lines[0].hasPrefix("descent: ") && lines[0].contains("trainig"), "\(r.stderr)")
    }

    @Test("a config that differs on one rank stops every rank before step 0, naming the rank and the key", arguments: [2, 3])
    func mismatchedConfig(ranks: Int) throws {
        let dir = try temporaryDirectory("descent-mismatch")
        let config = try writeFaultConfig(in: dir, name: "mismatch")
        let r = try runDescent(ranks: ranks, ["train", "--config", config.path], directory: dir,
                               environment: ["DESCENT_FAULT": "config,rank=\(ranks - 1)"])
        #expect(r.status != 0 && !r.timedOut)
        let lines = ownLines(r)
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(lines.first?.contains("rank \(ranks - 1)'s config differs from rank 0's before step 0: seed (rank 0: 3, rank \(ranks - 1): 4)") == true,
                "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/mismatch").path))
    }

    @Test("NaN on one rank with guards.non_finite: stop saves the last good state and stops every rank; resume finishes on the clean hash",
          arguments: [2, 3])
    func nanStop(ranks: Int) throws {
        let dir = try temporaryDirectory("descent-nan")
        let reference = try writeFaultConfig(in: dir, name: "reference")
        let expected = try #require(finalHash(try runDescent(ranks: ranks, ["train", "--config", reference.path], directory: dir)))
        let config = try writeFaultConfig(in: dir, name: "nan")
        let r = try runDescent(ranks: ranks, ["train", "--config", config.path], directory: dir,
                               environment: ["DESCENT_FAULT": "nan,rank=1,step=7"])
        #expect(r.status != 0 && !r.timedOut)
        #expect(ownLines(r).filter { $0.contains("error") }.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("non-finite loss or gradient in step 7 on rank 1; stopped (guards.non_finite: stop). "
                                  + "The last good state (after step 6) is in"), "\(r.stderr)")
        // The injected NaN was transient: continuing from the saved state gives the clean run's result.
        let resumed = try runDescent(ranks: ranks, ["train", "--config", config.path, "--resume"], directory: dir)
        #expect(resumed.stdout.contains("step-000000006.ckpt: step 6"), "\(resumed.stdout)")
        #expect(finalHash(resumed) == expected)
    }

    @Test("NaN on one rank with guards.non_finite: skip skips that update on every rank, whichever rank it was")
    func nanSkip() throws {
        let dir = try temporaryDirectory("descent-skip")
        let config = try writeFaultConfig(in: dir, name: "skip", extra: "guards: {non_finite: skip}")
        let clean = try #require(finalHash(try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir)))
        var hashes: [String] = []
        for rank in [0, 1] {
            let r = try runDescent(ranks: 2, ["train", "--config", config.path, "--overwrite"], directory: dir,
                                   environment: ["DESCENT_FAULT": "nan,rank=\(rank),step=7"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("non-finite loss or gradient in step 7 on rank \(rank): update skipped on every rank"))
            #expect(r.stdout.contains("1 skipped step"))
            hashes.append(try #require(finalHash(r)))
        }
        #expect(hashes[0] == hashes[1])
        #expect(hashes[0] != clean, "skipping a step must change the result")
        let losses = try readCSV(dir.appendingPathComponent("runs/skip/metrics.csv")).compactMap { Double($0["batch_loss"] ?? "") }
        #expect(losses.allSatisfy { $0.isFinite })
    }

    @Test("a loss that explodes stops the run with the divergence guard's message")
    func divergence() throws {
        let dir = try temporaryDirectory("descent-diverge")
        let config = try writeFaultConfig(in: dir, name: "diverge", optimizer: "{name: sgd, lr: 5}", extra: "guards: {divergence: 3, divergence_steps: 1}")
        let r = try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir)
        #expect(r.status != 0)
        #expect(r.stderr.contains("the loss diverged in step 2: ") && r.stderr.contains("more than 3× the first step's"), "\(r.stderr)")
    }

    @Test("a stalled rank: the watchdog aborts the job, naming the step and phase", arguments: [2, 3])
    func stall(ranks: Int) throws {
        let dir = try temporaryDirectory("descent-stall")
        let config = try writeFaultConfig(in: dir, name: "stall", extra: "guards: {collective_timeout: 2}")
        let start = Date()
        let r = try runDescent(ranks: ranks, ["train", "--config", config.path], directory: dir,
                               environment: ["DESCENT_FAULT": "stall,rank=1,step=5"])
        #expect(!r.timedOut && r.status != 0)
        #expect(Date().timeIntervalSince(start) < 20)
        // The stalled rank is alive (its heartbeat goes on) but never came to step 5's exchange.
        #expect(r.stderr.contains("descent: rank 0 on \(hostName()): rank 1 on \(hostName()) is alive but has not come (its last "
                                  + "collective: phase '"), "\(r.stderr)")
        // One host: the ranks meet at the shared-memory fence of the gradient exchange.
        #expect(r.stderr.contains("' at step 4): shared-memory fence in phase 'gradient exchange' at step 5 did not complete within 2 s "
                                  + "(guards.collective_timeout); aborting the job"), "\(r.stderr)")
        #expect(r.stderr.components(separatedBy: "did not complete within").count == 2, "one message: \(r.stderr)")
        #expect(try processesMentioning(dir.path).isEmpty)
    }

    @Test("a rank that exits alone ends the job within 10 s", arguments: [2, 3])
    func loneExit(ranks: Int) throws {
        let dir = try temporaryDirectory("descent-exit")
        let config = try writeFaultConfig(in: dir, name: "exit")
        let r = try runDescent(ranks: ranks, ["train", "--config", config.path], directory: dir,
                               environment: ["DESCENT_FAULT": "exit,rank=1,step=5"])
        let ended = Date().timeIntervalSince1970
        #expect(!r.timedOut && r.status != 0)
        let exit = try #require(faultTime(r), "\(r.stderr)")
        #expect(ended - exit < 10)
        #expect(try processesMentioning(dir.path).isEmpty)
    }

    @Test("SIGTERM on one rank: every rank stops at the same step boundary with a committed checkpoint (status 143); resume matches",
          arguments: [13, 10])  // mid-epoch 2, and the last step of epoch 1 (10 steps per epoch)
    func signalStop(step: Int) throws {
        let dir = try temporaryDirectory("descent-term")
        let reference = try writeFaultConfig(in: dir, name: "reference")
        let expected = try #require(finalHash(try runDescent(ranks: 2, ["train", "--config", reference.path], directory: dir)))
        let config = try writeFaultConfig(in: dir, name: "term")
        let r = try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir,
                               environment: ["DESCENT_FAULT": "term,rank=1,step=\(step)"])
        #expect(r.status == 143, "\(r.stderr)")
        #expect(r.stderr.contains("stopped at step \(step) on a stop signal (SIGTERM or SIGUSR1) received by another rank; checkpoint "),
                "\(r.stderr)")
        let latest = try String(contentsOf: dir.appendingPathComponent("runs/term/checkpoints/LATEST"), encoding: .utf8)
        #expect(latest.contains("\"step\":\(step)"))
        let resumed = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume"], directory: dir)
        #expect(finalHash(resumed) == expected, "\(resumed.stderr)")
        #expect(try metricsWithoutWallTime(dir.appendingPathComponent("runs/term"))
                == metricsWithoutWallTime(dir.appendingPathComponent("runs/reference")))
    }

    @Test("the rules since 2015 stop on SIGTERM at 2 ranks and resume at 3 to the hash and metrics of an uninterrupted run at 1",
          arguments: ["radam", "adamax", "lion", "asgd", "rprop", "schedule-free-sgd", "schedule-free-adamw", "muon", "adafactor", "shampoo", "lbfgs"])
    func resumeAtAnotherCount(_ name: String) throws {
        let dir = try temporaryDirectory("descent-another-np")
        // L-BFGS: three iterations a step with the line search, whose history and last step the checkpoint carries.
        // Shampoo: inverse roots refreshed every 4 steps, so that the checkpoint at step 13 carries factors and roots
        // of different ages.
        let optimizer = name == "lbfgs" ? "{name: lbfgs, max_iter: 3, history_size: 5, line_search_fn: strong_wolfe}"
            : name == "shampoo" ? "{name: shampoo, lr: 0.01, precondition_frequency: 4}"
            : "{name: \(name), lr: \(name.hasPrefix("schedule-free") || name == "rprop" ? 0.002 : 0.01)}"
        let reference = try writeFaultConfig(in: dir, name: "reference", optimizer: optimizer)
        let whole = try runDescent(ranks: 1, ["train", "--config", reference.path], directory: dir)
        let expected = try #require(finalHash(whole), "\(name): \(whole.stderr)")
        let config = try writeFaultConfig(in: dir, name: "moved", optimizer: optimizer)
        let stopped = try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir,
                                     environment: ["DESCENT_FAULT": "term,rank=0,step=13"])
        #expect(stopped.status == 143, "\(name): \(stopped.stderr)")
        if name == "muon" {
            // Whole tensors per rank, cut by their cost: the first layer's weights (32 × 64) on rank 0.
            #expect(stopped.stdout.contains("whole tensors by rank: rank 0: 0.weight"), "\(stopped.stdout)")
        }
        let resumed = try runDescent(ranks: 3, ["train", "--config", config.path, "--resume"], directory: dir)
        #expect(resumed.stdout.contains("step 13"), "\(name): \(resumed.stdout)")
        #expect(finalHash(resumed) == expected, "\(name): resumed \(finalHash(resumed) ?? "none") \(resumed.stderr), uninterrupted \(expected)")
        #expect(try metricsWithoutWallTime(dir.appendingPathComponent("runs/moved"))
                == metricsWithoutWallTime(dir.appendingPathComponent("runs/reference")))
    }

    @Test("DESCENT_FAULT that cannot be read is refused, naming the variable")
    func badFaultSwitch() throws {
        let dir = try temporaryDirectory("descent-badfault")
        let config = try writeFaultConfig(in: dir, name: "badfault")
        let r = try runDescent(ranks: 2, ["train", "--config", config.path], directory: dir,
                               environment: ["DESCENT_FAULT": "explode,rank=1"])
        #expect(r.status != 0)
        #expect(ownLines(r).count == 1 && r.stderr.contains("DESCENT_FAULT: expected KIND[,rank=R][,step=S]"), "\(r.stderr)")
    }
}

@Suite("Bad data files under mpirun", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct BadDataFileTests {
    /// A Fashion-MNIST-shaped folder with 100 training and 20 test images of 4×4, gzipped, then `damage` applied.
    static func dataFolder(in dir: URL, damage: String) throws -> URL {
        let folder = dir.appendingPathComponent("fm")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (prefix, n) in [("train", 100), ("t10k", 20)] {
            var labels = (0..<n).map { UInt8($0 % 10) }
            var labelCount = n
            if prefix == "train" && damage == "label out of range" { labels[37] = 10 }
            if prefix == "train" && damage == "counts differ" { labelCount = n - 1; labels.removeLast() }
            let images = folder.appendingPathComponent("\(prefix)-images-idx3-ubyte")
            let labelFile = folder.appendingPathComponent("\(prefix)-labels-idx1-ubyte")
            try write(idxBytes(dimensions: [n, 4, 4], payload: (0..<(n * 16)).map { UInt8($0 % 251) }), to: images)
            try write(idxBytes(dimensions: [labelCount], payload: labels), to: labelFile)
            _ = try gzip(images)
            _ = try gzip(labelFile)
            try FileManager.default.removeItem(at: images)
            try FileManager.default.removeItem(at: labelFile)
        }
        let images = folder.appendingPathComponent("train-images-idx3-ubyte.gz")
        let labels = folder.appendingPathComponent("train-labels-idx1-ubyte.gz")
        switch damage {
        case "truncated gzip":
            let bytes = try Data(contentsOf: images)
            try bytes.prefix(bytes.count / 2).write(to: images)
        case "HTML page as gzip":
            try "<!DOCTYPE html><html><body>404 Not Found</body></html>\n".write(to: images, atomically: true, encoding: .utf8)
        case "images and labels swapped":
            let tmp = folder.appendingPathComponent("swap")
            try FileManager.default.moveItem(at: images, to: tmp)
            try FileManager.default.moveItem(at: labels, to: images)
            try FileManager.default.moveItem(at: tmp, to: labels)
        default:
            break
        }
        return folder
    }

    @Test("each bad data file: one message naming the file and the problem, non-zero exit on every rank, nothing written",
          arguments: [
              ("truncated gzip", "train-images-idx3-ubyte.gz: ", "file truncated"),
              ("HTML page as gzip", "train-images-idx3-ubyte.gz: magic: ",
               "found 3c21444f (text \"<!DO\": a web page or an error message saved under this name, not the data file)"),
              ("images and labels swapped", "train-images-idx3-ubyte.gz: magic: number of dimensions: ",
               "expected 2 to 4, found 1 (a label file: are the image and label files swapped?)"),
              ("counts differ", "train-labels-idx1-ubyte.gz: label count: ", "expected 100 (the number of samples in"),
              ("label out of range", "train-labels-idx1-ubyte.gz: label 37: ", "expected a class in 0..<10, found 10"),
          ])
    func badDataFile(_ damage: String, _ field: String, _ problem: String) throws {
        let dir = try temporaryDirectory("descent-data")
        let folder = try Self.dataFolder(in: dir, damage: damage)
        let config = try writeFaultConfig(in: dir, name: "data", extra: "")
        for ranks in [2, 3] {
            let r = try runDescent(ranks: ranks, ["train", "--config", config.path, "--set", "data={source: fashion-mnist, path: \(folder.path)}",
                                                  "--set", "training.batch=16"], directory: dir)
            #expect(r.status != 0 && !r.timedOut, "\(damage)")
            let lines = ownLines(r)
            #expect(lines.count == 1, "\(damage): \(r.stderr)")
            #expect(lines.first?.contains("data file \(folder.path)/\(field)") == true, "\(damage): \(r.stderr)")
            #expect(lines.first?.contains(problem) == true, "\(damage): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/data").path), "\(damage): output written")
        }
    }

    @Test("the undamaged folder trains (so the damaged cases fail for their damage alone)")
    func goodFolder() throws {
        let dir = try temporaryDirectory("descent-data")
        let folder = try Self.dataFolder(in: dir, damage: "none")
        let config = try writeFaultConfig(in: dir, name: "data")
        let r = try runDescent(ranks: 2, ["train", "--config", config.path, "--set", "data={source: fashion-mnist, path: \(folder.path)}",
                                          "--set", "training.batch=16"], directory: dir)
        #expect(r.status == 0, "\(r.stderr)")
    }
}

@Suite("Chaos drill", .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct ChaosTests {
    @Test("launch/chaos: 3 SIGKILLs of random ranks at random moments, resumed at rank counts 1-3, end on the uninterrupted hash and metrics")
    func threeKills() throws {
        let dir = try temporaryDirectory("descent-chaos")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: "chaos", optimizer: "{name: adam, lr: 0.01}", epochs: 30,
                                              extra: "checkpoint: {every: 5}")
        let exe = try #require(descentExecutable)
        let r = try runScript("chaos", [config.path, "3"], environment: [
            "DESCENT": exe.path, "STEP_MS": "20", "NPS": "1 2 3", "SEED": "21", "MAX_DELAY": "1",
            "OUT": dir.appendingPathComponent("out").path,
        ], directory: dir)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("kill ") && $0.contains("SIGKILLed") }.count == 3, "\(r.stdout)")
        let last = try #require(lines.last { $0.hasPrefix("after 3 kills") }, "\(r.stdout)")
        #expect(last.contains("metrics.csv equal: yes"), "\(r.stdout)")
        // Independently of the script's own comparison: the runs' own records agree.
        let out = dir.appendingPathComponent("out")
        let hashes = try ["chaos/chaos", "reference/chaos"].map {
            try String(contentsOf: out.appendingPathComponent("\($0)/final_hash"), encoding: .utf8)
        }
        #expect(hashes[0] == hashes[1] && hashes[0].count == 17, "\(hashes)")
        #expect(try metricsWithoutWallTime(out.appendingPathComponent("chaos/chaos"))
                == metricsWithoutWallTime(out.appendingPathComponent("reference/chaos")))
        print(r.stdout)
    }
}
