// The one error type for unreadable or malformed data files: it names the file, the field, what was expected
// and what was found.

/// A data file that cannot be used, with enough detail to fix it without a debugger.
public struct DataFileError: Error, Equatable, CustomStringConvertible, Sendable {
    public var file: String
    public var field: String
    public var expected: String
    public var found: String

    public init(file: String, field: String, expected: String, found: String) {
        (self.file, self.field, self.expected, self.found) = (file, field, expected, found)
    }

    public var description: String { "data file \(file): \(field): expected \(expected), found \(found)" }
}
