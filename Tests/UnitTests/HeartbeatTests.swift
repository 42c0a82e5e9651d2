// The heartbeats between ranks (UDP on loopback here, ranks as threads): what a timed-out rank says of the others.
@testable import Collectives
import CollectivesTesting
import Foundation
import Numerics
import Testing

@Suite("Heartbeats and the watchdog's verdict")
struct HeartbeatTests {
    @Test("a peer waiting in the same collective is not blamed; one elsewhere is 'alive but has not come'; a silent one 'stopped answering'",
          arguments: ["same", "elsewhere", "silent"])
    func verdicts(case_: String) throws {
        // Rank 0 waits in the all-to-all; rank 1 too, or computes (no collective), or falls silent.
        do {
            let verdicts = try InProcessGroup.run(ranks: 2) { comm -> [String]? in
                let operation = comm.rank == 0 || case_ == "same" ? "all-to-all exchange" : ""
                var heartbeat: Heartbeat? = try #require(Heartbeat(on: comm) {
                    PeerState(rank: comm.rank, host: "host\(comm.rank)", step: 7, phase: "gradient exchange",
                              operation: operation, waiting: 0.5, heard: 0)
                })
                if comm.rank == 1 {
                    Thread.sleep(forTimeInterval: 0.6)  // heard at least twice
                    if case_ == "silent" { heartbeat = nil }  // its thread ends: nothing more is sent
                    Thread.sleep(forTimeInterval: 1.8)
                    return nil
                }
                Thread.sleep(forTimeInterval: 1.0 + (case_ == "silent" ? Heartbeat.silence + 0.4 : 0))
                return Watchdog.culprits(try #require(heartbeat), operation: "all-to-all exchange")
            }
            let verdict = try #require(verdicts[0], "case \(case_)")
            switch case_ {
            case "same":
                #expect(verdict.isEmpty, "\(verdict)")
            case "elsewhere":
                #expect(verdict == ["rank 1 on host1 is alive but has not come (its last collective: phase 'gradient exchange' at step 7)"])
            default:
                #expect(verdict.count == 1 && verdict[0].hasPrefix("rank 1 on host1 stopped answering (nothing heard for "), "\(verdict)")
                #expect(verdict.first?.hasSuffix(" s; last heard in phase 'gradient exchange' at step 7)") == true, "\(verdict)")
            }
        }
    }
}
