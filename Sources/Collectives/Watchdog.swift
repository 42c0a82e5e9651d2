// Never a silent hang: every collective runs under a deadline, and a collective that does not complete in
// time ends the whole job with one message that names the step, the phase, and (from the heartbeats) the rank
// that did not come and its host.
import Foundation
import Numerics

/// A background thread that watches the collective in progress on this rank. When one has been waiting
/// longer than `deadline` seconds it calls `onTimeout` (which aborts the job) with a message naming the
/// operation, the step and the phase.
public final class Watchdog: @unchecked Sendable {
    /// Seconds a collective may wait for the other ranks; 0 or less turns the watchdog off.
    public var deadline: Double {
        get { lock.withLock { _deadline } }
        set { lock.withLock { _deadline = newValue } }
    }

    private let lock = NSLock()
    private var _deadline: Double
    private var started: Double?
    private var operation: StaticString = ""
    private var step = -1
    private var phase: StaticString = "startup"
    private let onTimeout: @Sendable (String) -> Void
    /// The others' whereabouts, when the ranks could exchange heartbeats.
    var heartbeat: Heartbeat?

    /// - Parameter onTimeout: called once, on the watchdog's thread, with the message; it should not return.
    public init(deadline: Double, onTimeout: @escaping @Sendable (String) -> Void) {
        _deadline = deadline
        self.onTimeout = onTimeout
        let thread = Thread { [weak self] in
            var tick = monotonicSeconds()
            while let self {
                // A tick far later than the sleep asks: this process was frozen (SIGSTOP, swapped out). Its own wait
                // is not the others' fault: it counts from now.
                let now = monotonicSeconds()
                if now - tick > Heartbeat.silence { self.lock.withLock { if self.started != nil { self.started = now } } }
                tick = now
                if let message = self.expired() {
                    if let defer_ = self.deferral() { Thread.sleep(forTimeInterval: defer_) }
                    self.onTimeout(message)
                    return
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        thread.name = "descent-watchdog"
        thread.start()
    }

    /// What the rank is doing, for the message: the optimizer step (−1 before the first) and a phase name.
    public func setContext(step: Int, phase: StaticString) {
        lock.withLock {
            self.step = step
            self.phase = phase
        }
    }

    /// Runs one collective under the deadline.
    @inline(__always)
    public func watch<T>(_ operation: StaticString, _ body: () throws -> T) rethrows -> T {
        lock.withLock {
            self.operation = operation
            started = monotonicSeconds()
        }
        defer { lock.withLock { started = nil } }
        return try body()
    }

    /// This rank's state, as its heartbeat tells the others.
    func state(rank: Int) -> PeerState {
        lock.withLock {
            PeerState(rank: rank, host: hostName(), step: step, phase: "\(phase)", operation: started == nil ? "" : "\(operation)",
                      waiting: started.map { monotonicSeconds() - $0 } ?? 0, heard: 0)
        }
    }

    private func expired() -> String? {
        let (operation, step, phase, deadline, waited): (StaticString, Int, StaticString, Double, Double?) = lock.withLock {
            (self.operation, self.step, self.phase, _deadline, started.map { monotonicSeconds() - $0 })
        }
        guard deadline > 0, let waited, waited > deadline else { return nil }
        let when = step < 0 ? "before the first step" : "at step \(step)"
        let what = "\(operation) in phase '\(phase)' \(when) did not complete within \(shortSeconds(deadline)) s (guards.collective_timeout)"
        guard let culprits = heartbeat.flatMap({ Self.culprits($0, operation: "\(operation)") }), !culprits.isEmpty else {
            return what + ": another rank has stalled or died; aborting the job"
        }
        return culprits.joined(separator: "; ") + ": " + what + "; aborting the job"
    }

    /// The ranks that did not come to `operation`, each with its host and what it last said; nil when no heartbeat
    /// ever arrived (the network drops them) and nothing can be said.
    static func culprits(_ heartbeat: Heartbeat, operation: String) -> [String]? {
        guard heartbeat.heardAny else { return nil }
        let now = monotonicSeconds()
        let heard = Dictionary(uniqueKeysWithValues: heartbeat.others.map { ($0.rank, $0) })
        return heartbeat.peerRanks.compactMap { r in
            guard let p = heard[r] else { return "rank \(r) never answered" }
            let last = p.step < 0 ? "before the first step" : "at step \(p.step)"
            let silent = now - p.heard
            if silent > Heartbeat.silence {
                return "rank \(r) on \(p.host) stopped answering (nothing heard for \(fixed(silent, 1)) s; last heard in phase '\(p.phase)' \(last)"
                    + (p.operation.isEmpty ? ")" : ", in \(p.operation))")
            }
            guard p.operation != operation else { return nil }
            return p.operation.isEmpty
                ? "rank \(r) on \(p.host) is alive but has not come (its last collective: phase '\(p.phase)' \(last))"
                : "rank \(r) on \(p.host) is alive but waits in \(p.operation) in phase '\(p.phase)' \(last) for \(fixed(p.waiting, 1)) s"
        }
    }

    /// Seconds to wait before aborting, so that one rank speaks for all: a rank defers to a lower rank that is
    /// alive and waits in a collective too (its abort ends this process before the wait is over).
    private func deferral() -> Double? {
        guard let heartbeat else { return nil }
        let now = monotonicSeconds()
        let speaker = heartbeat.others.contains { $0.rank < heartbeat.rank && now - $0.heard <= Heartbeat.silence && !$0.operation.isEmpty }
        return speaker ? 5 : nil
    }
}

private func shortSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}

/// A communicator whose every collective runs under a watchdog.
public final class WatchedCommunicator: Communicator {
    public let inner: Communicator
    public let watchdog: Watchdog
    public var rank: Int { inner.rank }
    public var size: Int { inner.size }

    /// Watches `inner`'s collectives; a timeout aborts the job through `inner.abort`.
    public init(_ inner: Communicator, deadline: Double) {
        self.inner = inner
        nonisolated(unsafe) let target = inner
        watchdog = Watchdog(deadline: deadline) { message in target.abort(message, code: 124) }
        if inner.size > 1 {
            let rank = inner.rank
            watchdog.heartbeat = Heartbeat(on: inner) { [weak watchdog] in
                watchdog?.state(rank: rank) ?? PeerState(rank: rank, host: "", step: -1, phase: "", operation: "", waiting: 0, heard: 0)
            }
        }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws {
        try watchdog.watch("allreduce") { try inner.allreduce(buffer, operation) }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws {
        try watchdog.watch("allreduce") { try inner.allreduce(buffer, operation) }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, _ operation: ReduceOperation) throws {
        try watchdog.watch("allreduce") { try inner.allreduce(buffer, operation) }
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        try watchdog.watch("broadcast") { try inner.broadcast(bytes, root: root) }
    }

    public func allToAll(_ send: Pieces<UnsafeBufferPointer<Float>>, _ receive: Pieces<UnsafeMutableBufferPointer<Float>>) throws {
        try watchdog.watch("all-to-all exchange") { try inner.allToAll(send, receive) }
    }

    public func allGather(_ pieces: Pieces<UnsafeMutableBufferPointer<Float>>) throws {
        try watchdog.watch("allgather") { try inner.allGather(pieces) }
    }

    public func abort(_ message: String, code: Int32) -> Never {
        inner.abort(message, code: code)
    }

    public func sharedRegions(floats: Int) throws -> SharedRegions? {
        try watchdog.watch("shared-memory allocation") { try inner.sharedRegions(floats: floats) }.map { Watched($0, watchdog) }
    }

    /// Shared regions whose fence, a barrier, runs under the watchdog.
    private final class Watched: SharedRegions {
        let inner: SharedRegions
        let watchdog: Watchdog
        init(_ inner: SharedRegions, _ watchdog: Watchdog) { (self.inner, self.watchdog) = (inner, watchdog) }
        var floats: Int { inner.floats }
        func region(_ q: Int) -> UnsafeMutablePointer<Float> { inner.region(q) }
        func fence() throws { try watchdog.watch("shared-memory fence") { try inner.fence() } }
    }

    public func setContext(step: Int, phase: StaticString) {
        watchdog.setContext(step: step, phase: phase)
    }

    public func setDeadline(_ seconds: Double) { watchdog.deadline = seconds }
}
