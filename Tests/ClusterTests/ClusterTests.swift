// Clusters for real: Slurm (Debian's slurmctld, slurmd and munge) on this machine or on two nodes made of network
// namespaces, started and stopped by the tests, and two hosts made of network namespaces that Open MPI joins over
// TCP. Both need root; without it the suites are skipped with the reason.
import DescentTestSupport
import Foundation
import Numerics
import Testing

let slurmAvailable = mpiAvailable && isRoot && ["slurmctld", "slurmd", "sbatch", "scontrol", "munged"].allSatisfy(onPath)
let namespacesAvailable = mpiAvailable && isRoot && ["ip", "unshare"].allSatisfy(onPath)

/// A Slurm of `nodes` nodes in a folder of its own (launch/local-slurm), stopped by `stop()`.
struct LocalSlurm {
    let dir: URL
    var environment: [String: String] { ["SLURM_CONF": dir.appendingPathComponent("slurm.conf").path] }

    init(nodes: Int = 1) throws {
        dir = try temporaryDirectory("descent-slurm")
        // Ports of its own, so that daemons left by an interrupted earlier run cannot answer for this cluster.
        let port = 20_000 + 2 * Int.random(in: 0..<5_000)
        let r = try runScript("local-slurm", ["start", dir.path, String(nodes)], environment: ["SLURM_PORT": String(port)])
        try #require(r.status == 0, "local-slurm start: \(r.stderr)")
    }

    func stop() { _ = try? runScript("local-slurm", ["stop", dir.path], environment: environment) }

    /// Takes a node away as a failing machine goes: its slurmd and processes killed, then marked down.
    func lose(_ node: String) throws {
        let r = try runScript("local-slurm", ["lose", dir.path, node], environment: environment)
        try #require(r.status == 0, "local-slurm lose: \(r.stderr)")
    }

    /// Submits with sbatch and returns the job id.
    func submit(_ arguments: [String], environment extra: [String: String] = [:], directory: URL) throws -> String {
        let r = try runProgram("/usr/bin/sbatch", ["--parsable"] + arguments, environment: environment.merging(extra) { $1 },
                               directory: directory)
        try #require(r.status == 0, "sbatch: \(r.stderr)")
        return String(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).prefix { $0 != ";" })
    }

    /// The job's fields as `scontrol show job -o` gives them (JobState, Restarts, ExitCode, ...).
    func fields(of job: String) throws -> [String: String] {
        let r = try runProgram("/usr/bin/scontrol", ["show", "job", "-o", job], environment: environment)
        var fields: [String: String] = [:]
        for word in r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let kv = word.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        return fields
    }

    static let finalStates: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                                           "BOOT_FAIL", "DEADLINE", "PREEMPTED"]

    /// Waits until the job has ended for good (a requeued job passes through other states first) and returns its
    /// last fields. The wait follows the job's progress, not the clock: its state, its restarts and the bytes of the
    /// files under `watching`. It gives up only when none of them has changed for `quietLimit` seconds, and says
    /// what it saw last.
    func wait(for job: String, watching: [URL], quietLimit: Double = 300) throws -> [String: String] {
        var endedAt: Date?
        var seen = "", changed = Date()
        while true {
            let f = try fields(of: job)
            let now = "state \(f["JobState"] ?? "?"), restarts \(f["Restarts"] ?? "?"), \(bytes(under: watching)) bytes written"
            if now != seen { (seen, changed) = (now, Date()) }
            if let state = f["JobState"], Self.finalStates.contains(state) {
                // A final state seen twice, 3 s apart, is not a step of a requeue.
                if let endedAt, Date().timeIntervalSince(endedAt) >= 3 { return f }
                if endedAt == nil { endedAt = Date() }
            } else {
                endedAt = nil
            }
            if Date().timeIntervalSince(changed) > quietLimit {
                throw SetupError(description: "job \(job) made no progress for \(Int(quietLimit)) s (\(seen)); "
                                 + "waited for it to end in a final state (\(Self.finalStates.sorted().joined(separator: ", ")))")
            }
            Thread.sleep(forTimeInterval: 1)
        }
    }

    /// The total size of the files under `urls` (files or folders).
    private func bytes(under urls: [URL]) -> Int {
        let fm = FileManager.default
        var total = 0
        for url in urls {
            let files = [url.path] + (fm.enumerator(atPath: url.path)?.compactMap { $0 as? String }.map { url.path + "/" + $0 } ?? [])
            for file in files { total += (try? fm.attributesOfItem(atPath: file)[.size] as? Int) ?? 0 }
        }
        return total
    }
}

