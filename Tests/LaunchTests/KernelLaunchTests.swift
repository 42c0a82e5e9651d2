// The kernel modes under real mpirun: the portable hash is the one committed here (it holds on every x86-64 CPU
// with AVX2 and FMA), ranks on different portable paths train together, and ranks that would compute with native
// kernels of two kinds are refused before step 0 with one message.
import DescentTestSupport
import Foundation
import Testing

@Suite("Matrix kernels under mpirun", .serialized, .enabled(if: mpiAvailable, "mpirun or the descent executable is missing"))
struct KernelLaunchTests {
    /// configs/synthetic.yaml at np 2 with `runtime.kernels: portable`, as docs/determinism.md lists it.
    static let portableSyntheticHash = "eed19319d7b4637f"

    /// The `kernels` list of a run's summary.json.
    func kernels(_ run: URL) throws -> [[String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any]
        return json?["kernels"] as? [[String: Any]] ?? []
    }

    /// `mpirun` with one app context per rank: rank r runs `env ENV[r] descent ARGS` (an environment of its own).
    func perRank(_ environments: [[String]], _ arguments: [String], in dir: URL) throws -> ProcessOutput {
        let exe = try #require(descentExecutable).path
        let contexts = environments.map { ["-np", "1", "/usr/bin/env"] + $0 + [exe] + arguments }
        return try runProgram(try #require(mpirunPath), Array(contexts.joined(separator: [":"])), directory: dir)
    }

    @Test("configs/synthetic.yaml in both modes: portable ends on the committed hash; native runs OpenBLAS with named kernels")
    func bothModes() throws {
        let dir = try temporaryDirectory("descent-kernels")
        let config = packageRoot.appendingPathComponent("configs/synthetic.yaml").path
        var hashes: [String: String] = [:]
        for mode in ["portable", "native"] {
            let r = try runDescent(ranks: 2, ["train", "--config", config, "--progress", "off", "--set", "runtime.kernels=\(mode)",
                                              "--set", "name=\(mode)"], directory: dir)
            #expect(r.status == 0, "\(r.stderr)")
            hashes[mode] = finalHash(r)
            #expect(r.stdout.contains("kernels \(mode): "), "\(r.stdout)")
            let listed = try kernels(dir.appendingPathComponent("runs/\(mode)"))
            #expect(listed.map { $0["rank"] as? Int } == [0, 1])
            #expect(listed.allSatisfy { $0["mode"] as? String == mode && !($0["cpu"] as? String ?? "").isEmpty })
            if mode == "native" {
                #expect(listed.allSatisfy { ($0["library"] as? String ?? "").hasPrefix("OpenBLAS ") }, "\(listed)")
            }
        }
        #expect(hashes["portable"] == Self.portableSyntheticHash, "portable: \(hashes["portable"] ?? "no hash")")
        #expect(hashes["native"] != nil)
    }

    @Test("ranks on different portable paths (AVX-512 or AVX2, AVX2, scalar) train together to the committed hash")
    func mixedPortablePaths() throws {
        let dir = try temporaryDirectory("descent-kernels-paths")
        let config = packageRoot.appendingPathComponent("configs/synthetic.yaml").path
        let r = try perRank([[], ["DESCENT_PORTABLE_PATH=avx2"], ["DESCENT_PORTABLE_PATH=scalar"]],
                            ["train", "--config", config, "--progress", "off"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(finalHash(r) == Self.portableSyntheticHash, "\(r.stdout)")
        let paths = try kernels(dir.appendingPathComponent("runs/synthetic")).map { $0["kernels"] as? String ?? "" }
        #expect(paths.count == 3 && paths[2] == "scalar", "\(paths)")
    }

    @Test("descent doctor: the kernel family descent chooses for this CPU (no OPENBLAS_CORETYPE) and the portable path stay within the rounding bound of a Double product")
    func doctorChecksTheChosenKernels() throws {
        let dir = try temporaryDirectory("descent-doctor")
        let r = try runDescent(ranks: 0, ["doctor"], directory: dir, environment: ["OPENBLAS_CORETYPE": ""])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.components(separatedBy: "\n")
        let native = lines.first { $0.contains("native: OpenBLAS") } ?? ""
        #expect(native.contains("chosen from the CPU's") || native.contains("the library's own choice"), "\(r.stdout)")
        for mode in ["portable: descent gemm", "native: OpenBLAS"] {
            let line = lines.first { $0.contains(mode) } ?? ""
            let ratio = line.components(separatedBy: "error ").last.flatMap { Double($0.prefix { $0 != " " }) }
            #expect(ratio.map { $0 <= 1 } == true, "\(mode): \(line)")
        }
        #expect(!r.stdout.contains("WRONG"), "\(r.stdout)")
    }

    @Test("ranks that would compute with different native kernels are refused before step 0 with one message naming them")
    func mixedNativeKernels() throws {
        let dir = try temporaryDirectory("descent-kernels-mixed")
        let config = packageRoot.appendingPathComponent("configs/synthetic.yaml").path
        // Both families run on any x86-64 CPU with AVX2; one rank is given the other, as a node of another kind would be.
        let r = try perRank([["OPENBLAS_CORETYPE=Haswell"], ["OPENBLAS_CORETYPE=Sandybridge"]],
                            ["train", "--config", config, "--progress", "off", "--set", "runtime.kernels=native"], in: dir)
        #expect(r.status != 0 && !r.timedOut)
        let messages = r.stderr.components(separatedBy: "\n").filter { $0.contains("different matrix kernels") }
        #expect(messages.count == 1, "\(r.stderr)")
        let message = messages.first ?? ""
        #expect(message.contains("rank 0 on ") && message.contains("Haswell kernels (OPENBLAS_CORETYPE=Haswell)"), "\(message)")
        #expect(message.contains("rank 1 on ") && message.contains("Sandybridge kernels"), "\(message)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs/synthetic").path), "a run folder was written")
    }
}
