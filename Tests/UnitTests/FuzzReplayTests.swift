// The fuzz targets' committed inputs (seed corpus and every finding kept as a regression) replayed through each
// reader, with each seed's truncations and single-byte changes: a reader returns or throws, and never traps.
import DescentFuzzTargets
import DescentTestSupport
import Foundation
import Numerics
import Testing

@Suite("Fuzz targets replayed")
struct FuzzReplayTests {
    @Test("every committed input of every reader, and its truncations and changed bytes, returns or throws", arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        let inputs = target.committedInputs(root: packageRoot)
        #expect(!inputs.isEmpty, "\(target.rawValue) has no seed corpus")
        var rng = Xoshiro256(seed: 7, stream: 11)
        for url in inputs {
            let bytes = [UInt8](try Data(contentsOf: url))
            target.run(bytes)
            for k in 1...16 { target.run(Array(bytes.prefix(bytes.count * k / 17))) }
            for _ in 0..<48 where !bytes.isEmpty {
                var changed = bytes
                changed[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                target.run(changed)
            }
        }
    }
}
