// A model's parameters as named tensors in another framework's layout, for files other tools load.

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

extension Model {
    /// The parameters as one tensor named "parameters" (models without a framework counterpart).
    public func exportTensors(_ parameters: [Float]) -> [NamedTensor] {
        [NamedTensor(name: "parameters", shape: [parameters.count], values: parameters)]
    }
}