/// The final hash of `config` trained by plain mpirun on 2 ranks into `<dir>/reference` (the uninterrupted run).
func referenceHash(_ config: URL, in dir: URL) throws -> String {
    let r = try runDescent(ranks: 2, ["train", "--config", config.path, "--set", "output.dir=\(dir.path)/reference"], directory: dir)
    return try #require(finalHash(r), "\(r.stderr)")
}

extension LocalSlurm {
    /// Submits launch/descent.sbatch for `config` (then `arguments` for descent) with the test build, its log in
    /// `log`, and returns the job id.
    func submitDescent(_ config: URL, options: [String], environment extra: [String: String] = [:], log: URL, in dir: URL,
                       arguments: [String] = []) throws -> String {
        let exe = try #require(descentExecutable)
        return try submit(["--output=\(log.path)"] + options
                          + [packageRoot.appendingPathComponent("launch/descent.sbatch").path, config.path] + arguments,
                          environment: extra.merging(["DESCENT": exe.path]) { $1 }, directory: dir)
    }

    /// Submits launch/descent.sbatch for `config` with the test build, waits until the job has ended for good, and
    /// returns its last fields and its log (`<dir>/job.out`).
    func runDescentJob(_ config: URL, options: [String], environment extra: [String: String], in dir: URL)
        throws -> (fields: [String: String], log: String) {
        let log = dir.appendingPathComponent("job.out")
        let job = try submitDescent(config, options: ["--ntasks=2"] + options, environment: extra, log: log, in: dir)
        let end = try wait(for: job, watching: [log, dir.appendingPathComponent("runs")])
        return (end, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }
}

@Suite("A real Slurm cluster (one node, then two)", .serialized,
       .enabled(if: slurmAvailable, "needs root, mpirun, and Debian's slurmctld, slurmd, slurm-client and munge (launch/setup --cluster)"))
struct SlurmTests {
    @Test("launch/descent.sbatch trains with 2 tasks (srun --mpi=pmix) and leaves the run folder and log, on the mpirun hash")
    func batchJob() throws {
        let dir = try temporaryDirectory("descent-sbatch")
        let config = try writeSyntheticConfig(in: dir, name: "job", epochs: 3, extra: "checkpoint: {every: 10}")
        let expected = try referenceHash(config, in: dir)
        let slurm = try LocalSlurm()
        defer { slurm.stop() }
        let (end, text) = try slurm.runDescentJob(config, options: ["--time=5"], environment: ["LAUNCHER": "srun"], in: dir)
        #expect(end["JobState"] == "COMPLETED" && end["ExitCode"] == "0:0", "\(end)\n\(text)")
        #expect(end["Restarts"] == "0")
        #expect(text.contains("final parameter hash \(expected) (equal on all 2 ranks)"), "\(text)")
        #expect(text.contains("no committed checkpoint") && text.contains("descent.sbatch: exit status 0"), "\(text)")

        let run = dir.appendingPathComponent("runs/job")
        for file in ["metrics.csv", "metrics.jsonl", "summary.json", "report.html", "parameters.f32", "checkpoints/LATEST"] {
            #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent(file).path), "\(file) is missing")
        }
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
        #expect(summary["ranks"] as? Int == 2 && summary["final_hash"] as? String == expected)
        #expect(try metricsWithoutWallTime(run) == metricsWithoutWallTime(dir.appendingPathComponent("reference/job")))
    }

