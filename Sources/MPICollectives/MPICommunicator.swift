// The Open MPI implementation of Communicator: the only code that calls MPI.
import CMPI
import Collectives
#if canImport(Glibc)
import Glibc
#endif

/// MPI_COMM_WORLD as a Communicator. `MPI_Init` happens once, in `world()`; `finalize()` ends MPI.
/// MPI errors are returned (not fatal) and surface as `CollectiveError`.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private nonisolated(unsafe) static var shared: MPICommunicator?

    /// Four vectors of `size` Int32 for the counts and offsets of a v-collective, allocated once.
    private let scratch: [UnsafeMutablePointer<Int32>]
    /// Ranks on this rank's host (MPI_COMM_TYPE_SHARED), found on the first `sharedRegions`.
    private var hostRanks: Int?

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
        scratch = (0..<4).map { _ in
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(size, 1))
            p.initialize(repeating: 0, count: max(size, 1))
            return p
        }
    }

    deinit { scratch.forEach { $0.deallocate() } }

    /// Initialises MPI on first use and returns the world communicator. Also works without mpirun
    /// (a singleton: rank 0 of 1).
    public static func world() throws -> MPICommunicator {
        if let shared { return shared }
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            let rc = MPI_Init(nil, nil)
            guard rc == CMPI_SUCCESS else { throw CollectiveError(operation: "MPI_Init", detail: errorString(rc)) }
        }
        MPI_Comm_set_errhandler(CMPI_COMM_WORLD, CMPI_ERRORS_RETURN)
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(CMPI_COMM_WORLD, &r)
        MPI_Comm_size(CMPI_COMM_WORLD, &s)
        let world = MPICommunicator(rank: Int(r), size: Int(s))
        shared = world
        return world
    }

    /// Ends MPI for this process (once; later calls do nothing).
    public static func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized != 0 && finalized == 0 { MPI_Finalize() }
    }

    /// The name of the host this rank runs on.
    public static var processorName: String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_PROCESSOR_NAME) + 1)
        var length: Int32 = 0
        MPI_Get_processor_name(&buffer, &length)
        return String(cString: buffer)
    }

    /// The MPI library's own description ("Open MPI v4.1.4, package: Debian OpenMPI, …"), first line.
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        return String(cString: buffer).split(separator: "\n").first.map(String.init) ?? ""
    }

    private static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(CMPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        return "\(String(cString: buffer)) (MPI error \(code))"
    }

    private func check(_ rc: Int32, _ operation: String) throws {
        guard rc == CMPI_SUCCESS else { throw CollectiveError(operation: operation, detail: Self.errorString(rc)) }
    }

    private static func op(_ operation: ReduceOperation) -> MPI_Op {
        switch operation {
        case .sum: return CMPI_SUM
        case .min: return CMPI_MIN
        case .max: return CMPI_MAX
        }
    }

    private func allreduce<T>(_ buffer: UnsafeMutableBufferPointer<T>, _ type: MPI_Datatype, _ operation: ReduceOperation) throws {
        guard size > 1, let base = buffer.baseAddress, buffer.count > 0 else { return }
        // MPI counts are Int32: reduce very large buffers in pieces.
        let chunk = Int(Int32.max / 2)
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            try check(MPI_Allreduce(CMPI_IN_PLACE, base + offset, Int32(n), type, Self.op(operation), CMPI_COMM_WORLD),
                      "MPI_Allreduce")
            offset += n
        }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws {
        try allreduce(buffer, CMPI_FLOAT, operation)
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws {
        try allreduce(buffer, CMPI_DOUBLE, operation)
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, _ operation: ReduceOperation) throws {
        try allreduce(buffer, CMPI_INT64, operation)
    }

    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard size > 1, let base = bytes.baseAddress, bytes.count > 0 else { return }
        let chunk = Int(Int32.max / 2)
        var offset = 0
        while offset < bytes.count {
            let n = min(chunk, bytes.count - offset)
            try check(MPI_Bcast(base + offset, Int32(n), CMPI_BYTE, Int32(root), CMPI_COMM_WORLD), "MPI_Bcast")
            offset += n
        }
    }

    public func abort(_ message: String, code: Int32) -> Never {
        fputs("descent: rank \(rank) on \(Self.processorName): \(message)\n", stderr)
        fflush(stderr)
        MPI_Abort(CMPI_COMM_WORLD, code)
        exit(code)
    }
}

extension MPICommunicator {
    /// MPI counts and offsets are Int32: converted into scratch vector `slot`, so that a training step's collectives
    /// allocate nothing.
    private func int32s(_ values: [Int], _ operation: String, slot: Int) throws -> UnsafeMutablePointer<Int32> {
        precondition(values.count == size)
        for (i, value) in values.enumerated() {
            guard let v = Int32(exactly: value) else {
                throw CollectiveError(operation: operation, detail: "\(value) floats exceed MPI's 32-bit counts")
            }
            scratch[slot][i] = v
        }
        return scratch[slot]
    }

