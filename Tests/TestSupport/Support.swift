// Helpers shared by the tests: temporary folders, the package's paths, and running the built executable.
import Foundation
import Numerics

/// The package root, found from this file's location.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh empty folder under the system's temporary directory, removed when the test process exits (kept when
/// DESCENT_KEEP_TEST_DIRS is set, to look at after a failure).
public func temporaryDirectory(_ label: String = "descent-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    TemporaryFolders.shared.add(url)
    return url
}

/// The folders `temporaryDirectory` made, removed at exit.
final class TemporaryFolders: @unchecked Sendable {
    static let shared = TemporaryFolders()
    private let lock = NSLock()
    private var folders: [URL] = []

    private init() {
        guard ProcessInfo.processInfo.environment["DESCENT_KEEP_TEST_DIRS"] == nil else { return }
        atexit { TemporaryFolders.shared.removeAll() }
    }

    func add(_ url: URL) { lock.withLock { folders.append(url) } }

    private func removeAll() {
        for url in lock.withLock({ folders }) { try? FileManager.default.removeItem(at: url) }
    }
}

/// The `descent` executable built beside the test bundle.
public let descentExecutable: URL? = {
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
public let mpirunPath: String? = {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let p = "\(dir)/mpirun"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}()

public struct ProcessOutput {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// The program was killed because it stopped making progress; `stderr` ends with what was waited for.
    public var timedOut: Bool
}

/// A test's setup that could not be done (a missing tool, a program that failed before the test began).
public struct SetupError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Output read from a running program, and when it last grew.
private final class Captured: @unchecked Sendable {
    private let lock = NSLock()
    private var data = [Data(), Data()]
    private var last = Date()

    /// The program starts now: its quiet time counts from here.
    func start() {
        lock.lock()
        last = Date()
        lock.unlock()
    }

    func append(_ chunk: Data, to stream: Int) {
        lock.lock()
        data[stream].append(chunk)
        last = Date()
        lock.unlock()
    }

    var quietSeconds: Double {
        lock.lock()
        defer { lock.unlock() }
        return Date().timeIntervalSince(last)
    }

    func text(_ stream: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data[stream], as: UTF8.self)
    }
}

/// Runs a program to completion and captures its output. The wait is judged by progress, not by the clock: the
/// program is killed only when it has written nothing for `quietLimit` seconds (a busy machine makes a program
/// slower, not silent), and the output then says so.
public func runProgram(_ path: String, _ arguments: [String], environment extra: [String: String] = [:],
                       directory: URL? = nil, quietLimit: Double = 300) throws -> ProcessOutput {
    // The kernels' one change of this process's environment must not race with a spawn that reads it.
    MatrixKernels.loadNative()
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
    let pipes = [Pipe(), Pipe()]
    process.standardOutput = pipes[0]
    process.standardError = pipes[1]
    process.standardInput = FileHandle.nullDevice
    let done = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in done.signal() }
    // Drain both pipes while the program runs, so a chatty program cannot block on a full pipe.
    // On threads of their own: the shared dispatch pool can be busy with other tests' blocking waits, and a reader
    // that does not run would make a talking program look silent.
    let captured = Captured()
    let readers = DispatchGroup()
    for (stream, pipe) in pipes.enumerated() {
        readers.enter()
        Thread {
            while case let chunk = pipe.fileHandleForReading.availableData, !chunk.isEmpty { captured.append(chunk, to: stream) }
            readers.leave()
        }.start()
    }
    try process.run()
    captured.start()
    var timedOut = false
    while done.wait(timeout: .now() + 1) == .timedOut {
        guard captured.quietSeconds > quietLimit else { continue }
        timedOut = true
        kill(-process.processIdentifier, SIGKILL)
        process.terminate()
        kill(process.processIdentifier, SIGKILL)
        done.wait()
        break
    }
    readers.wait()
    var stderr = captured.text(1)
    if timedOut {
        stderr += "\n[test] killed \(path) \(arguments.joined(separator: " ")): no output for \(Int(quietLimit)) s "
            + "(waited for it to print progress or end)\n"
    }
    return ProcessOutput(status: process.terminationStatus, stdout: captured.text(0), stderr: stderr, timedOut: timedOut)
}

/// Runs `descent ARGS` under `mpirun [MPIRUN ARGS] -np N` (N = 0: without mpirun).
public func runDescent(ranks: Int, _ arguments: [String], directory: URL, environment: [String: String] = [:],
                       mpirunArguments: [String] = [], quietLimit: Double = 300) throws -> ProcessOutput {
    guard let exe = descentExecutable else { throw SetupError(description: "the descent executable was not built") }
    if ranks == 0 { return try runProgram(exe.path, arguments, environment: environment, directory: directory, quietLimit: quietLimit) }
    guard let mpirun = mpirunPath else { throw SetupError(description: "mpirun is not installed") }
    return try runProgram(mpirun, mpirunArguments + ["-np", String(ranks), exe.path] + arguments, environment: environment,
                          directory: directory, quietLimit: quietLimit)
}

/// Parses a CSV file with a header into rows of column → value (RFC 4180 quoting: "a, b" and "say ""hi""").
public func readCSV(_ url: URL) throws -> [[String: String]] {
    let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
    guard let header = lines.first.map(csvCells) else { return [] }
    return lines.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(header, csvCells($0))) }
}

/// The cells of one CSV line.
func csvCells(_ line: String) -> [String] {
    var cells: [String] = [], cell = "", quoted = false
    var characters = line.makeIterator()
    while let c = characters.next() {
        switch (c, quoted) {
        case ("\"", true):
            if let next = characters.next() {
                if next == "\"" { cell.append("\"") } else { quoted = false; if next == "," { cells.append(cell); cell = "" } else { cell.append(next) } }
            } else {
                quoted = false
            }
        case ("\"", false) where cell.isEmpty: quoted = true
        case (",", false): cells.append(cell); cell = ""
        default: cell.append(c)
        }
    }
    return cells + [cell]
}

/// |a − b| ≤ tolerance · max(|b|, floor)
public func close(_ a: Double, _ b: Double, relative tolerance: Double, floor: Double = 1) -> Bool {
    abs(a - b) <= tolerance * max(abs(b), floor)
}
