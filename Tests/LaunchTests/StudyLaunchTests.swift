// `descent study` under mpirun: a study killed midway and run again ends with the same study.csv as one never
// interrupted, and bad input stops every rank with one message before anything is written.
import DescentTestSupport
import Foundation
import Testing

@Suite("study under mpirun", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct StudyLaunchTests {
    /// study.csv without the columns that measure time.
    func table(_ dir: URL) throws -> [[String: String]] {
        try readCSV(dir.appendingPathComponent("runs/tiny/study.csv")).map { $0.filter { !["seconds_to_target", "train_s"].contains($0.key) } }
    }

    @Test("a study killed midway and run again ends with the same study.csv as one never interrupted")
    func killedAndRerun() throws {
        let whole = try temporaryDirectory("study-whole"), cut = try temporaryDirectory("study-cut")
        defer { for d in [whole, cut] { try? FileManager.default.removeItem(at: d) } }
        let args = { (dir: URL) in ["study", "--config", try writeStudyConfig(in: dir).path, "--progress", "off"] }
        let uninterrupted = try runDescent(ranks: 2, args(whole), directory: whole)
        try #require(uninterrupted.status == 0 && !uninterrupted.timedOut, "\(uninterrupted.stderr)")
        let expected = try table(whole)
        #expect(expected.count == 8)
        // The console: a line per launch and per finished group (and the range tests'), not the trainers' own.
        let lines = uninterrupted.stdout.split(separator: "\n")
        #expect(lines.count <= 12 && !lines.contains { $0.hasPrefix("done:") || $0.contains("epoch ") }, "\(uninterrupted.stdout)")
        #expect(lines.filter { $0.hasPrefix("== ") && $0.contains(": done, ") }.count == 2, "\(uninterrupted.stdout)")
        // Where python3 (or DESCENT_PYTHON) has tensorboard, its own HParams plugin lists every trial with its rate.
        let check = packageRoot.appendingPathComponent("launch/hparams_check.py").path
        let python = ProcessInfo.processInfo.environment["DESCENT_PYTHON"] ?? "/usr/bin/python3"
        if let tb = try? runProgram(python, [check, whole.appendingPathComponent("runs/tiny").path], directory: whole), tb.status == 0 {
            let groups = try #require((try JSONSerialization.jsonObject(with: Data(tb.stdout.utf8)) as? [String: Any])?["session_groups"] as? [[String: Any]])
            let rates = groups.compactMap { ($0["hparams"] as? [String: Any])?["lr"] as? Double }.sorted()
            #expect(rates == expected.compactMap { Double($0["lr"]!) }.sorted(), "\(tb.stdout)")
        }

        // Rank 1 dies in step 100: in the second group, after the first group's four trials were written.
        let killed = try runDescent(ranks: 2, args(cut), directory: cut, environment: ["DESCENT_FAULT": "kill,rank=1,step=100"])
        #expect(killed.status != 0 && !killed.timedOut)
        let partial = try table(cut)
        #expect(partial.count == 4 && partial.allSatisfy { $0["batch"] == "full" }, "\(partial)")
        let again = try runDescent(ranks: 2, args(cut), directory: cut)
        #expect(again.status == 0 && !again.timedOut, "\(again.stderr)")
        #expect(again.stdout.contains("== sgd, batch full: 4 trials measured before"))
        #expect(try table(cut) == expected)
        let best = { (dir: URL) in try readCSV(dir.appendingPathComponent("runs/tiny/best.csv")).map { $0.filter { $0.key != "seconds_to_target" } } }
        #expect(try best(cut) == best(whole))
    }

    @Test("bad study input stops every rank with one message naming the key, and writes nothing", arguments: [
        ("study.batches=[16, 100000]", "--set: study.batches: expected batch sizes from 2 (one sample per rank) to the training set's 512 samples (full: the whole set), found 100000"),
        ("study.lr=[]", "study.lr: expected [low, high] with 0 < low ≤ high, found []"),
        ("study.trials=0", "study.trials: expected an integer in 1...1000, found '0'"),
        ("study.target=val_loss", "study.target: expected a metric the data gives (val_loss needs data.validation), found val_loss"),
    ])
    func badInput(_ c: (set: String, message: String)) throws {
        let dir = try temporaryDirectory("study-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try runDescent(ranks: 2, ["study", "--config", try writeStudyConfig(in: dir).path, "--set", c.set, "--progress", "off"],
                               directory: dir)
        #expect(r.status != 0 && !r.timedOut)
        let lines = r.stderr.split(separator: "\n").filter { $0.contains("study.") }
        #expect(lines.count == 1 && lines[0].hasSuffix(c.message), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs").path))
    }
}
