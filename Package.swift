// swift-tools-version: 6.0
// descent: data-parallel optimizer laboratory, launched with mpirun.
import PackageDescription

/// Element-wise kernels only vectorise when sqrt does not carry errno semantics; exclusivity checks on
/// class-held buffers cost more than the arithmetic in release builds.
let numericSettings: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-fno-math-errno"]),
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "descent",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "descent", targets: ["descent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // descent's own matrix product: optimised even in debug builds (the tests train real models with it), and
        // never contracted into other fused operations than the ones it writes out.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        .target(name: "Numerics", dependencies: ["CKernels"], swiftSettings: numericSettings),
        .target(name: "Collectives", dependencies: ["Numerics"], swiftSettings: numericSettings),
        .target(name: "CollectivesTesting", dependencies: ["Collectives"], swiftSettings: numericSettings),
        .target(name: "MPICollectives", dependencies: ["CMPI", "Collectives"], swiftSettings: numericSettings),
        .target(name: "Datasets", dependencies: ["CZlib", "Numerics"], swiftSettings: numericSettings),
        .target(name: "Models", dependencies: ["Numerics", "Datasets"], swiftSettings: numericSettings),
        .target(name: "Optimizers", dependencies: ["Numerics"], swiftSettings: numericSettings),
        .target(name: "Reports", swiftSettings: numericSettings),
        .target(
            name: "Config",
            dependencies: ["Numerics", "Collectives", "Datasets", "Models", "Optimizers", "Reports", "Yams"],
            swiftSettings: numericSettings
        ),
        .target(
            name: "Training",
            dependencies: ["Numerics", "Collectives", "Config", "Datasets", "Models", "Optimizers", "Reports"],
            swiftSettings: numericSettings
        ),
        .target(
            name: "Experiments",
            dependencies: ["Numerics", "Collectives", "Config", "Training", "Models", "Optimizers", "Reports"],
            swiftSettings: numericSettings
        ),
        .executableTarget(
            name: "descent",
            dependencies: [
                "Config", "Training", "Experiments", "Collectives", "MPICollectives", "Optimizers", "Numerics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: numericSettings
        ),
        // Tests: what runs in one process (unit), what starts the built descent under real mpirun (launch), and
        // what starts a real Slurm and namespace hosts as root (cluster). `launch/test --quick` runs the first.
        .target(name: "DescentTestSupport", dependencies: ["CZlib", "Numerics"], path: "Tests/TestSupport"),
        // The readers of outside files under libFuzzer (launch/fuzz), and their entries replayed by the unit tests.
        .target(name: "DescentFuzzTargets", dependencies: ["Config", "Datasets", "Training", "Experiments", "Numerics"],
                path: "Tests/FuzzTargets", swiftSettings: numericSettings),
        .executableTarget(name: "descent-fuzz", dependencies: ["DescentFuzzTargets"], path: "Tests/Fuzz",
                          exclude: ["corpus", "regressions"], swiftSettings: numericSettings),
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
        .testTarget(
            name: "UnitTests",
            dependencies: ["DescentTestSupport", "AllocationCounter", "DescentFuzzTargets", "Config", "Training", "Experiments", "Collectives",
                           "CollectivesTesting", "Datasets", "Models", "Optimizers", "Numerics", "Reports"],
            swiftSettings: numericSettings
        ),
        .testTarget(
            name: "LaunchTests",
            dependencies: ["DescentTestSupport", "Config", "Training", "Experiments", "Optimizers", "Reports", "descent"],
            swiftSettings: numericSettings
        ),
        .testTarget(name: "ClusterTests", dependencies: ["DescentTestSupport", "descent"]),
    ],
    swiftLanguageModes: [.v5]
)
