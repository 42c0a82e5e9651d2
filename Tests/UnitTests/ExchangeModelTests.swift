// The α–β model of the exchange and the projection built on it: the terms of the collectives descent issues, the
// fit recovering known coefficients, the network syntax, and projected rows worked out by hand.
import DescentTestSupport
import Foundation
import Testing
@testable import Experiments

@Suite struct ExchangeModelTests {
    @Test("the terms count the alltoallv's and allgatherv's n − 1 messages each, the allreduce's ⌈log₂ n⌉, and (n − 1)/n of 4p bytes twice")
    func terms() {
        let one = ExchangeModel.terms(ranks: 1, parameters: 1000)
        #expect(one.messages == 0 && one.bytes == 0 && one.parameters == 1000)
        let four = ExchangeModel.terms(ranks: 4, parameters: 1000)
        #expect(four.messages == 2 * 3 + 2 && four.bytes == 2 * 4 * 1000 * 3 / 4.0)
        #expect(ExchangeModel.terms(ranks: 5, parameters: 10).messages == 2 * 4 + 3)
    }

    @Test("the fit recovers α, β and γ from exact timings, and from timings with 5 % noise within 15 %")
    func fit() {
        let truth = ExchangeModel(latency: 4e-6, secondsPerByte: 1 / 6e9, secondsPerParameter: 0.3e-9)
        var rng = SystemRandomNumberGenerator()
        for noise in [0.0, 0.05] {
            let points = [1, 2, 4].flatMap { n in
                [10_000, 100_000, 1_000_000].map { p in
                    ExchangeModel.Timing(transport: "shm", ranks: n, parameters: p,
                                         seconds: truth.seconds(ranks: n, parameters: p) * (1 + Double.random(in: -noise...noise, using: &rng)))
                }
            }
            let fit = ExchangeModel.fit(points)!
            let tolerance = noise == 0 ? 1e-6 : 0.15
            #expect(close(fit.latency, truth.latency, relative: tolerance, floor: 0))
            #expect(close(fit.secondsPerByte, truth.secondsPerByte, relative: tolerance, floor: 0))
            #expect(close(fit.secondsPerParameter, truth.secondsPerParameter, relative: tolerance, floor: 0))
            // A network's fit borrows γ and fits only α and β.
            let tcp = points.filter { $0.ranks == 2 }.map {
                ExchangeModel.Timing(transport: "tcp", ranks: 2, parameters: $0.parameters,
                                     seconds: ExchangeModel(latency: 30e-6, secondsPerByte: 1 / 1e9, secondsPerParameter: truth.secondsPerParameter)
                                        .seconds(ranks: 2, parameters: $0.parameters))
            }
            let net = ExchangeModel.fit(tcp, local: truth.secondsPerParameter)!
            #expect(close(net.latency, 30e-6, relative: 1e-6, floor: 0) && close(net.bandwidth, 1e9, relative: 1e-6, floor: 0))
        }
        // A coefficient the data would make negative is dropped: timings that fall with size give β = 0.
        let odd = [ExchangeModel.Timing(transport: "shm", ranks: 2, parameters: 10, seconds: 2e-5),
                   ExchangeModel.Timing(transport: "shm", ranks: 2, parameters: 1000, seconds: 1e-5)]
        #expect(ExchangeModel.fit(odd, local: 0).map { $0.secondsPerByte == 0 && $0.latency > 0 } == true)
    }

    @Test("a network is a bandwidth and a latency in either order; anything else is refused")
    func network() {
        func same(_ a: Network?, _ latency: Double, _ rate: Double) -> Bool {
            guard let a else { return false }
            return close(a.latency, latency, relative: 1e-12, floor: 0) && close(a.bytesPerSecond, rate, relative: 1e-12, floor: 0)
        }
        #expect(same(Network("100Gb/s,2us"), 2e-6, 12.5e9))
        #expect(same(Network("500ns, 10Gb/s"), 5e-7, 1.25e9))
        #expect(Network("100Gb/s") == nil && Network("fast,2us") == nil && Network("100Gb/s,-2us") == nil)
    }

    @Test("projected rows: compute c·B/n, the optimizer's slice o·p/n, the exchange from the model, steps from the critical-batch fit")
    func projection() {
        let measured = ScalingProjection.Measured(ranks: 2, globalBatch: 128, parameters: 100_000, compute: 0.64e-3, exchange: 0.2e-3,
                                                  optimizer: 0.05e-3, sharded: true, hosts: 1)
        // 0.64 ms for 64 samples: 10 µs per sample; 0.05 ms for 50,000 parameters: 1 ns per parameter.
        let model = ExchangeModel(latency: 2e-6, secondsPerByte: 1 / 12.5e9, secondsPerParameter: 0.5e-9)
        let fit = CriticalBatchFit(minimumSteps: 1000, minimumExamples: 512_000)  // B_crit 512
        let p = ScalingProjection(measured: measured, model: model, fit: fit)
        let strong = p.rows(ranks: [8, 16])
        // 8 ranks: 2·7 + 3 messages, 2·4·p·7/8 bytes, γ·p.
        let latency: Double = 2e-6 * 17, bytes: Double = 700_000 / 12.5e9, local: Double = 0.5e-9 * 100_000
        let exchange8 = latency + bytes + local
        #expect(close(strong[0].compute, 10e-6 * 16, relative: 1e-9) && close(strong[0].optimizer, 1e-9 * 12_500, relative: 1e-9))
        #expect(close(strong[0].exchange, exchange8, relative: 1e-9))
        #expect(strong.allSatisfy { $0.stepsToTarget == 1000 + 512_000 / 128.0 })
        let weak = p.rows(ranks: [8, 16, 32, 64, 128], perRank: 64)
        #expect(weak.map(\.globalBatch) == [512, 1024, 2048, 4096, 8192])
        #expect(close(weak[1].stepsToTarget!, 1500, relative: 1e-12))
        let text = p.limits(weak, perRank: 64)!
        #expect(text.contains("reaches it at 8.0 ranks"), "\(text)")
    }

    @Test("a scaling report reads the phase seconds of this build's summaries and of earlier ones (allreduce_seconds, optimizer_seconds)")
    func phaseKeys() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("phase-keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let common = #""ranks": 1, "global_batch": 64, "steps": 10, "samples": 640, "samples_per_second": 100.0, "train_seconds": 6.4, "compute_seconds": 4.0, "final_hash": "ab""#
        for (folder, keys) in [("np-1", #""exchange_seconds": 2.0, "update_seconds": 0.5"#),
                               ("np-2", #""allreduce_seconds": 3.0, "optimizer_seconds": 0.25"#)] {
            let run = dir.appendingPathComponent(folder)
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            let ranks = folder == "np-1" ? common : common.replacingOccurrences(of: #""ranks": 1"#, with: #""ranks": 2"#)
            try Data("{\(ranks), \(keys)}".utf8).write(to: run.appendingPathComponent("summary.json"))
        }
        let points = try ScalingReport.read(dir.path)
        #expect(points.map(\.exchangeSeconds) == [0.2, 0.3] && points.map(\.updateSeconds) == [0.05, 0.025])
    }
}
