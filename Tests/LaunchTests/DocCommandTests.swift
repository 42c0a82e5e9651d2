// The commands the README and docs/ show, run as written (with small settings appended), so that the docs cannot
// drift from the program: every `descent` line of a ```sh block runs to a zero exit, and every script or config file a
// line names exists.
import DescentTestSupport
import Foundation
import Testing

@Suite struct DocCommandTests {
    /// One shell line of a ```sh block: backslash continuations joined, the trailing comment dropped.
    struct Line: CustomStringConvertible {
        var file: String
        var number: Int
        var text: String
        var description: String { "\(file):\(number): \(text)" }
    }

    static let documents = ["README.md"] + ((try? FileManager.default.contentsOfDirectory(
        atPath: packageRoot.appendingPathComponent("docs").path)) ?? []).filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }

    /// Lines that show a command's syntax or need what only a reader has, each with the reason it is not run.
    static let notRun: [(contains: String, why: String)] = [
        (" [--", "shows the syntax of optional arguments"),
        ("my-lab.yaml", "the reader's own config file"),
        ("scaling-report runs/", "reads the folder of a launch/scale sweep, which the scaling tests make and read"),
    ]

    /// The shell lines of every ```sh block in `document`.
    static func lines(of document: String) throws -> [Line] {
        let text = try String(contentsOf: packageRoot.appendingPathComponent(document), encoding: .utf8)
        var lines: [Line] = [], inBlock = false, pending: (Int, String)? = nil
        for (k, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if raw.hasPrefix("```") {
                inBlock = !inBlock && (raw == "```sh" || raw == "```bash")
                continue
            }
            guard inBlock else { continue }
            var line = String(raw)
            if let hash = line.range(of: #"\s#"#, options: .regularExpression),
               !line[hash.upperBound...].contains("'") && !line[hash.upperBound...].contains("\"") {
                line = String(line[..<hash.lowerBound])
            }
            line = line.trimmingCharacters(in: .whitespaces)
            let start = pending ?? (k + 1, "")
            if line.hasSuffix("\\") {
                pending = (start.0, start.1 + line.dropLast() + " ")
                continue
            }
            pending = nil
            let whole = start.1 + line
            if !whole.isEmpty && !whole.hasPrefix("#") { lines.append(Line(file: document, number: start.0, text: whole)) }
        }
        return lines
    }

    /// What a `descent` line needs appended to finish in seconds (in a debug build): a couple of steps, one small
    /// study group, no progress lines.
    static func smallSettings(_ line: String) -> String {
        if line.contains("descent train ") || line.contains("descent compare ") {
            return " --set training.steps=2 --progress off"
        }
        // A study: one group (batch 128, SGD), one trial of 2 steps, and the shortest range test.
        if line.contains("descent study ") {
            return " --set study.trials=1 --set study.max_steps=2 --set 'study.batches=[128]' --set 'study.optimizers=[{name: sgd}]'"
                + " --set 'study.range_test=[0.001, 1, 10]' --progress off"
        }
        return ""
    }

    /// The repository's files a line names (configs, launch scripts), which must exist.
    static func namedFiles(_ line: String) -> [String] {
        line.split(separator: " ").map(String.init).filter { $0.hasPrefix("configs/") || $0.hasPrefix("launch/") }
    }

    @Test("the docs show commands: their ```sh blocks hold descent lines, and the extraction finds the README's")
    func extraction() throws {
        let readme = try Self.lines(of: "README.md").map(\.text)
        #expect(readme.contains("mpirun -np 2 .build/release/descent train --config configs/default.yaml"))
        #expect(readme.contains("launch/test"))
        let joined = try Self.lines(of: "docs/optimizers.md").map(\.text).filter { $0.contains("adam-cosine") }
        #expect(joined.count == 1 && joined[0].hasSuffix("--set schedule.reference_batch=128"), "\(joined)")
        #expect(Self.documents.count >= 10)
        // Each exception still matches a line, so the list cannot outlive what it excuses.
        let all = try Self.documents.flatMap(Self.lines(of:)).map(\.text)
        for exception in Self.notRun {
            #expect(all.contains { $0.contains(exception.contains) }, "no line left for '\(exception.contains)' (\(exception.why))")
        }
    }

    @Test("every command shown in the README and docs/ runs as written, with small settings", arguments: documents)
    func commands(_ document: String) throws {
        let lines = try Self.lines(of: document)
        let work = try temporaryDirectory("docs")
        // The reader's working directory is the repository's: its configs, and runs/ written there (here, a copy's).
        try FileManager.default.createSymbolicLink(at: work.appendingPathComponent("configs"),
                                                   withDestinationURL: packageRoot.appendingPathComponent("configs"))
        guard let exe = descentExecutable else { throw SetupError(description: "the descent executable was not built") }
        for line in lines {
            for name in Self.namedFiles(line.text) {
                let path = packageRoot.appendingPathComponent(name).path
                let script = name.hasPrefix("launch/")
                let present = script ? FileManager.default.isExecutableFile(atPath: path) : FileManager.default.fileExists(atPath: path)
                #expect(present, "\(line): \(name) is not in the repository\(script ? " as an executable script" : "")")
            }
            guard line.text.contains(".build/release/descent ") else { continue }
            if Self.notRun.contains(where: { line.text.contains($0.contains) }) { continue }
            let command = line.text.replacingOccurrences(of: ".build/release/descent", with: exe.path) + Self.smallSettings(line.text)
            let r = try runProgram("/bin/bash", ["-c", command], directory: work)
            #expect(r.status == 0 && !r.timedOut, "\(line)\n\(r.stderr.suffix(2000))")
        }
    }
}
