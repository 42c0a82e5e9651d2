// Never a silent hang: every collective runs under a deadline, and a collective that does not complete in
// time ends the whole job with a message that names the step and the phase.
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

    /// - Parameter onTimeout: called once, on the watchdog's thread, with the message; it should not return.
    public init(deadline: Double, onTimeout: @escaping @Sendable (String) -> Void) {
        _deadline = deadline
        self.onTimeout = onTimeout
        let thread = Thread { [weak self] in
            while let self {
                if let message = self.expired() {
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

    private func expired() -> String? {
        lock.withLock {
            guard _deadline > 0, let started, monotonicSeconds() - started > _deadline else { return nil }
            let when = step < 0 ? "before the first step" : "at step \(step)"
            return "\(operation) in phase '\(phase)' \(when) did not complete within \(shortSeconds(_deadline)) s "
                + "(guards.collective_timeout): another rank has stalled or died; aborting the job"
        }
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

    public func setContext(step: Int, phase: StaticString) {
        watchdog.setContext(step: step, phase: phase)
    }
}