    @Test("a job cut by its time limit commits a checkpoint on the warning signal, is requeued, and resumes to the uninterrupted hash")
    func requeueOnTimeLimit() throws {
        let dir = try temporaryDirectory("descent-requeue")
        // 500 steps; in the job rank 0 sleeps 100 ms per step (DESCENT_FAULT=slow): about 50 s, longer than a
        // start of the job lasts before its warning.
        let config = try writeSyntheticConfig(in: dir, name: "long", epochs: 50, extra: "checkpoint: {every: 50}")
        let expected = try referenceHash(config, in: dir)
        let slurm = try LocalSlurm()
        defer { slurm.stop() }
        // A one-minute limit with the warning 20 s before it. slurmctld looks at time limits every 30 s and warns
        // when the time left is within the lead plus those 30 s, so USR1 reaches the batch shell 10-40 s into
        // each start. (A lead of 30 s or more would warn at the very first look, possibly 1 s after a restart.)
        let (end, text) = try slurm.runDescentJob(config, options: ["--time=1", "--signal=B:USR1@20"],
                                                  environment: ["DESCENT_FAULT": "slow,rank=0,ms=100"], in: dir)
        #expect(end["JobState"] == "COMPLETED" && end["ExitCode"] == "0:0", "\(end)\n\(text)")
        let restarts = Int(end["Restarts"] ?? "") ?? 0
        #expect(restarts >= 1, "the job was never cut: \(text)")
        #expect(text.components(separatedBy: "requeued to resume").count - 1 == restarts, "\(text)")
        #expect(text.components(separatedBy: "resuming from ").count - 1 == restarts, "\(text)")
        #expect(text.contains("on SIGUSR1; checkpoint"), "\(text)")
        #expect(finalHash(log: text) == expected, "\(text)")
        #expect(try metricsWithoutWallTime(dir.appendingPathComponent("runs/long"))
                == metricsWithoutWallTime(dir.appendingPathComponent("reference/long")))
    }

    @Test("launch/sweep submits one job per rank count and a report job that tabulates them")
    func sweep() throws {
        let dir = try temporaryDirectory("descent-sweep")
        let config = try writeSyntheticConfig(in: dir, name: "series")
        let slurm = try LocalSlurm()
        defer { slurm.stop() }
        let exe = try #require(descentExecutable)
        let r = try runScript("sweep", [config.path], environment: slurm.environment.merging(
            ["DESCENT": exe.path, "NPS": "1 2", "STEPS": "20", "OUT": dir.appendingPathComponent("out").path]) { $1 },
                              directory: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("report: job ") })
        let job = String(report.dropFirst("report: job ".count).prefix { $0.isNumber })
        let end = try slurm.wait(for: job, watching: [dir.appendingPathComponent("out")])
        let folder = dir.appendingPathComponent("out/series-scale-strong")
        #expect(end["JobState"] == "COMPLETED", "\(end) \((try? String(contentsOf: folder.appendingPathComponent("report.out"), encoding: .utf8)) ?? "")")
        let rows = try readCSV(folder.appendingPathComponent("scaling.csv"))
        #expect(rows.map { $0["ranks"] } == ["1", "2"])
        #expect(rows.allSatisfy { $0["steps"] == "20" } || rows.first?["steps"] == nil)
        #expect(Set(rows.compactMap { $0["final_hash"] }).count == 1, "the strong series must end on one hash: \(rows)")
        for file in ["report.html", "scaling.svg", "phases.svg", "job-np-1.out", "job-np-2.out"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file) is missing")
        }
    }
}

extension SlurmTests {
    @Test("launch/study submits one job per batch size and a report job; the gathered study.csv is that of one mpirun launch")
    func study() throws {
        let dir = try temporaryDirectory("descent-study-slurm"), reference = try temporaryDirectory("descent-study-ref")
        defer { for d in [dir, reference] { try? FileManager.default.removeItem(at: d) } }
        let slurm = try LocalSlurm()
        defer { slurm.stop() }
        let exe = try #require(descentExecutable)
        let r = try runScript("study", [try writeStudyConfig(in: dir).path], environment: slurm.environment.merging(["DESCENT": exe.path]) { $1 },
                              directory: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("batch full: job ") && r.stdout.contains("batch 16: job "), "\(r.stdout)")
        let report = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("report: job ") })
        let job = String(report.dropFirst("report: job ".count).prefix { $0.isNumber })
        let folder = dir.appendingPathComponent("runs/tiny")
        let end = try slurm.wait(for: job, watching: [folder])
        #expect(end["JobState"] == "COMPLETED", "\(end) \((try? String(contentsOf: folder.appendingPathComponent("report.out"), encoding: .utf8)) ?? "")")
        for file in ["parts/study-batch-full.csv", "parts/study-batch-16.csv", "best.csv", "report.html", "part-16.out"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file) is missing")
        }
        let local = try runDescent(ranks: 2, ["study", "--config", try writeStudyConfig(in: reference).path, "--progress", "off"],
                                   directory: reference)
        try #require(local.status == 0, "\(local.stderr)")
        func table(_ d: URL) throws -> [[String: String]] {
            try readCSV(d.appendingPathComponent("runs/tiny/study.csv")).map { $0.filter { !["seconds_to_target", "train_s"].contains($0.key) } }
        }
        #expect(try table(dir).count == 8)
        #expect(try table(dir) == table(reference))
    }
}

