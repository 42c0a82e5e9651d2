// Comma-separated option values ("100,100,100", "0.9,0.99"): read in one place, so that every subcommand's error
// names the option, what it expects and what it found in the same words.
import ArgumentParser

enum OptionList {
    /// `text` as positive integers ("w1,w2,…"), or an error that names `option`; `count` fixes how many there must be.
    static func positiveIntegers(_ text: String, _ option: String, count: Int? = nil) throws -> [Int] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }), count.map({ $0 == values.count }) ?? true else {
            let expected = count.map { "\($0) positive integers" } ?? "positive integers"
            throw ValidationError("\(option): expected \(expected) separated by commas, found '\(text)'")
        }
        return values.map { $0! }
    }

    /// `text` as numbers in [0, 1) ("b1,b2,…"), or an error that names `option`.
    static func fractions(_ text: String, _ option: String) throws -> [Double] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0.map { $0 >= 0 && $0 < 1 } ?? false }) else {
            throw ValidationError("\(option): expected numbers in [0, 1) separated by commas, found '\(text)'")
        }
        return values.map { $0! }
    }
}
