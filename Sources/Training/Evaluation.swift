// `descent eval`: a saved model on a data set: loss, accuracy and the confusion matrix, as CSV and SVG.
import Datasets
import Foundation
import Models
import Numerics
import Reports

public enum Evaluation {
    /// What evaluating a model on one split gives.
    public struct Result: Sendable {
        public var split: String
        public var samples: Int
        public var loss: Double
        public var accuracy: Double
        /// confusion[true class][predicted class] = samples.
        public var confusion: [[Int]]
        /// Each class as the CSV and the picture name it: its index, and its name where the data set has names
        /// ("0 T-shirt/top").
        public var classLabels: [String]
    }

    /// Class `k`'s label: the index, with the name beside it when `names` has one.
    static func classLabels(_ classes: Int, names: [String]?) -> [String] {
        (0..<classes).map { k in names.flatMap { k < $0.count ? "\(k) \($0[k])" : nil } ?? "\(k)" }
    }

    /// Evaluates `parameters` on `dataset` with the evaluator's model and workspace; `classNames` are the data set's
    /// names of its labels, where it has them.
    public static func run(_ evaluator: Evaluator, parameters: [Float], on dataset: Dataset, split: String,
                           classNames: [String]? = nil) throws -> Result {
        guard let classifier = evaluator.model as? Classifier else {
            throw AgreedFailure(description: "descent eval: expected a classifier (mlp, logreg or cnn), found \(evaluator.model.shapeText)")
        }
        let (loss, accuracy, confusion) = try evaluator.evaluate(dataset, parameters, confusionOf: classifier)
        return Result(split: split, samples: dataset.count, loss: loss, accuracy: accuracy, confusion: confusion,
                      classLabels: classLabels(dataset.classCount, names: classNames))
    }

    /// eval.csv, confusion.csv and confusion.svg in `directory`.
    public static func write(_ r: Result, to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try writeAtomically("split,samples,loss,accuracy\n\(r.split),\(r.samples),\(r.loss),\(r.accuracy)\n", to: directory + "/eval.csv")
        let header = "true\\predicted," + r.classLabels.map(csvField).joined(separator: ",")
        let rows = r.confusion.enumerated().map { "\(csvField(r.classLabels[$0]))," + $1.map(String.init).joined(separator: ",") }
        try writeAtomically(([header] + rows).joined(separator: "\n") + "\n", to: directory + "/confusion.csv")
        try writeAtomically(confusionSVG(r), to: directory + "/confusion.svg")
    }

    /// A heat map of the confusion matrix, each row shaded by its share of the true class.
    static func confusionSVG(_ r: Result) -> String {
        // Margins wide enough for the longest label: rows name the true class, columns (turned) the predicted one.
        let longest = Double(r.classLabels.map(\.count).max() ?? 1)
        let n = r.confusion.count, cell = max(18.0, min(48.0, 480.0 / Double(n)))
        let left = max(70.0, 40 + 6.2 * longest), top = max(76.0, 56 + 4.6 * longest)
        var svg = SVGWriter()
        svg.text("confusion matrix, \(r.split) split: accuracy \(fixed(r.accuracy, 4)), \(r.samples) samples", x: left, y: 24,
                 [("font-size", "14")])
        svg.text("predicted class", x: left + cell * Double(n) / 2, y: 48, [("font-size", "12"), ("text-anchor", "middle")])
        svg.text("true class", x: 18, y: top + cell * Double(n) / 2, [("font-size", "12"), ("text-anchor", "middle"),
                                                                         ("transform", "rotate(-90 18 \(svgNumber(top + cell * Double(n) / 2)))")])
        for (t, row) in r.confusion.enumerated() {
            let total = max(row.reduce(0, +), 1)
            svg.text(r.classLabels[t], x: left - 8, y: top + cell * (Double(t) + 0.6), [("font-size", "11"), ("text-anchor", "end")])
            for (p, count) in row.enumerated() {
                let share = Double(count) / Double(total)
                let shade = Int(255 - 200 * share)
                svg.element("rect", [("x", svgNumber(left + cell * Double(p))), ("y", svgNumber(top + cell * Double(t))),
                                     ("width", svgNumber(cell)), ("height", svgNumber(cell)),
                                     ("fill", "rgb(\(shade),\(shade),255)"), ("stroke", "#ffffff")])
                if n <= 20 {
                    svg.text("\(count)", x: left + cell * (Double(p) + 0.5), y: top + cell * (Double(t) + 0.62),
                             [("font-size", "9"), ("text-anchor", "middle")])
                }
            }
        }
        for p in 0..<n {
            let x = left + cell * (Double(p) + 0.5), y = top - 6
            let turned = r.classLabels[p].count > 3
            svg.text(r.classLabels[p], x: x, y: y, [("font-size", "11"), ("text-anchor", turned ? "start" : "middle")]
                     + (turned ? [("transform", "rotate(-50 \(svgNumber(x)) \(svgNumber(y)))")] : []))
        }
        return svg.document(width: left + cell * Double(n) + 20, height: top + cell * Double(n) + 20)
    }
}
