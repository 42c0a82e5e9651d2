// `descent roofline`: the GEMM roofline of an MLP's training step, run under mpirun so that every core is busy.
import ArgumentParser
import Collectives
import Experiments
import Foundation
import MPICollectives
import Numerics
import Models

struct RooflineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roofline",
        abstract: "Time an MLP step's own sgemm calls on every rank at once: the samples/s no training step can beat.",
        discussion: "Run it with the ranks a training run uses (mpirun -np 2 descent roofline …). --rows is what one "
            + "rank computes at once: the chunk (training.chunk; 64 for batch 128, 1024 for full-batch Fashion-MNIST)."
    )

    @Option(help: ArgumentHelp("Hidden layer widths, comma-separated.", valueName: "w1,w2,…")) var hidden = "100,100,100,100"
    @Option(help: "Input features.") var inputs = 784
    @Option(help: "Classes (outputs).") var classes = 10
    @Option(help: "Rows per sgemm call: the samples one rank computes at once.") var rows = 64
    @Option(help: "Timed passes; the median is reported.") var repeats = 200

    @Flag(help: "Time the calls the step would make with weights stored (outputs, inputs) instead of (inputs, outputs).")
    var outputsFirst = false

    @Option(help: ArgumentHelp("A CNN's layers instead of an MLP (as model.layers, e.g. \"conv 32 5, relu, pool, dense 1024, relu\"); --rows is then its sub-batch, 32.", valueName: "layers"))
    var layers: String?

    @Option(help: ArgumentHelp("The CNN's image height and width.", valueName: "h,w")) var image = "28,28"
    @Option(help: "The matrix kernels to time: portable or native (as runtime.kernels).") var kernels = KernelMode.portable
    @Flag(help: "Also print each sgemm call's own median time.") var each = false

    func validate() throws {
        guard inputs > 0, classes > 0, rows > 0, repeats > 0 else {
            throw ValidationError("--inputs, --classes, --rows and --repeats must be positive")
        }
        _ = try shapes()
    }

    /// The products to time: the CNN's of --layers, or the MLP's.
    func shapes() throws -> [Roofline.Shape] {
        guard let layers else {
            let widths = try OptionList.positiveIntegers(hidden, "--hidden")
            return Roofline.shapes(sizes: [inputs] + widths + [classes], rows: rows, outputsFirst: outputsFirst)
        }
        let specs = layers.split(separator: ",").compactMap { CNN.LayerSpec($0.trimmingCharacters(in: .whitespaces)) }
        let hw = try OptionList.positiveIntegers(image, "--image", count: 2)
        guard specs.count == layers.split(separator: ",").count, let cnn = try? CNN(input: hw, classes: classes, specs: specs)
        else { throw ValidationError("--layers: expected layers like \"conv 32 5, relu, pool, dense 1024\", found '\(layers)'") }
        return Roofline.shapes(cnn: cnn, rows: rows)
    }

    func run() throws {
        let shapes = try shapes()
        try distributed { communicator, _ in try time(shapes, on: communicator) }
    }

    func time(_ shapes: [Roofline.Shape], on communicator: Communicator) throws {
        let choice = try communicator.collectively { try MatrixKernels.use(kernels) }
        MatrixKernels.threads = 1
        let seconds = try Roofline.seconds(shapes, repeats: repeats, on: communicator)
        if each {
            for s in shapes {
                let t = try Roofline.seconds([s], repeats: repeats, on: communicator)
                if communicator.rank == 0 {
                    print(String(format: "  %@%@ m %5d n %5d k %5d  %8.1f µs  %6.2f GFLOP/s", s.transA == .none ? "N" : "T",
                                 s.transB == .none ? "N" : "T", s.m, s.n, s.k, t * 1e6, Roofline.flops([s]) / t / 1e9))
                }
            }
        }
        if communicator.rank == 0 {
            let rate = Double(rows * communicator.size) / seconds
            print(String(format: "roofline: %d ranks × %d rows, %d sgemm calls, %.1f µs per pass (median, slowest rank), "
                         + "%.2f GFLOP/s per rank, %.0f samples/s", communicator.size, rows, shapes.count, seconds * 1e6,
                         Roofline.flops(shapes) / seconds / 1e9, rate))
            print("kernels: \(choice.description)")
        }
    }
}
