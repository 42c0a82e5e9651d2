// `descent compare`: config messages, a batch-size comparison end to end under mpirun, and optimizer replicas
// that are bit-identical to the same optimizers trained alone.
import DescentTestSupport
import Foundation
import Reports
import Testing
@testable import Config
@testable import Experiments
@testable import Training

@Suite struct CompareConfigTests {
    func message(_ yaml: String) -> String {
        do {
            _ = try CompareConfig.load(yaml: yaml, fileName: "cmp.yaml")
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("batch variants take their batch, rate and epochs; optimizer variants their settings")
    func variants() throws {
        let b = try CompareConfig.load(yaml: "compare: {batches: [32, full], lr: [0.1, 0.5], epochs: [2, 20], target_loss: 0.4}\n",
                                       fileName: "cmp.yaml")
        #expect(b.mode == .batches && b.targetLoss == 0.4)
        #expect(b.variants.map(\.label) == ["batch 32 lr 0.1 2 epochs", "batch full lr 0.5 20 epochs"])
        #expect(b.variants.map(\.config.training.batch) == [.samples(32), .full])
        #expect(b.variants.map(\.config.optimizer.learningRate) == [0.1, 0.5])
        #expect(b.variants.map(\.config.training.epochs) == [2, 20])
        #expect(try CompareConfig.load(yaml: b.resolvedYAML, fileName: "again.yaml") == b)
        let o = try CompareConfig.load(yaml: "compare:\n  optimizers:\n    - {name: sgd, lr: 0.1}\n    - {name: adam}\n    - {name: adam, lr: 0.01, label: fast}\n",
                                       fileName: "cmp.yaml")
        #expect(o.mode == .optimizers && o.variants.map(\.label) == ["sgd", "adam lr 0.001", "fast"])
        #expect(o.variants.map(\.config.optimizer.kind) == [.sgd, .adam, .adam])
        #expect(try CompareConfig.load(yaml: o.resolvedYAML, fileName: "again.yaml") == o)
        let i = try CompareConfig.load(yaml: "compare:\n  inits: [zeros, he]\n", fileName: "cmp.yaml")
        #expect(i.mode == .inits && i.variants.map(\.label) == ["init zeros", "init he"])
        #expect(i.variants.map(\.config.model.initialisation) == [.zeros, .he])
        #expect(try CompareConfig.load(yaml: i.resolvedYAML, fileName: "again.yaml") == i)
    }

    @Test("bad compare blocks name the key, what was expected and what was found")
    func errors() {
        #expect(message("name: x\n") == "cmp.yaml: compare: expected a compare: block (as in configs/sgd-vs-gd.yaml) for descent compare, "
                + "found a config for descent train; run it with descent train --config cmp.yaml")
        #expect(message("compare: {batches: [32], optimizers: [{name: sgd}]}\n")
                == "cmp.yaml: compare: expected exactly one of compare.batches, compare.optimizers or compare.inits, found compare.batches and compare.optimizers")
        #expect(message("compare: {inits: [he, ones]}\n")
                == "cmp.yaml: compare.inits: expected distinct initialisations (he, xavier, zeros, truncated-normal), found 'ones'")
        #expect(message("compare: {inits: [he, he]}\n")
                == "cmp.yaml: compare.inits: expected distinct initialisations (he, xavier, zeros, truncated-normal), found 'he' twice")
        #expect(message("compare: {batches: [32, all]}\n")
                == "cmp.yaml: compare.batches: expected a list of global batch sizes (integers ≥ 1 or full), like [32, 128, 1024, full], found 'all'")
        #expect(message("compare: {batches: [32, 64], lr: [0.1]}\n")
                == "cmp.yaml: compare.lr: expected one learning rate per batch size (2 numbers > 0), or no compare.lr, found [0.1]")
        #expect(message("compare: {batches: [32, 32]}\n")
                == "cmp.yaml: compare.batches: expected variants that differ in batch, lr or epochs, found 'batch 32' twice")
        #expect(message("compare: {optimizers: [{name: adam, rho: 0.9}]}\n")
                == "cmp.yaml: compare.optimizers[0].rho: expected a key that adam reads (variant, lr, betas, eps, weight_decay, "
                + "amsgrad), found a key of adadelta")
        #expect(message("compare: {batches: [32], target_los: 1}\n")
                == "cmp.yaml: compare.target_los: expected a known key (did you mean 'compare.target_loss'?), found an unknown key")
    }

    @Test("the target loss is first reached by a step row's batch loss or an epoch row's training loss")
    func firstReach() {
        let rows = [MetricsRow(kind: .step, step: 5, epoch: 0.5, samples: 50, wallSeconds: 1, learningRate: 0.1, batchLoss: 0.9),
                    MetricsRow(kind: .epoch, step: 10, epoch: 1, samples: 100, wallSeconds: 2, learningRate: 0.1, batchLoss: 0.8,
                               trainLoss: 0.45),
                    MetricsRow(kind: .step, step: 15, epoch: 1.5, samples: 150, wallSeconds: 3, learningRate: 0.1, batchLoss: 0.4)]
        #expect(Comparison.firstReach(rows, target: 0.5)?.step == 10)
        #expect(Comparison.firstReach(rows, target: 0.42)?.step == 15)
        #expect(Comparison.firstReach(rows, target: 0.1) == nil)
    }
}

