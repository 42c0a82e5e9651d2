// The one error type for unreadable or malformed input files: data files, and the run folders that the commands
// reading finished runs take. It names the file, the field, what was expected and what was found.

/// An input that cannot be used, with enough detail to fix it without a debugger.
public struct DataFileError: Error, Equatable, CustomStringConvertible, Sendable {
    public var file: String
    public var field: String
    public var expected: String
    public var found: String
    /// What the file is, as the message names it: "data file", "run folder", "file".
    public var kind: String

    public init(file: String, field: String, expected: String, found: String, kind: String = "data file") {
        (self.file, self.field, self.expected, self.found, self.kind) = (file, field, expected, found, kind)
    }

    public var description: String { "\(kind) \(file): \(field): expected \(expected), found \(found)" }
}
