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
