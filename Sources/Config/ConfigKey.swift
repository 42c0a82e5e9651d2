// A config key stated once: its dotted name, how it is read (with its default taken from the config's own
// initial value), how the resolved YAML writes it, and what it means for a resumed run. Reading, the resolved
// YAML and the list of keys a resume may change are all derived from one table per config.
import Numerics

/// What changing a key means for a run that continues from a checkpoint.
public enum KeyRole: Sendable {
    /// It changes what is computed: a resume with another value is refused.
    case trajectory
    /// It only changes output, logging, measuring, checkpoints or guards: a resume may change it.
    case free
    /// The run's length: it changes the trajectory only when the schedule depends on it.
    case length
}

/// One key of a config `C` (or a block of keys under one prefix, like `optimizer.`).
public struct ConfigKey<C>: Sendable {
    /// The dotted name (`training.batch`), or the block's prefix without its dot (`optimizer`).
    public let name: String
    public let role: KeyRole
    /// Reads the key into the config; the config's current value is the default.
    var read: @Sendable (inout C, inout ConfigReader) throws -> Void
    /// The resolved YAML of the key: one `leaf: value` line, or a block's lines (relative to its section).
    let yaml: @Sendable (C) -> [String]
    let isBlock: Bool
    /// Whether the key means anything for this config (a synthetic data key does not with Fashion-MNIST). One that
    /// does not is still read and checked, keeps its default and is left out of the written YAML, but not of the
    /// complete form that fingerprints the config.
    var applies: @Sendable (C) -> Bool = { _ in true }

    /// A single key whose YAML value is `value(config)`, written only `when` the config uses it.
    init(_ name: String, _ role: KeyRole = .trajectory, read: @escaping @Sendable (inout C, inout ConfigReader) throws -> Void,
         value: @escaping @Sendable (C) -> String, when used: @escaping @Sendable (C) -> Bool = { _ in true }) {
        self.name = name
        self.role = role
        self.read = read
        let leaf = String(name.split(separator: ".").last!)
        yaml = { used($0) ? ["\(leaf): \(value($0))"] : [] }
        isBlock = false
    }

    /// A key inside a section whose value is a YAML list of several lines (`lines(config)`, relative to the key).
    init(_ name: String, _ role: KeyRole = .trajectory, read: @escaping @Sendable (inout C, inout ConfigReader) throws -> Void,
         lines: @escaping @Sendable (C) -> [String], when used: @escaping @Sendable (C) -> Bool = { _ in true }) {
        self.name = name
        self.role = role
        self.read = read
        let leaf = String(name.split(separator: ".").last!)
        yaml = { used($0) ? ["\(leaf):"] + lines($0).map { "  " + $0 } : [] }
        isBlock = false
    }

    /// A block of keys under `name.` whose lines `lines(config)` gives.
    init(block name: String, _ role: KeyRole = .trajectory, read: @escaping @Sendable (inout C, inout ConfigReader) throws -> Void,
         lines: @escaping @Sendable (C) -> [String]) {
        self.name = name
        self.role = role
        self.read = read
        yaml = lines
        isBlock = true
    }

    /// This key, meaningful only where `applies` holds: elsewhere a given value is checked, then dropped.
    func applying(when applies: @escaping @Sendable (C) -> Bool) -> Self {
        var key = self
        let read = self.read
        key.applies = applies
        key.read = { c, r in
            let before = c
            try read(&c, &r)
            if !applies(c) { c = before }
        }
        return key
    }

    /// The top-level section the key belongs to (nil for a top-level key like `name`).
    var section: String? { isBlock ? name : (name.contains(".") ? String(name.split(separator: ".")[0]) : nil) }

    /// Whether the dotted key `key` (of a resolved config) is this one or lies in this block.
    func covers(_ key: String) -> Bool { key == name || key.hasPrefix(name + ".") }
}