    public func allToAll(_ send: Pieces<UnsafeBufferPointer<Float>>, _ receive: Pieces<UnsafeMutableBufferPointer<Float>>) throws {
        let sc = try int32s(send.counts, "MPI_Alltoallv", slot: 0), so = try int32s(send.offsets, "MPI_Alltoallv", slot: 1)
        let rc = try int32s(receive.counts, "MPI_Alltoallv", slot: 2), ro = try int32s(receive.offsets, "MPI_Alltoallv", slot: 3)
        // Empty buffers still need a valid address.
        var spare: Float = 0
        try withUnsafeMutablePointer(to: &spare) { spare in
            try check(MPI_Alltoallv(send.buffer.baseAddress ?? UnsafePointer(spare), sc, so, CMPI_FLOAT,
                                    receive.buffer.baseAddress ?? spare, rc, ro, CMPI_FLOAT, CMPI_COMM_WORLD),
                      "MPI_Alltoallv")
        }
    }

    public func allGather(_ pieces: Pieces<UnsafeMutableBufferPointer<Float>>) throws {
        guard size > 1 else { return }
        let c = try int32s(pieces.counts, "MPI_Allgatherv", slot: 0), o = try int32s(pieces.offsets, "MPI_Allgatherv", slot: 1)
        var spare: Float = 0
        try withUnsafeMutablePointer(to: &spare) { spare in
            try check(MPI_Allgatherv(CMPI_IN_PLACE, 0, CMPI_FLOAT, pieces.buffer.baseAddress ?? spare, c, o, CMPI_FLOAT,
                                     CMPI_COMM_WORLD), "MPI_Allgatherv")
        }
    }
}

extension MPICommunicator {
    /// Regions in one MPI shared-memory window (MPI_Win_allocate_shared), when every rank of the world is on this
    /// host. Each call allocates a new window, which lives until MPI_Finalize: freeing is collective, and a rank
    /// that drops its regions on an error path must not wait for the others.
    public func sharedRegions(floats: Int) throws -> SharedRegions? {
        guard size > 1, try allAgree(SharedMemory.enabled) else { return nil }
        if hostRanks == nil {
            var host = CMPI_COMM_NULL
            try check(MPI_Comm_split_type(CMPI_COMM_WORLD, CMPI_COMM_TYPE_SHARED, 0, CMPI_INFO_NULL, &host), "MPI_Comm_split_type")
            var n: Int32 = 0
            MPI_Comm_size(host, &n)
            MPI_Comm_free(&host)
            hostRanks = Int(n)
        }
        guard hostRanks == size else { return nil }
        return try MPISharedRegions(floats: floats, rank: rank, size: size)
    }
}

/// One MPI shared-memory window over MPI_COMM_WORLD (all ranks on one host), a region of `floats` floats per rank,
/// kept open (MPI_Win_lock_all) for direct loads and stores; the fence is MPI_Win_sync, MPI_Barrier, MPI_Win_sync.
final class MPISharedRegions: SharedRegions {
    let floats: Int
    private var window = CMPI_WIN_NULL
    private var regions: [UnsafeMutablePointer<Float>] = []

    init(floats: Int, rank: Int, size: Int) throws {
        self.floats = floats
        var base: UnsafeMutableRawPointer?
        let bytes = MPI_Aint(max(floats, 1) * MemoryLayout<Float>.stride)
        try Self.check(withUnsafeMutablePointer(to: &base) { b in
            MPI_Win_allocate_shared(bytes, Int32(MemoryLayout<Float>.stride), CMPI_INFO_NULL, CMPI_COMM_WORLD, b, &window)
        }, "MPI_Win_allocate_shared")
        for q in 0..<size {
            var length: MPI_Aint = 0, unit: Int32 = 0
            var start: UnsafeMutableRawPointer?
            try Self.check(withUnsafeMutablePointer(to: &start) { MPI_Win_shared_query(window, Int32(q), &length, &unit, $0) },
                           "MPI_Win_shared_query")
            guard let start, length >= bytes else {
                throw CollectiveError(operation: "MPI_Win_shared_query", detail: "rank \(q)'s region is missing or short")
            }
            regions.append(start.bindMemory(to: Float.self, capacity: max(floats, 1)))
        }
        try Self.check(MPI_Win_lock_all(CMPI_MODE_NOCHECK, window), "MPI_Win_lock_all")
    }

    func region(_ q: Int) -> UnsafeMutablePointer<Float> { regions[q] }

    func fence() throws {
        try Self.check(MPI_Win_sync(window), "MPI_Win_sync")
        try Self.check(MPI_Barrier(CMPI_COMM_WORLD), "MPI_Barrier")
        try Self.check(MPI_Win_sync(window), "MPI_Win_sync")
    }

    private static func check(_ rc: Int32, _ operation: String) throws {
        guard rc == CMPI_SUCCESS else { throw CollectiveError(operation: operation, detail: "MPI error \(rc)") }
    }
}
