// Resources before they run out: the estimate's arithmetic, worked by hand, and the refusals that quote it.
import Optimizers
import Testing
@testable import Training

@Suite("Memory and disk before a run")
struct ResourceTests {
    @Test("the estimate counts parameters, optimizer state, the exchange and the workspace, each as the docs say")
    func estimate() {
        // 1,000 parameters, two replicas (Adam keeps 2 buffers, momentum 1), a rank owning all, chunk 32, widths 100.
        let e = MemoryEstimate(parameterCount: 1000, replicas: [OptimizerSettings(.adam), OptimizerSettings(.momentum)],
                               owned: 1000, chunk: 32, widths: 100)
        #expect(e.parameters == 3 * 1000 * 4)  // two replicas and the initial copy
        #expect(e.optimizerState == (2 + 1) * 1000 * 4)
        #expect(e.exchange == 4 * 2 * 1002 * 4)
        #expect(e.workspace == 6 * 32 * 100 * 4)
        #expect(e.total == 12_000 + 12_000 + 32_064 + 76_800)
    }

    @Test("a run beyond its share of the host's memory, or checkpoints beyond the free disk, are refused with both figures")
    func refusals() throws {
        let e = MemoryEstimate(parameterCount: 1_000_000_000, replicas: [OptimizerSettings(.sgd)], owned: 1_000_000_000, chunk: 1, widths: 1)
        #expect(throws: Never.self) { try Resources.checkMemory(e, model: "m", ranksOnHost: 1, available: 100_000_000_000) }
        do {
            try Resources.checkMemory(e, model: "m", ranksOnHost: 2, available: 20_000_000_000)
            Issue.record("not refused")
        } catch {
            #expect("\(error)" == "the run needs about 24.0 GB (parameters 8.0 GB, optimizer state 0.0 GB, exchange 16.0 GB, "
                    + "workspace 0.0 GB) per rank for model m, and this host has 20.0 GB available for its 2 ranks (10.0 GB each); "
                    + "use a smaller model, fewer replicas or fewer ranks per host")
        }
        #expect(throws: Never.self) { try Resources.checkDisk(checkpointBytes: 1_000, keep: 3, directory: "d", free: 4_000) }
        do {
            try Resources.checkDisk(checkpointBytes: 2_000_000_000, keep: 3, directory: "runs/x/checkpoints", free: 5_000_000_000)
            Issue.record("not refused")
        } catch {
            #expect("\(error)" == "checkpoints in runs/x/checkpoints need about 8.0 GB (3 kept and one being written, 2.0 GB each), "
                    + "and the disk there has 5.0 GB free; lower checkpoint.keep, or set checkpoint.every: 0")
        }
    }
}
