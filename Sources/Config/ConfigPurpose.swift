// Which subcommand a config file is written for, told by its own block: a config meant for another subcommand is
// refused with the one it belongs to, before any of its keys is read as something it is not.

/// The subcommands that read a config file, each with the block or key only its configs have.
public enum ConfigPurpose: String, CaseIterable, Sendable {
    case train, compare, study, path

    /// The top-level keys that mark a config of this kind (none for a plain training config).
    var markers: [String] {
        switch self {
        case .train: return []
        case .compare: return ["compare"]
        case .study: return ["study"]
        case .path: return ["optimizers", "function", "start", "plot"]
        }
    }

    /// The markers as an error names them: "a study: block", "the lab's keys (optimizers:, function:, …)".
    var markerText: String {
        self == .path ? "the lab's keys (\(markers.map { $0 + ":" }.joined(separator: ", ")))" : "a \(markers[0]): block"
    }

    /// A preset of this kind to start from.
    var example: String {
        switch self {
        case .train: return "configs/default.yaml"
        case .compare: return "configs/sgd-vs-gd.yaml"
        case .study: return "configs/study-smoke.yaml"
        case .path: return "configs/path-beale.yaml"
        }
    }

    /// The purpose of a config whose dotted keys are `keys`: the first kind whose marker it has, else training.
    static func of(_ keys: some Sequence<String>) -> ConfigPurpose {
        let top = Set(keys.map { String($0.prefix { $0 != "." && $0 != "[" }) })
        return allCases.first { !$0.markers.isEmpty && !top.isDisjoint(with: $0.markers) } ?? .train
    }
}

extension ConfigReader {
    /// `text` (the content of `fileName`) with its overrides applied, refused unless it is a config for `purpose`:
    /// the one start of every subcommand's config.
    public init(yaml text: String, fileName: String, overrides: [String], for purpose: ConfigPurpose) throws {
        self = try ConfigReader(yaml: text, fileName: fileName)
        for o in overrides { try override(o) }
        try require(purpose)
    }

    /// What this config (with its overrides) is written for.
    public var purpose: ConfigPurpose { .of(values.keys) }

    /// Refuses a config written for another subcommand than `purpose`, naming the one it belongs to.
    public func require(_ purpose: ConfigPurpose) throws {
        let actual = self.purpose
        guard actual != purpose else { return }
        let expected = purpose == .train ? "a config for descent train, without \(actual.markerText)"
            : "\(purpose.markerText) (as in \(purpose.example)) for descent \(purpose.rawValue)"
        throw ConfigError(source: fileName, key: (purpose == .train ? actual : purpose).markers[0], expected: expected,
                          found: "a config for descent \(actual.rawValue); run it with descent \(actual.rawValue) --config \(fileName)")
    }
}
