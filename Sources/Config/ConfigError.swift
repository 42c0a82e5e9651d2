// The error for configuration problems: names where the value came from, the key, what was expected and what
// was found.

/// A configuration value that cannot be used.
public struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The config file, or "--set" for a command-line override.
    public var source: String
    public var key: String
    public var expected: String
    public var found: String

    public init(source: String, key: String, expected: String, found: String) {
        (self.source, self.key, self.expected, self.found) = (source, key, expected, found)
    }

    public var description: String { "\(source): \(key): expected \(expected), found \(found)" }

    /// The error for a `name` that cannot be a run folder (it would leave `output.dir`, or hide), or nil.
    static func invalidRunFolder(_ name: String, source: String) -> ConfigError? {
        guard name.contains("/") || name.hasPrefix(".") else { return nil }
        return ConfigError(source: source, key: "name", expected: "a plain folder name (no '/', not starting with '.')",
                           found: "'\(name)'")
    }
}