extension Array {
    /// Reads every key of the table into `config`, in table order.
    func read<C>(into config: inout C, from reader: inout ConfigReader) throws where Element == ConfigKey<C> {
        for key in self { try key.read(&config, &reader) }
    }

    /// The resolved YAML of `config`: every key of the table in order, grouped into its sections; with `complete`,
    /// keys that do not apply to it too (at their defaults).
    func resolvedYAML<C>(_ config: C, complete: Bool = false) -> String where Element == ConfigKey<C> {
        var lines: [String] = []
        var open: String?
        for key in self where complete || key.applies(config) {
            // A section whose keys all stay out (their `when` is false) is left out too.
            let written = key.yaml(config)
            guard !written.isEmpty else { continue }
            if key.section != open, let section = key.section { lines.append("\(section):") }
            open = key.section
            lines += written.map { key.section == nil ? $0 : "  " + $0 }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The role of the resolved key `key` (`.trajectory` for a key no entry covers).
    func role<C>(of key: String) -> KeyRole where Element == ConfigKey<C> {
        first { $0.covers(key) }?.role ?? .trajectory
    }
}

// MARK: typed keys: the name and the field once

extension ConfigKey {
    /// An integer in `range`.
    static func integer(_ name: String, _ path: WritableKeyPath<C, Int> & Sendable,
                        _ range: ClosedRange<Int>, role: KeyRole = .trajectory, when used: @escaping @Sendable (C) -> Bool = { _ in true }) -> Self {
        Self(name, role, read: { c, r in c[keyPath: path] = try r.integer(name, default: c[keyPath: path], range: range) },
             value: { "\($0[keyPath: path])" }, when: used)
    }

    /// A number that `valid` accepts (`expected` says which).
    static func number(_ name: String, _ path: WritableKeyPath<C, Double> & Sendable,
                       _ expected: String, _ valid: @escaping @Sendable (Double) -> Bool,
                       role: KeyRole = .trajectory, when used: @escaping @Sendable (C) -> Bool = { _ in true }) -> Self {
        Self(name, role, read: { c, r in c[keyPath: path] = try r.number(name, default: c[keyPath: path], expected: expected, valid) },
             value: { "\($0[keyPath: path])" }, when: used)
    }

    /// true or false.
    static func flag(_ name: String, _ path: WritableKeyPath<C, Bool> & Sendable,
                     role: KeyRole = .trajectory, when used: @escaping @Sendable (C) -> Bool = { _ in true }) -> Self {
        Self(name, role, read: { c, r in c[keyPath: path] = try r.boolean(name, default: c[keyPath: path]) },
             value: { "\($0[keyPath: path])" }, when: used)
    }

    /// A string, written quoted.
    static func text(_ name: String, _ path: WritableKeyPath<C, String> & Sendable,
                     role: KeyRole = .trajectory, when used: @escaping @Sendable (C) -> Bool = { _ in true }) -> Self {
        Self(name, role, read: { c, r in c[keyPath: path] = try r.string(name, default: c[keyPath: path]) },
             value: { yamlQuoted($0[keyPath: path]) }, when: used)
    }

    /// One of an enumeration's names, with an optional comment after it in the resolved YAML.
    static func choice<E: RawRepresentable & CaseIterable & Sendable>(
        _ name: String, _ path: WritableKeyPath<C, E> & Sendable,
        comment: (@Sendable (E) -> String)? = nil, role: KeyRole = .trajectory, when used: @escaping @Sendable (C) -> Bool = { _ in true }
    ) -> Self where E.RawValue == String {
        Self(name, role, read: { c, r in
            let word = try r.string(name, default: c[keyPath: path].rawValue, allowed: E.allCases.map(\.rawValue))
            // `allowed` admits only the enumeration's names.
            if let value = E(rawValue: word) { c[keyPath: path] = value }
        }, value: { c in c[keyPath: path].rawValue + (comment.map { "    # " + $0(c[keyPath: path]) } ?? "") }, when: used)
    }
}
