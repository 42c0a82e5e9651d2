// The trivial group of one rank: every collective is the identity.
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// One rank alone; collectives return their input unchanged.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws {}
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws {}
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, _ operation: ReduceOperation) throws {}
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {}
    public func allToAll(_ send: Pieces<UnsafeBufferPointer<Float>>, _ receive: Pieces<UnsafeMutableBufferPointer<Float>>) throws {
        precondition(send.counts[0] == receive.counts[0])
        for i in 0..<send.counts[0] { receive.buffer[receive.offsets[0] + i] = send.buffer[send.offsets[0] + i] }
    }
    public func allGather(_ pieces: Pieces<UnsafeMutableBufferPointer<Float>>) throws {}
    public func abort(_ message: String, code: Int32) -> Never {
        fputs(message + "\n", stderr)
        exit(code)
    }
}
