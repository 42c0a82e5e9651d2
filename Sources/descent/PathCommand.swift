// `descent path`: optimizer paths on a 2-D test function, as CSV and SVG pictures. One process, no MPI — except
// for a finite sum (least squares, logistic regression), which the real trainer runs on every rank of mpirun.
import ArgumentParser
import Config
import Experiments
import Collectives
import Foundation
import MPICollectives
import Models
import Training

struct PathCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "path",
        abstract: "Run optimizers on a 2-D test function; write their paths (CSV) and pictures (SVG).",
        discussion: "Presets are the files configs/path-<name>.yaml (--list shows them). Output goes to "
            + "<output.dir>/<name>/ (default runs/<name>/). A finite sum (function: least-squares or logistic) trains "
            + "with the real trainer: run it under mpirun like `descent train`."
    )

    @Option(name: .shortAndLong, help: "A path config file.")
    var config: String?

    @Option(help: "A preset name: configs/path-<name>.yaml, looked up from the working directory and from the executable's folder upwards.")
    var preset: String?

    @OptionGroup var set: OverrideOptions

    @Flag(help: "List the test functions and the presets found, then exit.")
    var list = false

    @Flag(help: "Replace an existing output folder of the same name.")
    var overwrite = false

    func validate() throws {
        if !list && (config == nil) == (preset == nil) {
            throw ValidationError("give either --config FILE or --preset NAME")
        }
    }

    func run() throws {
        if list { return printList() }
        var pathConfig: PathConfig?
        try singleProcess {
            let file = try config ?? presetFile(preset!)
            pathConfig = try PathConfig.load(yaml: readConfigFile(file), fileName: file, overrides: set.overrides)
        }
        guard let pathConfig else { return }
        // A 2-D test function is one process; a finite sum trains on the ranks of the job like any model.
        guard pathConfig.function.isFiniteSum else { return try singleProcess { try lab(pathConfig, on: SingleProcessCommunicator()) } }
        try distributed { communicator, _ in try lab(pathConfig, on: communicator) }
    }

    /// Runs the lab on every rank; rank 0 writes the files and prints the summary.
    func lab(_ config: PathConfig, on communicator: Communicator) throws {
        let started = Date()
        // The folder rule of every command, checked before anything runs.
        try communicator.collectively {
            if communicator.rank == 0 {
                try Trainer.createRunDirectory(config.outputDirectory + "/" + config.name, overwrite: overwrite, kind: "lab folder")
            }
        }
        let trajectories = try PathLab.run(config, on: communicator)
        try communicator.collectively {
            guard communicator.rank == 0 else { return }
            let (folder, names) = try PathLab.write(config, trajectories)
            print(PathLab.summary(config, trajectories))
            print("wrote \(folder)/: " + names.joined(separator: ", ") + String(format: " (%.2f s)", Date().timeIntervalSince(started)))
        }
    }

    /// Folders searched for `configs/path-<name>.yaml`: the working directory, then the executable's folder and
    /// its parents (so `.build/release/descent` finds the repository's configs from anywhere).
    static func searchFolders() -> [String] {
        var folders = [FileManager.default.currentDirectoryPath]
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while url.path != "/" && !url.path.isEmpty {
            folders.append(url.path)
            url.deleteLastPathComponent()
        }
        return folders
    }

    static func presets() -> [String] {
        for folder in searchFolders() {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder + "/configs")) ?? []
            let presets = names.filter { $0.hasPrefix("path-") && $0.hasSuffix(".yaml") }
                .map { String($0.dropFirst(5).dropLast(5)) }.sorted()
            if !presets.isEmpty { return presets }
        }
        return []
    }

    func presetFile(_ name: String) throws -> String {
        for folder in Self.searchFolders() {
            let file = folder + "/configs/path-\(name).yaml"
            if FileManager.default.fileExists(atPath: file) { return file }
        }
        let known = Self.presets()
        throw ConfigError(source: "--preset", key: name,
                          expected: known.isEmpty ? "a preset file configs/path-\(name).yaml (none found here or beside the executable)"
                                                  : "one of " + known.joined(separator: ", "),
                          found: "no file configs/path-\(name).yaml")
    }

    func printList() {
        print("functions:")
        for f in TestFunction.allCases {
            let m = f.minima.map { "(\(String(format: "%.4g", $0.x)), \(String(format: "%.4g", $0.y)))" }.joined(separator: ", ")
            print("  " + f.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0) + f.formula)
            print("  " + String(repeating: " ", count: 14) + "\(f.minimaName) \(m); start (" + String(format: "%g, %g", f.start.x, f.start.y) + ")")
        }
        for f in FiniteSum.allCases {
            print("  " + f.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0) + f.formula + " over the samples")
            print("  " + String(repeating: " ", count: 14) + "minimum the fit to its data (Newton); start ("
                  + String(format: "%g, %g", f.start.x, f.start.y) + "); trained by the trainer, under mpirun too")
        }
        let presets = Self.presets()
        print("presets: " + (presets.isEmpty ? "none found" : presets.joined(separator: ", ")))
    }
}