/// Waits until `file` holds `text`, following the file's growth: it gives up when the file has not grown for
/// `quietLimit` seconds. Returns the moment the text was seen.
func waitForText(_ text: String, in file: URL, quietLimit: Double = 120) throws -> Date {
    var size = -1, grew = Date()
    while true {
        let content = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        if content.contains(text) { return Date() }
        if content.utf8.count != size { (size, grew) = (content.utf8.count, Date()) }
        if Date().timeIntervalSince(grew) > quietLimit {
            throw SetupError(description: "\(file.path) did not grow for \(Int(quietLimit)) s without showing '\(text)':\n\(content)")
        }
        Thread.sleep(forTimeInterval: 0.1)
    }
}

extension SlurmTests {
    @Test("two nodes: launch/descent.sbatch with mpirun (its daemon started through Slurm on the second node) and with srun end on the hash of mpirun -np 2 on one host")
    func twoNodes() throws {
        let dir = try temporaryDirectory("descent-twonodes")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: "nodes", epochs: 3)
        let expected = try referenceHash(config, in: dir)
        let slurm = try LocalSlurm(nodes: 2)
        defer { slurm.stop() }
        var jobs: [(launcher: String, job: String, log: URL)] = []
        for launcher in ["mpirun", "srun"] {
            let log = dir.appendingPathComponent("\(launcher).out")
            let job = try slurm.submitDescent(config, options: ["--nodes=2", "--ntasks=2"], environment: ["LAUNCHER": launcher],
                                              log: log, in: dir, arguments: ["--set", "output.dir=\(dir.path)/\(launcher)"])
            jobs.append((launcher, job, log))
        }
        for (launcher, job, log) in jobs {
            let end = try slurm.wait(for: job, watching: [log])
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(end["JobState"] == "COMPLETED" && end["NodeList"] == "descent-n[1-2]", "\(launcher): \(end)\n\(text)")
            #expect(text.contains("final parameter hash \(expected) (equal on all 2 ranks)"), "\(launcher): \(text)")
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("\(launcher)/nodes/summary.json"))) as? [String: Any])
            #expect(summary["hosts"] as? Int == 2, "\(launcher): the ranks ran on \(summary["hosts"] ?? "?") host(s)")
            print("two nodes, \(launcher): final hash \(expected), as mpirun -np 2 on one host")
        }
    }

    @Test("scancel: the job stops at a step boundary with a checkpoint, is not requeued, and ends within KillWait; the checkpoint resumes to the uninterrupted hash")
    func cancelled() throws {
        let dir = try temporaryDirectory("descent-scancel")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: "cancel", epochs: 50, extra: "checkpoint: {every: 1000}")
        let expected = try referenceHash(config, in: dir)
        let slurm = try LocalSlurm(nodes: 2)
        defer { slurm.stop() }
        let log = dir.appendingPathComponent("job.out")
        let job = try slurm.submitDescent(config, options: ["--nodes=2", "--ntasks=2"], environment: ["DESCENT_FAULT": "slow,rank=0,ms=50"],
                                          log: log, in: dir)
        _ = try waitForText("epoch 1.00 step", in: log)
        let cancelledAt = Date()
        let r = try runProgram("/usr/bin/scancel", [job], environment: slurm.environment)
        try #require(r.status == 0, "scancel: \(r.stderr)")
        var end: [String: String] = [:]
        while Date().timeIntervalSince(cancelledAt) < 60 {
            end = try slurm.fields(of: job)
            if let state = end["JobState"], LocalSlurm.finalStates.contains(state) { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let seconds = Date().timeIntervalSince(cancelledAt)
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(end["JobState"] == "CANCELLED" && end["Restarts"] == "0", "\(end)\n\(text)")
        #expect(seconds < 10, "the job took \(seconds) s to end after scancel; KillWait is 10 s")
        let stop = try #require(text.split(separator: "\n").first { $0.contains("on SIGTERM; checkpoint") }, "\(text)")
        #expect(!text.contains("requeued"), "\(text)")
        // Nothing left running, and nothing requeued a few seconds later.
        Thread.sleep(forTimeInterval: 3)
        #expect(try slurm.fields(of: job)["JobState"] == "CANCELLED")
        #expect(try processesMentioning(config.path).isEmpty, "descent processes are left")
        let resumed = try runDescent(ranks: 2, ["train", "--config", config.path, "--resume", "--progress", "off"], directory: dir)
        #expect(finalHash(resumed) == expected, "\(resumed.stderr)")
        print("scancel: job CANCELLED \(String(format: "%.2f", seconds)) s after scancel (KillWait 10 s): \(stop)")
    }

    @Test("lose a node: the launch ends within 10 s, the job resumes on the node left at np 1 and ends on the uninterrupted hash")
    func loseNode() throws {
        let dir = try temporaryDirectory("descent-losenode")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: "lose", epochs: 50, extra: "checkpoint: {every: 20}")
        let expected = try referenceHash(config, in: dir)
        let slurm = try LocalSlurm(nodes: 2)
        defer { slurm.stop() }
        let log = dir.appendingPathComponent("job.out")
        let job = try slurm.submitDescent(config, options: ["--nodes=2", "--ntasks-per-node=1", "--no-kill"],
                                          environment: ["DESCENT_FAULT": "slow,rank=0,ms=50"], log: log, in: dir)
        _ = try waitForText("checkpoints/step-000000040.ckpt (step 40)", in: log)
        let lostAt = Date()
        try slurm.lose("descent-n2")
        let ended = try waitForText("descent.sbatch: lost node(s) descent-n2", in: log).timeIntervalSince(lostAt)
        let restarted = try waitForText("resuming from", in: log).timeIntervalSince(lostAt)
        let end = try slurm.wait(for: job, watching: [log, dir.appendingPathComponent("runs")])
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(end["JobState"] == "COMPLETED" && end["ExitCode"] == "0:0", "\(end)\n\(text)")
        #expect(ended < 10, "the launch took \(ended) s to end after the node was lost")
        #expect(text.contains("final parameter hash \(expected) (equal on all 1 ranks)"), "\(text)")
        #expect(try metricsWithoutWallTime(dir.appendingPathComponent("runs/lose"))
                == metricsWithoutWallTime(dir.appendingPathComponent("reference/lose")))
        print("lost descent-n2: the launch ended \(String(format: "%.2f", ended)) s later, descent resumed at np 1 "
              + "\(String(format: "%.2f", restarted)) s after the loss, final hash \(expected)")
    }
}

