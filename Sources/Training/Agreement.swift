// Agreement before work: every rank must run the same build on the same config and the same data, or no rank
// takes a step.
import Collectives
import Config
import Foundation
import Numerics

/// A disagreement between ranks, found before step 0.
public struct DisagreementError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

public enum Agreement {
    /// Every rank's `value` of `item` must equal rank 0's. The lowest rank that differs reports both values
    /// and every rank throws.
    public static func check(_ item: String, _ value: String, on communicator: Communicator) throws {
        let reference = try communicator.broadcast(text: value, root: 0)
        try communicator.collectively {
            guard value == reference else {
                throw DisagreementError(description: "rank \(communicator.rank) disagrees with rank 0 on \(item) before step 0: "
                                        + "rank 0 has \(reference), rank \(communicator.rank) has \(value); no rank started")
            }
        }
    }

    /// Every rank's resolved config must equal rank 0's; a difference is reported key by key.
    public static func check(_ config: RunConfig, on communicator: Communicator) throws {
        let reference = try communicator.broadcast(text: config.resolvedYAML, root: 0)
        try communicator.collectively {
            guard config.resolvedYAML != reference else { return }
            let theirs = try RunConfig.load(yaml: reference, fileName: "rank 0's config")
            let keys = config.differences(from: theirs).map { "\($0.key) (rank 0: \($0.other), rank \(communicator.rank): \($0.this))" }
            throw DisagreementError(description: "rank \(communicator.rank)'s config differs from rank 0's before step 0: "
                                    + keys.joined(separator: ", ") + "; every rank must read the same config file and --set options; no rank started")
        }
    }

    /// This executable: its size and fingerprint (a different build on one node is found before any work).
    public static let buildIdentity: String = {
        guard let data = FileManager.default.contents(atPath: "/proc/self/exe") else { return "an unreadable executable" }
        return "executable \(hexDigest(data.withUnsafeBytes { fingerprint(bytes: $0) })) (\(data.count) bytes)"
    }()
}

/// One rank's matrix kernels, where it runs and on what CPU: compared before step 0 and kept in summary.json.
public struct RankKernels: Codable, Sendable, Equatable {
    public var rank: Int
    public var host: String
    public var choice: KernelChoice
    public var cpu: String
    public var extensions: [String]

    public init(_ choice: KernelChoice, rank: Int) {
        self.rank = rank
        host = hostName()
        self.choice = choice
        cpu = CPUDescription.current.description
        extensions = CPUDescription.current.extensions
    }

    var json: String { String(decoding: try! JSONEncoder().encode(self), as: UTF8.self) }

    init(json: String) throws { self = try JSONDecoder().decode(Self.self, from: Data(json.utf8)) }

    /// The entry of `summary.json`'s `kernels` list.
    var summary: [String: Any] {
        ["rank": rank, "host": host, "mode": choice.mode.rawValue, "library": choice.library, "kernels": choice.kernels,
         "reason": choice.reason, "cpu": cpu, "extensions": extensions.joined(separator: " ")]
    }

    /// The message for ranks whose products would differ (nil when every rank's kernels give the same bits): each
    /// kind of kernels with the ranks and hosts that have it.
    public static func conflict(_ all: [RankKernels]) -> String? {
        let kinds = Dictionary(grouping: all, by: \.choice.bits)
        guard kinds.count > 1 else { return nil }
        let groups = kinds.values.map { $0.sorted { $0.rank < $1.rank } }.sorted { $0[0].rank < $1[0].rank }
        let lines = groups.map { g in
            let hosts = Array(Set(g.map(\.host))).sorted().joined(separator: ", ")
            return "rank\(g.count == 1 ? "" : "s") " + g.map { String($0.rank) }.joined(separator: ", ")
                + " on \(hosts): \(g[0].choice.description), CPU \(g[0].cpu)"
        }
        return "the ranks would compute with different matrix kernels before step 0, and their products would differ in "
            + "the last bits: " + lines.joined(separator: "; ") + ". Use runtime.kernels: portable (the same bits on every "
            + "x86-64 CPU with AVX2 and FMA), or give every rank the same CPU kind and OPENBLAS_CORETYPE; no rank started"
    }
}
