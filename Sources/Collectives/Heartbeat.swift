// Who is stuck: every rank tells the others, five times a second over UDP, where it is (step, phase, the
// collective it waits in). Only the job's own ranks are heard: each datagram carries a token agreed at startup and
// must come from the port of the rank it names. When a collective times out, the ranks that waited can then name the rank that did
// not come: one that went silent (stopped, frozen, dead) or one that is alive but elsewhere (a straggler).
import Foundation
import Numerics
#if canImport(Glibc)
import Glibc
#endif

/// What a rank last said about itself.
struct PeerState: Sendable {
    var rank: Int
    var host: String
    var step: Int
    var phase: String
    /// The collective it waits in, and for how long; empty when it is not in one.
    var operation: String
    var waiting: Double
    /// When this rank heard it (monotonic seconds).
    var heard: Double

    var encoded: String { "\(rank)\t\(step)\t\(phase)\t\(operation)\t\(waiting)\t\(host)" }

    init(rank: Int, host: String, step: Int, phase: String, operation: String, waiting: Double, heard: Double) {
        (self.rank, self.host, self.step, self.phase, self.operation, self.waiting, self.heard) =
            (rank, host, step, phase, operation, waiting, heard)
    }

    init?(_ text: String, heard: Double) {
        let f = text.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 6, let rank = Int(f[0]), let step = Int(f[1]), let waiting = Double(f[4]) else { return nil }
        self.init(rank: rank, host: f[5], step: step, phase: f[2], operation: f[3], waiting: waiting, heard: heard)
    }
}

/// A UDP socket per rank, the addresses of the others (exchanged once, through the communicator), and a thread that
/// sends this rank's state and records the others'.
final class Heartbeat: @unchecked Sendable {
    static let interval = 0.2
    /// A peer not heard from for this long counts as silent.
    static let silence = 1.0

    let rank: Int
    private let socket: Int32
    private var peers: [(rank: Int, addresses: [sockaddr_in])] = []
    private let lock = NSLock()
    private var table: [Int: PeerState] = [:]
    private let state: @Sendable () -> PeerState
    /// A random number rank 0 drew for this job, agreed through the communicator: every datagram carries it.
    let token: String
    /// Datagrams dropped: another job's token, garbage, or a source that is not the rank it claims to be.
    private var droppedCount = 0
    /// This rank's UDP port.
    let port: UInt16

    /// Opens the socket and exchanges addresses with every rank (a collective: every rank calls it at startup).
    init?(on communicator: Communicator, state: @escaping @Sendable () -> PeerState) {
        rank = communicator.rank
        self.state = state
        let fd = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        socket = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = fd >= 0 && withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        // Every rank takes part in the exchange, even one without a socket (it announces port 0).
        port = bound ? UInt16(bigEndian: address.sin_port) : 0
        let mine = Array(localIPv4Addresses().prefix(4)) + [0, 0, 0, 0]
        let host = Int64(bitPattern: fingerprint(bytesOf: Array(hostName().utf8)))
        let drawn = Int64(bitPattern: UInt64.random(in: 1...UInt64.max))
        guard let ports = try? communicator.allGather(Int64(port)), let hosts = try? communicator.allGather(host),
              let addresses = try? (0..<4).map({ i in try communicator.allGather(Int64(mine[i])) }),
              let tokens = try? communicator.allGather(drawn) else { return nil }
        token = hexDigest(UInt64(bitPattern: tokens[0]))
        guard bound else { return nil }
        for r in 0..<communicator.size where r != rank && ports[r] > 0 {
            // A peer on this host is reached on the loopback address; others on each address they announced.
            let targets = hosts[r] == host ? [UInt32(0x7f00_0001)] : (0..<4).map { UInt32(addresses[$0][r]) }.filter { $0 != 0 }
            peers.append((r, targets.map { ip in
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = UInt16(ports[r]).bigEndian
                a.sin_addr.s_addr = ip.bigEndian
                return a
            }))
        }
        let thread = Thread { [weak self] in
            var next = monotonicSeconds()
            while let self {
                let now = monotonicSeconds()
                if now >= next {
                    self.send()
                    next = now + Self.interval
                }
                self.receive(waitingUpTo: next - now)
            }
        }
        thread.name = "descent-heartbeat"
        thread.start()
    }

    /// Records the others' messages that arrive within `seconds`.
    private func receive(waitingUpTo seconds: Double) {
        var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(max(seconds, 0) * 1000) + 1) > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            var source = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = withUnsafeMutablePointer(to: &source) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT), $0, &length) }
            }
            guard n > 0 else { break }
            let text = String(decoding: buffer[0..<n], as: UTF8.self)
            if let peer = accepted(text, from: source) {
                lock.withLock { table[peer.rank] = peer }
            } else {
                lock.withLock { droppedCount += 1 }
            }
        }
    }

    /// The state in a datagram, when it carries this job's token and comes from the port of the rank it names.
    private func accepted(_ text: String, from source: sockaddr_in) -> PeerState? {
        let prefix = "descent \(token)\t"
        guard text.hasPrefix(prefix), let peer = PeerState(String(text.dropFirst(prefix.count)), heard: monotonicSeconds()),
              let known = peers.first(where: { $0.rank == peer.rank }) else { return nil }
        // A peer on this host sends from its port on the loopback address; one elsewhere from its port on any address.
        return known.addresses.contains { $0.sin_port == source.sin_port } ? peer : nil
    }

    /// How many datagrams were dropped so far.
    var dropped: Int { lock.withLock { droppedCount } }

    /// Sends this rank's state to every other rank.
    private func send() {
        let message = Array(("descent \(token)\t" + state().encoded).utf8)
        for peer in peers {
            for var address in peer.addresses {
                _ = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(socket, message, message.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }
    }

    /// What the others last said, by rank (only the ones heard at least once).
    var others: [PeerState] { lock.withLock { table.values.sorted { $0.rank < $1.rank } } }

    /// The ranks of `size` heard from at all: without any, the network drops the messages and nothing can be said.
    var heardAny: Bool { lock.withLock { !table.isEmpty } }

    /// The ranks expected to answer.
    var peerRanks: [Int] { peers.map(\.rank) }
}

/// This machine's IPv4 addresses other than loopback, host byte order.
private func localIPv4Addresses() -> [UInt32] {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0, let first = list else { return [] }
    defer { freeifaddrs(list) }
    var result: [UInt32] = []
    for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
        guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else { continue }
        let ip = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
        if ip >> 24 != 127 { result.append(ip) }
    }
    return result
}
