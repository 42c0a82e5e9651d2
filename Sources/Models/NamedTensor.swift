// A model's parameters as named tensors in another framework's layout, for files other tools load and files
// descent starts from: one layout per model says where each tensor element lives in the flat buffer.

/// One tensor: its name, shape, and values in row-major order.
public struct NamedTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
        (self.name, self.shape, self.values) = (name, shape, values)
    }
}

/// Where one exported tensor's elements live in the flat parameter buffer: element k is `parameters[indices[k]]`.
public struct TensorLayout: Sendable {
    public var name: String
    public var shape: [Int]
    public var indices: [Int]

    public init(name: String, shape: [Int], indices: [Int]) {
        precondition(shape.reduce(1, *) == indices.count)
        (self.name, self.shape, self.indices) = (name, shape, indices)
    }
}

extension Model {
    /// The parameters as one tensor named "parameters" (models without a framework counterpart).
    public var tensorLayout: [TensorLayout] {
        [TensorLayout(name: "parameters", shape: [parameterCount], indices: Array(0..<parameterCount))]
    }

    /// The parameters as the model's tensors.
    public func exportTensors(_ parameters: [Float]) -> [NamedTensor] {
        precondition(parameters.count == parameterCount)
        return tensorLayout.map { t in NamedTensor(name: t.name, shape: t.shape, values: t.indices.map { parameters[$0] }) }
    }

    /// The flat parameters from tensors of the model's names and shapes; the mismatch, named, otherwise.
    public func importTensors(_ tensors: [String: NamedTensor]) -> Result<[Float], TensorMismatch> {
        let layout = tensorLayout
        var parameters = [Float](repeating: 0, count: parameterCount)
        for t in layout {
            guard let given = tensors[t.name] else { return .failure(.missing(t.name, shape: t.shape)) }
            guard given.shape == t.shape else { return .failure(.shape(t.name, expected: t.shape, found: given.shape)) }
            for (k, i) in t.indices.enumerated() { parameters[i] = given.values[k] }
        }
        let extra = Set(tensors.keys).subtracting(layout.map(\.name))
        if let name = extra.sorted().first { return .failure(.unexpected(name)) }
        return .success(parameters)
    }
}

/// How a set of tensors fails to fit a model.
public enum TensorMismatch: Error, Equatable, CustomStringConvertible, Sendable {
    case missing(String, shape: [Int])
    case shape(String, expected: [Int], found: [Int])
    case unexpected(String)

    /// The tensor concerned, what the model expects of it and what was found.
    public var parts: (field: String, expected: String, found: String) {
        func text(_ s: [Int]) -> String { "(" + s.map(String.init).joined(separator: ", ") + ")" }
        switch self {
        case let .missing(name, shape): return ("tensor \(name)", "one of shape \(text(shape))", "none")
        case let .shape(name, expected, found): return ("tensor \(name)", "shape \(text(expected))", "\(text(found))")
        case let .unexpected(name): return ("tensor \(name)", "only the model's tensors", "one the model does not have")
        }
    }

    public var description: String { "\(parts.field): expected \(parts.expected), found \(parts.found)" }
}
