// descent-fuzz TARGET [files or libFuzzer options…]: one of descent's readers under libFuzzer when this binary is
// built with -sanitize=fuzzer (launch/fuzz does it), or, in an ordinary build, each given file fed to it once.
import DescentFuzzTargets
import Foundation
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var chosen = FuzzTarget.idx

/// libFuzzer's entry for one input (its driver calls it; referenced by the fuzzer runtime when it is linked).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    chosen.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

let arguments = CommandLine.arguments
guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[1]) else {
    fputs("usage: descent-fuzz TARGET [libFuzzer options or files]; targets: "
          + FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ") + "\n", stderr)
    exit(2)
}
chosen = target

typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
typealias Driver = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, Callback) -> Int32

// libFuzzer's own entry, present only in a -sanitize=fuzzer build.
if let symbol = dlsym(dlopen(nil, RTLD_LAZY), "LLVMFuzzerRunDriver") {  // this program and what it links
    let driver = unsafeBitCast(symbol, to: Driver.self)
    // libFuzzer sees the program name and the options after the target.
    var argv: [UnsafeMutablePointer<CChar>?] = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
    var argc = Int32(argv.count - 1)
    let status = argv.withUnsafeMutableBufferPointer { buffer -> Int32 in
        var base = buffer.baseAddress
        return driver(&argc, &base) { data, size in fuzzOne(data, size) }
    }
    exit(status)
}
for path in arguments.dropFirst(2) {
    guard let data = FileManager.default.contents(atPath: path) else { continue }
    target.run([UInt8](data))
}
print("descent-fuzz \(target.rawValue): \(arguments.count - 2) inputs, no crash (an ordinary build: launch/fuzz builds the fuzzing one)")
