// Helpers shared by the tests: temporary folders, the package's paths, and running the built executable.
import Foundation
import Testing

/// The package root, found from this file's location.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh empty folder under the system's temporary directory.
func temporaryDirectory(_ label: String = "descent-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The `descent` executable built beside the test bundle.
let descentExecutable: URL? = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("descent")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let fallback = packageRoot.appendingPathComponent(".build/debug/descent")
    return FileManager.default.isExecutableFile(atPath: fallback.path) ? fallback : nil
}()

/// The mpirun on PATH, if any.
let mpirunPath: String? = {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let p = "\(dir)/mpirun"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}()

struct ProcessOutput {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool
}

/// Runs a program to completion (killing it after `timeout` seconds) and captures its output.
func runProgram(_ path: String, _ arguments: [String], environment extra: [String: String] = [:],
                directory: URL? = nil, timeout: Double = 120) throws -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    for (k, v) in extra { env[k] = v }
    process.environment = env
    if let directory { process.currentDirectoryURL = directory }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    let done = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in done.signal() }
    // Drain both pipes while the program runs, so a chatty program cannot block on a full pipe.
    final class Captured: @unchecked Sendable { var out = Data(), err = Data() }
    let captured = Captured()
    let readers = DispatchGroup()
    DispatchQueue.global().async(group: readers) { captured.out = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: readers) { captured.err = err.fileHandleForReading.readDataToEndOfFile() }
    try process.run()
    var timedOut = false
    if done.wait(timeout: .now() + timeout) == .timedOut {
        timedOut = true
        kill(-process.processIdentifier, SIGKILL)
        process.terminate()
        kill(process.processIdentifier, SIGKILL)
        done.wait()
    }
    readers.wait()
    return ProcessOutput(status: process.terminationStatus, stdout: String(decoding: captured.out, as: UTF8.self),
                         stderr: String(decoding: captured.err, as: UTF8.self), timedOut: timedOut)
}

/// Runs `descent ARGS` under `mpirun [MPIRUN ARGS] -np N` (N = 0: without mpirun).
func runDescent(ranks: Int, _ arguments: [String], directory: URL, environment: [String: String] = [:],
                mpirunArguments: [String] = [], timeout: Double = 180) throws -> ProcessOutput {
    let exe = try #require(descentExecutable, "the descent executable was not built")
    if ranks == 0 { return try runProgram(exe.path, arguments, environment: environment, directory: directory, timeout: timeout) }
    let mpirun = try #require(mpirunPath, "mpirun is not installed")
    return try runProgram(mpirun, mpirunArguments + ["-np", String(ranks), exe.path] + arguments, environment: environment,
                          directory: directory, timeout: timeout)
}

/// Parses a CSV file with a header into rows of column → value.
func readCSV(_ url: URL) throws -> [[String: String]] {
    let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
    guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else { return [] }
    return lines.dropFirst().map { line in
        let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return Dictionary(uniqueKeysWithValues: zip(header, cells))
    }
}

/// |a − b| ≤ tolerance · max(|b|, floor)
func close(_ a: Double, _ b: Double, relative tolerance: Double, floor: Double = 1) -> Bool {
    abs(a - b) <= tolerance * max(abs(b), floor)
}