/// Hosts made of network namespaces (launch/local-hosts), removed by `stop()`.
struct LocalHosts {
    let dir: URL
    let count: Int
    var hostfile: String { dir.appendingPathComponent("hostfile").path }
    let flags: [String]

    init(count: Int) throws {
        self.count = count
        dir = try temporaryDirectory("descent-hosts")
        let r = try runScript("local-hosts", ["up", String(count), dir.path])
        try #require(r.status == 0, "local-hosts up: \(r.stderr)")
        flags = try String(contentsOf: dir.appendingPathComponent("mpirun-flags"), encoding: .utf8)
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    func stop() { _ = try? runScript("local-hosts", ["down", String(count), dir.path]) }

    /// The arguments of `launch/hosts` for these hosts and `descent` arguments.
    func hostsArguments(_ arguments: [String]) -> [String] { [hostfile] + flags + ["--"] + arguments }

    /// `launch/hosts HOSTFILE FLAGS -- ARGUMENTS` with the test build of descent.
    func run(_ arguments: [String], environment: [String: String] = [:], directory: URL) throws -> ProcessOutput {
        let exe = try #require(descentExecutable)
        return try runScript("hosts", hostsArguments(arguments),
                             environment: environment.merging(["DESCENT": exe.path]) { $1 }, directory: directory)
    }

    /// The pids of descent processes inside host `index` (1-based).
    func descentProcesses(onHost index: Int) throws -> [Int32] {
        let r = try runProgram("/usr/sbin/ip", ["netns", "pids", "descent-h\(index)"])
        return r.stdout.split(separator: "\n").compactMap { Int32($0) }.filter { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").hasPrefix("descent")
        }
    }
}

@Suite("Two hosts as network namespaces (Open MPI over TCP)", .serialized,
       .enabled(if: namespacesAvailable, "needs root, mpirun, ip (iproute2) and unshare"))
struct HostsTests {
    @Test("2 hosts × 1 rank end on the hash and metrics of one host (deterministic reduction)")
    func sameHash() throws {
        let dir = try temporaryDirectory("descent-twohosts")
        let config = try writeSyntheticConfig(in: dir, name: "hosts", epochs: 3)
        let one = try runDescent(ranks: 1, ["train", "--config", config.path, "--set", "output.dir=\(dir.path)/one"], directory: dir)
        let expected = try #require(finalHash(one), "\(one.stderr)")

        let hosts = try LocalHosts(count: 2)
        defer { hosts.stop() }
        let r = try hosts.run(["train", "--config", config.path, "--progress", "off"], directory: dir)
        #expect(r.status == 0 && !r.timedOut, "\(r.stderr)")
        #expect(r.stdout.contains("final parameter hash \(expected) (equal on all 2 ranks)"), "\(r.stdout)\n\(r.stderr)")
        #expect(try metricsWithoutWallTime(dir.appendingPathComponent("runs/hosts"))
                == metricsWithoutWallTime(dir.appendingPathComponent("one/hosts")))
    }

