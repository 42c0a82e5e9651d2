// `descent runs`: run folders from separate launches side by side, filtered, sorted and drawn.
import DescentTestSupport
import Foundation
import Numerics
import Testing
@testable import Config
import Datasets
@testable import Experiments
@testable import Reports

@Suite struct RunTableTests {
    /// A run folder as descent leaves it: its resolved config, summary.json and metrics.csv.
    func writeRun(_ dir: URL, _ name: String, overrides: [String], accuracy: Double, steps: Int) throws {
        let folder = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let config = try RunConfig.load(yaml: "name: \(URL(fileURLWithPath: name).lastPathComponent)\n", fileName: "c.yaml", overrides: overrides)
        try config.resolvedYAML.write(to: folder.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
        let summary: [String: Any] = ["test_accuracy": accuracy, "steps": steps, "train_seconds": 1.5, "final_hash": "00ff"]
        try JSONSerialization.data(withJSONObject: summary).write(to: folder.appendingPathComponent("summary.json"))
        try "kind,step,epoch,test_accuracy\nstep,10,0.5,\nepoch,20,1,\(accuracy - 0.1)\nepoch,40,2,\(accuracy)\n"
            .write(to: folder.appendingPathComponent("metrics.csv"), atomically: true, encoding: .utf8)
    }

    @Test("a folder that holds no run is a read error that says what it is: a run folder, a scaling folder")
    func missingRuns() throws {
        let dir = try temporaryDirectory("runs-missing")
        defer { try? FileManager.default.removeItem(at: dir) }
        let nothing = dir.appendingPathComponent("nothing").path
        #expect(throws: DataFileError(file: nothing, field: "run folder", expected: "a folder with summary.json and config.yaml",
                                      found: "no such file or folder", kind: "run folder")) { try RunTable.load([nothing]) }
        let message = "folder \(dir.path): runs: expected np-*/summary.json of finished runs (as launch/scale writes them), found none"
        #expect { try ScalingReport.read(dir.path) } throws: { "\($0)" == message }
    }

    @Test("the keys that differ, the outcomes, filters, numeric sorting, three formats and one overlaid chart")
    func table() throws {
        let dir = try temporaryDirectory("runs")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeRun(dir, "a", overrides: ["optimizer.lr=0.1"], accuracy: 0.8, steps: 100)
        try writeRun(dir, "b", overrides: ["optimizer.lr=0.05", "training.batch=32"], accuracy: 0.85, steps: 9)
        // A compare's folder: its replicas are the runs.
        try writeRun(dir, "cmp/adam", overrides: ["optimizer.name=adam", "optimizer.lr=0.001"], accuracy: 0.9, steps: 20)
        let table = try RunTable.load([dir.appendingPathComponent("a").path, dir.appendingPathComponent("b").path,
                                       dir.appendingPathComponent("cmp").path])
        #expect(table.runs.count == 3)
        #expect(table.differingKeys == ["optimizer.lr", "optimizer.name", "training.batch"], "\(table.differingKeys)")
        #expect(table.columns == ["run", "date", "optimizer.lr", "optimizer.name", "training.batch", "test_accuracy", "steps",
                                  "train_seconds", "final_hash"])
        // 9 < 20 < 100 as numbers, not as text.
        #expect(table.sorted(by: "steps").runs.map { URL(fileURLWithPath: $0.folder).lastPathComponent } == ["b", "adam", "a"])
        #expect(table.sorted(by: "test_accuracy", descending: true).runs.map { $0.value("test_accuracy") } == ["0.9", "0.85", "0.8"])
        let adam = try table.filtered(["optimizer.name=adam"])
        #expect(adam.runs.count == 1 && adam.runs[0].value("optimizer.lr") == "0.001")
        #expect(try table.filtered(["steps=9"]).runs.count == 1)
        let markdown = table.render(.markdown).split(separator: "\n")
        #expect(markdown.count == 5 && markdown[1] == "|---|---|---|---|---|---|---|---|---|")
        let csv = csvRows(table.render(.csv))
        #expect(csv.count == 4 && csv[0][2] == "optimizer.lr" && csv.dropFirst().map { $0[2] } == ["0.1", "0.05", "0.001"])
        #expect(table.render(.text).split(separator: "\n").count == 4)
        let chart = try table.chart("test_accuracy")
        #expect(chart.series.count == 3 && chart.series.allSatisfy { $0.points.count == 2 })
        #expect(chart.series[0].label.contains("optimizer.lr 0.1"))
        #expect(throws: Error.self) { try table.chart("no_such_column") }
        #expect(throws: Error.self) { try table.filtered(["steps"]) }
        #expect(throws: Error.self) { try RunTable.load([dir.appendingPathComponent("missing").path]) }
    }
}
