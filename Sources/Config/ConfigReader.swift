// Reads a YAML config plus `--set key=value` overrides into dotted keys, hands out typed values with precise
// errors, and reports every key nobody asked for as unknown.
import Yams

/// A flattened view of a YAML mapping: `optimizer.lr` → its node, with the origin of every value.
public struct ConfigReader {
    struct Entry {
        var node: Node
        var source: String
    }

    private var entries: [String: Entry] = [:]
    private var consumed: Set<String> = []
    /// Where values come from when no override applies ("configs/default.yaml").
    public let fileName: String

    /// Parses `text` (the content of `fileName`).
    public init(yaml text: String, fileName: String) throws {
        self.fileName = fileName
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(source: fileName, key: "(document)", expected: "valid YAML",
                              found: "a syntax error: \(Self.oneLine(error))")
        }
        guard let root else { return }  // an empty file: all defaults
        guard case .mapping = root else {
            throw ConfigError(source: fileName, key: "(document)", expected: "a mapping of keys to values",
                              found: Self.describe(root))
        }
        try flatten(root, prefix: "", source: fileName)
    }

    /// Applies one `key=value` override; the value is parsed as YAML (so `0.1`, `true`, `[64, 64]` work).
    public mutating func override(_ assignment: String) throws {
        guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
            throw ConfigError(source: "--set", key: assignment, expected: "key=value", found: "'\(assignment)'")
        }
        let key = String(assignment[..<eq]).trimmingCharacters(in: .whitespaces)
        let text = String(assignment[assignment.index(after: eq)...])
        let node: Node
        do {
            node = try Yams.compose(yaml: text) ?? Node("", Tag(.str))
        } catch {
            throw ConfigError(source: "--set", key: key, expected: "a YAML value", found: "'\(text)'")
        }
        try checkIndices(key)
        // An override replaces a whole subtree, a list of blocks included, and a scalar by a list or a block.
        for existing in entries.keys where existing == key || existing.hasPrefix(key + ".") || existing.hasPrefix(key + "[") {
            entries[existing] = nil
        }
        try store(node, at: key, source: "--set")
    }

    /// Refuses an override that names a block past the end of its list (`optimizers[20].lr` where the list has 9
    /// blocks); the next index adds a block.
    private func checkIndices(_ key: String) throws {
        var rest = Substring(key)
        while let open = rest.firstIndex(of: "["), let close = rest[open...].firstIndex(of: "]"),
              let index = Int(rest[rest.index(after: open)..<close]) {
            let list = String(key[..<open])
            let count = blockCount(of: list)
            guard index <= count else {
                throw ConfigError(source: "--set", key: key,
                                  expected: count == 0 ? "index 0 (\(list) has no blocks; [0] starts it)"
                                      : "an index in 0...\(count - 1) (\(list) has \(count) block\(count == 1 ? "" : "s"); [\(count)] adds one)",
                                  found: "index \(index), past the end of the list")
            }
            rest = rest[rest.index(after: close)...]
        }
    }

    /// How many blocks the list `key` holds (`key[0].…` up to the highest index given).
    private func blockCount(of key: String) -> Int {
        var count = 0
        for k in entries.keys where k.hasPrefix(key + "[") {
            let rest = k.dropFirst(key.count + 1)
            if let close = rest.firstIndex(of: "]"), let index = Int(rest[..<close]), index >= 0 { count = max(count, index + 1) }
        }
        return count
    }

    private mutating func flatten(_ node: Node, prefix: String, source: String) throws {
        guard case .mapping(let mapping) = node else { return }
        for (k, v) in mapping {
            guard let name = k.string, !name.isEmpty else {
                throw ConfigError(source: source, key: prefix + "(key)", expected: "a text key", found: Self.describe(k))
            }
            try store(v, at: prefix + name, source: source)
        }
    }

    /// Stores `node` under `key`: a mapping as its dotted keys, a list of blocks (`optimizers: [{name: sgd}, ...]`)
    /// as `optimizers[0].name`, ..., anything else as one value.
    private mutating func store(_ node: Node, at key: String, source: String) throws {
        if case .mapping = node {
            try flatten(node, prefix: key + ".", source: source)
        } else if case .sequence(let items) = node, !items.isEmpty,
                  items.allSatisfy({ if case .mapping = $0 { return true } else { return false } }) {
            for (k, item) in items.enumerated() { try flatten(item, prefix: key + "[\(k)].", source: source) }
        } else {
            entries[key] = Entry(node: node, source: source)
        }
    }

    /// Every key with its value as text (lists as `[a, b]`), for comparing two configs key by key.
    public var values: [String: String] {
        entries.mapValues { Self.text($0.node) }
    }

    static func text(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return s.string
        case .sequence(let s): return "[" + s.map(text).joined(separator: ", ") + "]"
        case .mapping(let m): return "{" + m.map { "\(text($0.key)): \(text($0.value))" }.joined(separator: ", ") + "}"
        case .alias: return "*alias"
        }
    }

    // MARK: typed access

    private mutating func entry(_ key: String) -> Entry? {
        consumed.insert(key)
        if let e = entries[key], case .scalar(let s) = e.node, s.tag.description == Tag.Name.null.rawValue {
            return nil  // `key:` with no value or `~` means "use the default"
        }
        return entries[key]
    }

    private func error(_ key: String, _ e: Entry, expected: String) -> ConfigError {
        ConfigError(source: e.source, key: key, expected: expected, found: Self.describe(e.node))
    }

    public mutating func integer(_ key: String, default value: Int, range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let e = entry(key) else { return value }
        let expected = Self.rangeText("an integer", range)
        guard case .scalar(let s) = e.node, let v = Int(s.string.replacingOccurrences(of: "_", with: "")) else {
            throw error(key, e, expected: expected)
        }
        guard range.contains(v) else { throw error(key, e, expected: expected) }
        return v
    }

    public mutating func number(_ key: String, default value: Double, expected: String, _ valid: (Double) -> Bool) throws -> Double {
        guard let e = entry(key) else { return value }
        guard case .scalar(let s) = e.node, let v = Double(s.string.replacingOccurrences(of: "_", with: "")), v.isFinite else {
            throw error(key, e, expected: expected)
        }
        guard valid(v) else { throw error(key, e, expected: expected) }
        return v
    }

    public mutating func boolean(_ key: String, default value: Bool) throws -> Bool {
        guard let e = entry(key) else { return value }
        guard case .scalar(let s) = e.node else { throw error(key, e, expected: "true or false") }
        switch s.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(key, e, expected: "true or false")
        }
    }

    public mutating func string(_ key: String, default value: String, allowed: [String]? = nil) throws -> String {
        guard let e = entry(key) else { return value }
        let expected = allowed.map { "one of " + $0.joined(separator: ", ") } ?? "a text value"
        guard case .scalar(let s) = e.node, !s.string.isEmpty else { throw error(key, e, expected: expected) }
        if let allowed, !allowed.contains(s.string) { throw error(key, e, expected: expected) }
        return s.string
    }

    public mutating func integerList(_ key: String, default value: [Int], element range: ClosedRange<Int>) throws -> [Int] {
        guard let e = entry(key) else { return value }
        let expected = "a list of integers in \(range.lowerBound)...\(range.upperBound), like [100, 100]"
        guard case .sequence(let seq) = e.node else { throw error(key, e, expected: expected) }
        return try seq.enumerated().map { k, item in
            guard case .scalar(let s) = item, let v = Int(s.string), range.contains(v) else {
                throw itemError(key, k, e, item, expected: Self.rangeText("an integer", range) + ", as every item of \(key)")
            }
            return v
        }
    }

    /// The error for item `k` of the list `key`, named as `key[k]`.
    private func itemError(_ key: String, _ k: Int, _ e: Entry, _ item: Node, expected: String) -> ConfigError {
        ConfigError(source: e.source, key: "\(key)[\(k)]", expected: expected, found: Self.describe(item))
    }

    /// A count `n` (taken as `first, first + 1, …`) or a list of distinct integers; nil when the key is not given.
    public mutating func countOrList(_ key: String, first: Int, expected: String, element range: ClosedRange<Int>) throws -> [Int]? {
        guard let e = entry(key) else { return nil }
        switch e.node {
        case .scalar(let s):
            guard let n = Int(s.string), (1...10_000).contains(n), first <= range.upperBound - n else {
                throw error(key, e, expected: expected)
            }
            return Array(first..<(first + n))
        case .sequence(let seq):
            let values = seq.map { item -> Int? in
                guard case .scalar(let s) = item, let v = Int(s.string), range.contains(v) else { return nil }
                return v
            }
            if let k = values.firstIndex(where: { $0 == nil }) {
                throw itemError(key, k, e, seq[k], expected: Self.rangeText("an integer", range) + ", as every item of \(key)")
            }
            let list = values.compactMap { $0 }
            guard !list.isEmpty, list.count == values.count, Set(list).count == list.count else {
                throw error(key, e, expected: expected)
            }
            return list
        default:
            throw error(key, e, expected: expected)
        }
    }

    /// A list of scalars as text (`[32, 128, full]`), or nil when the key is not given.
    public mutating func wordList(_ key: String, expected: String) throws -> [String]? {
        guard let e = entry(key) else { return nil }
        guard case .sequence(let seq) = e.node, !seq.isEmpty else { throw error(key, e, expected: expected) }
        return try seq.map { item in
            guard case .scalar(let s) = item, !s.string.isEmpty else { throw error(key, e, expected: expected) }
            return s.string
        }
    }

    /// A list of exactly `count` numbers, each passing `valid`.
    public mutating func numberList(_ key: String, count: Int, default value: [Double], expected: String,
                                    _ valid: (Double) -> Bool) throws -> [Double] {
        guard let e = entry(key) else { return value }
        guard case .sequence(let seq) = e.node else { throw error(key, e, expected: expected) }
        let numbers: [Double?] = seq.map { item in
            guard case .scalar(let s) = item, let v = Double(s.string), v.isFinite else { return nil }
            return v
        }
        guard numbers.count == count, numbers.allSatisfy({ $0.map(valid) == true }) else {
            let shown = seq.map { item -> String in
                if case .scalar(let s) = item { return s.string }
                return Self.describe(item)
            }
            throw ConfigError(source: e.source, key: key, expected: expected, found: "[\(shown.joined(separator: ", "))]")
        }
        return numbers.map { $0! }
    }

    /// The number of blocks in the list `key` (read as `key[0].…`, `key[1].…`), or nil when it is not given.
    /// A value that is not a list of mappings fails with `expected`.
    public mutating func blockCount(_ key: String, expected: String) throws -> Int? {
        if let e = entry(key) { throw error(key, e, expected: expected) }
        let count = blockCount(of: key)
        return count == 0 ? nil : count
    }

    /// The given keys that start with `prefix`, sorted (reading none of them).
    public func keys(under prefix: String) -> [String] {
        entries.keys.filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// Where every given key's value comes from (the file name or "--set").
    public var sources: [String: String] { entries.mapValues(\.source) }

    /// Where `key`'s value comes from (the file name or "--set"), or nil when it is not given. Does not count
    /// as reading the key.
    public func source(of key: String) -> String? {
        entries[key]?.source
    }

    /// Fails on the first given key under `prefix` that nobody read but that `owners` lists, naming who reads it
    /// ("optimizer.rho: expected a key that adam reads (...), found a key of adadelta").
    public func rejectKeys(_ owners: [String: [String]], prefix: String, expected: String) throws {
        for key in entries.keys.sorted() where key.hasPrefix(prefix) && !consumed.contains(key) {
            let short = String(key.dropFirst(prefix.count))
            if let who = owners[short] {
                throw ConfigError(source: entries[key]!.source, key: key, expected: expected,
                                  found: "a key of " + who.joined(separator: ", "))
            }
        }
    }

    /// An integer, or one of the given words (e.g. `batch: full`).
    public mutating func integerOrWord(_ key: String, default value: String, words: [String], range: ClosedRange<Int>) throws -> String {
        guard let e = entry(key) else { return value }
        let expected = Self.rangeText("an integer", range) + " or " + words.joined(separator: " or ")
        guard case .scalar(let s) = e.node else { throw error(key, e, expected: expected) }
        if words.contains(s.string) { return s.string }
        guard let v = Int(s.string), range.contains(v) else { throw error(key, e, expected: expected) }
        return String(v)
    }

    /// Fails on the first key that no accessor asked for, suggesting the closest known key.
    public func rejectUnknownKeys() throws {
        for key in entries.keys.sorted() where !consumed.contains(key) {
            let e = entries[key]!
            var expected = "a known key"
            // Closest by edit distance; ties go to the longer shared prefix, then alphabetical order, so the
            // suggestion never depends on set order.
            let ranked = consumed.map { k in (distance: editDistance(k, key), prefix: -zip(k, key).prefix { $0 == $1 }.count, key: k) }
            if let near = ranked.min(by: { ($0.distance, $0.prefix, $0.key) < ($1.distance, $1.prefix, $1.key) }),
               near.distance <= max(2, key.count / 3) {
                expected += " (did you mean '\(near.key)'?)"
            }
            throw ConfigError(source: e.source, key: key, expected: expected, found: "an unknown key")
        }
    }

    // MARK: helpers

    static func rangeText(_ what: String, _ range: ClosedRange<Int>) -> String {
        switch (range.lowerBound, range.upperBound) {
        case (Int.min, Int.max): return what
        case (let lo, Int.max): return "\(what) ≥ \(lo)"
        case (let lo, let hi): return "\(what) in \(lo)...\(hi)"
        }
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return s.string.isEmpty ? "an empty value" : "'\(s.string)'"
        case .sequence(let s): return "a list of \(s.count) items"
        case .mapping: return "a mapping"
        case .alias: return "an alias"
        }
    }

    static func oneLine(_ error: Error) -> String {
        "\(error)".split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let saved = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = saved
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}