    /// Starts `launch/hosts … train` on a long run (rank 0 slowed to 50 ms a step) in the background, waits until
    /// both ranks run and metrics.csv has rows, sends `signal` to the rank on host 2, and returns the seconds until
    /// the job ended and its stderr.
    func signalHostTwo(_ signal: Int32, name: String, extra: String = "") throws -> (seconds: Double, status: Int32, stderr: String) {
        let dir = try temporaryDirectory("descent-host-\(name)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = try writeSyntheticConfig(in: dir, name: name, epochs: 100, extra: extra)
        let hosts = try LocalHosts(count: 2)
        defer { hosts.stop() }
        let exe = try #require(descentExecutable), mpirun = try #require(mpirunPath)
        let process = Process()
        MatrixKernels.loadNative()  // before the spawn: the load changes this process's environment
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [packageRoot.appendingPathComponent("launch/hosts").path]
            + hosts.hostsArguments(["train", "--config", config.path, "--progress", "off"])
        var env = ProcessInfo.processInfo.environment
        env["DESCENT"] = exe.path
        env["DESCENT_FAULT"] = "slow,rank=0,ms=50"  // 1000 steps: about 50 s, far longer than the test waits
        env["PATH"] = URL(fileURLWithPath: mpirun).deletingLastPathComponent().path + ":" + (env["PATH"] ?? "")
        process.environment = env
        process.currentDirectoryURL = dir
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let errors = dir.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // Wait until both ranks run and training is under way (metrics.csv has rows), then signal the rank on host 2.
        let metrics = dir.appendingPathComponent("runs/\(name)/metrics.csv")
        var victims: [Int32] = []
        for _ in 0..<300 where process.isRunning {
            victims = try hosts.descentProcesses(onHost: 2)
            let rows = (try? String(contentsOf: metrics, encoding: .utf8))?.split(separator: "\n").count ?? 0
            if !victims.isEmpty, !(try hosts.descentProcesses(onHost: 1)).isEmpty, rows >= 2 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        try #require(process.isRunning && victims.count == 1, "the run did not get under way: \((try? String(contentsOf: errors, encoding: .utf8)) ?? "")")
        let signalledAt = Date()
        kill(victims[0], signal)
        while process.isRunning, Date().timeIntervalSince(signalledAt) < 60 { Thread.sleep(forTimeInterval: 0.05) }
        let seconds = Date().timeIntervalSince(signalledAt)
        #expect(!process.isRunning, "the job was still running \(seconds) s after the signal")
        #expect(try hosts.descentProcesses(onHost: 1).isEmpty && hosts.descentProcesses(onHost: 2).isEmpty,
                "descent processes are left on a host")
        return (seconds, process.isRunning ? 0 : process.terminationStatus, (try? String(contentsOf: errors, encoding: .utf8)) ?? "")
    }

    @Test("SIGKILL of the rank on one host ends the job on both within 10 s")
    func killOneHost() throws {
        let (seconds, status, _) = try signalHostTwo(SIGKILL, name: "kill")
        #expect(seconds < 10 && status != 0, "the job took \(seconds) s to end after the kill (status \(status))")
        print("killed rank on descent-h2: the job ended on both hosts \(String(format: "%.2f", seconds)) s later")
    }

    @Test("a rank that stops answering (SIGSTOP) is named by the watchdog: one message with the rank, its host and the operation; every rank ends")
    func stoppedRank() throws {
        let (seconds, status, stderr) = try signalHostTwo(SIGSTOP, name: "stop", extra: "guards: {collective_timeout: 3}")
        #expect(status != 0 && seconds < 3 + 10, "the job took \(seconds) s to end after SIGSTOP (timeout 3 s)")
        let own = stderr.split(separator: "\n").filter { $0.hasPrefix("descent: ") }
        #expect(own.count == 1, "\(stderr)")
        let line = String(own.first ?? "")
        #expect(line.hasPrefix("descent: rank 0 on descent-h1: rank 1 on descent-h2 stopped answering (nothing heard for "), "\(stderr)")
        #expect(line.contains(" did not complete within 3 s (guards.collective_timeout); aborting the job"), "\(stderr)")
        #expect(["all-to-all exchange", "allgather", "allreduce", "shared-memory fence"].contains { line.contains(": \($0) in phase '") }, "\(line)")
        print("SIGSTOP of the rank on descent-h2: the job ended \(String(format: "%.2f", seconds)) s later: \(line)")
    }

    @Test("a host without the data, or with other data, stops every rank before step 0 with one message naming the host and the file")
    func hostWithoutData() throws {
        let dir = try temporaryDirectory("descent-nodata")
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        // A tiny Fashion-MNIST-shaped set: 20 training and 10 test images of 28 × 28.
        for (prefix, n) in [("train", 20), ("t10k", 10)] {
            try write(idxBytes(dimensions: [n, 28, 28], payload: (0..<n * 784).map { UInt8($0 % 251) }),
                      to: data.appendingPathComponent("\(prefix)-images-idx3-ubyte"))
            try write(idxBytes(type: 0x08, dimensions: [n], payload: (0..<n).map { UInt8($0 % 10) }),
                      to: data.appendingPathComponent("\(prefix)-labels-idx1-ubyte"))
        }
        let config = dir.appendingPathComponent("data.yaml")
        try """
        name: nodata
        data: {source: fashion-mnist, path: \(data.path)}
        model: {hidden: [8]}
        training: {batch: 10, epochs: 1}
        output: {dir: \(dir.appendingPathComponent("runs").path)}
        """.write(to: config, atomically: true, encoding: .utf8)

        let hosts = try LocalHosts(count: 2)
        defer { hosts.stop() }
        let whole = try hosts.run(["train", "--config", config.path, "--progress", "off"], directory: dir)
        #expect(whole.status == 0, "with the data on both hosts: \(whole.stderr)")
        try FileManager.default.removeItem(at: dir.appendingPathComponent("runs"))

        // Host 2 sees an empty folder in place of the data.
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let r = try hosts.run(["train", "--config", config.path, "--progress", "off"],
                              environment: ["LOCAL_HOSTS_BIND": "descent-h2:\(empty.path):\(data.path)"], directory: dir)
        #expect(r.status != 0 && !r.timedOut)
        let own = ownLines(r)
        #expect(own.count == 1, "\(r.stderr)")
        #expect(own.first?.hasPrefix("descent: rank 1 on descent-h2: error: data file \(data.path)/train-images-idx3-ubyte") == true,
                "\(r.stderr)")
        #expect(own.first?.contains("no such file") == true, "\(r.stderr)")
        // launch/hosts keeps mpirun's report of the failed ranks (a banner between dashed rules) out.
        #expect(!r.stderr.contains("--------------------"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/nodata").path), "a run folder was written")

        // Host 2 sees a copy whose test labels differ in one byte: same size, other content.
        let other = dir.appendingPathComponent("other")
        try FileManager.default.copyItem(at: data, to: other)
        let labels = other.appendingPathComponent("t10k-labels-idx1-ubyte")
        var bytes = try [UInt8](Data(contentsOf: labels))
        bytes[bytes.count - 1] ^= 1
        try write(bytes, to: labels)
        let d = try hosts.run(["train", "--config", config.path, "--progress", "off"],
                              environment: ["LOCAL_HOSTS_BIND": "descent-h2:\(other.path):\(data.path)"], directory: dir)
        #expect(d.status != 0 && !d.timedOut)
        let lines = ownLines(d)
        #expect(lines.count == 1, "\(d.stderr)")
        #expect(lines.first?.hasPrefix("descent: rank 1 on descent-h2: error: rank 1 disagrees with rank 0 on data file "
                                       + "\(data.path)/t10k-labels-idx1-ubyte before step 0") == true, "\(d.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/nodata").path), "a run folder was written")
    }
}
