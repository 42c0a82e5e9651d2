// The heartbeats between ranks (UDP on loopback here, ranks as threads): what a timed-out rank says of the others.
@testable import Collectives
import CollectivesTesting
import Foundation
import Numerics
import Testing
#if canImport(Glibc)
import Glibc
#endif

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

    /// Sends `text` to 127.0.0.1:`port` from a socket of its own.
    static func forge(_ text: String, to port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let bytes = Array(text.utf8)
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    @Test("forged datagrams — garbage, another job's token, the job's token from a port that is not the rank's — change nothing and are counted")
    func forged() throws {
        let views = try InProcessGroup.run(ranks: 2) { comm -> (PeerState?, Int)? in
            let heartbeat = try #require(Heartbeat(on: comm) {
                PeerState(rank: comm.rank, host: "host\(comm.rank)", step: 7, phase: "gradient exchange", operation: "", waiting: 0, heard: 0)
            })
            // Rank 0 hears rank 1 once; then rank 1 falls silent, so that a forgery, were it taken, would be what stays.
            for _ in 0..<200 where comm.rank == 0 && !heartbeat.others.contains(where: { $0.rank == 1 }) { Thread.sleep(forTimeInterval: 0.02) }
            _ = try comm.allAgree(true)
            guard comm.rank == 0 else { return nil }
            let lie = PeerState(rank: 1, host: "evil", step: 99, phase: "forged", operation: "allreduce", waiting: 9, heard: 0).encoded
            for _ in 0..<5 {
                Self.forge("garbage \u{1}\t\t", to: heartbeat.port)
                Self.forge("descent 0123456789abcdef\t" + lie, to: heartbeat.port)
                Self.forge("descent \(heartbeat.token)\t" + lie, to: heartbeat.port)
            }
            // Progress, not a clock: wait until the forgeries have all been counted (or give up after long).
            for _ in 0..<200 where heartbeat.dropped < 15 { Thread.sleep(forTimeInterval: 0.02) }
            return (heartbeat.others.first { $0.rank == 1 }, heartbeat.dropped)
        }
        let (peer, dropped) = try #require(views[0])
        #expect(peer?.host == "host1" && peer?.step == 7 && peer?.phase == "gradient exchange", "\(String(describing: peer))")
        #expect(dropped >= 15, "\(dropped) dropped")
    }
}
