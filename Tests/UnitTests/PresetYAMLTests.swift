// Every preset's resolved YAML, byte for byte: the config tables can be rebuilt without a preset's meaning (or its
// config hash) moving. The files in Tests/Fixtures/resolved were written by an earlier build; a change that must
// move one rewrites it with `DESCENT_RECORD_RESOLVED=1 swift test --filter PresetYAML` and says why.
import Config
import DescentTestSupport
import Foundation
import Testing

@Suite("Preset configs")
struct PresetYAMLTests {
    static let presets: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent("configs").path)) ?? [])
        .filter { $0.hasSuffix(".yaml") }.sorted()

    /// The resolved YAML of a preset as the command that runs it reads it.
    static func resolved(_ name: String) throws -> String {
        let text = try String(contentsOf: packageRoot.appendingPathComponent("configs/" + name), encoding: .utf8)
        if name.hasPrefix("path-") { return try PathConfig.load(yaml: text, fileName: name).resolvedYAML }
        if text.contains("\nstudy:") || text.hasPrefix("study:") { return try StudyConfig.load(yaml: text, fileName: name).resolvedYAML }
        if text.contains("\ncompare:") || text.hasPrefix("compare:") { return try CompareConfig.load(yaml: text, fileName: name).resolvedYAML }
        return try RunConfig.load(yaml: text, fileName: name).resolvedYAML
    }

    @Test("every preset resolves to the same YAML, byte for byte, as the recorded one", arguments: presets)
    func sameYAML(name: String) throws {
        let fixture = packageRoot.appendingPathComponent("Tests/Fixtures/resolved/" + name)
        let now = try Self.resolved(name)
        if ProcessInfo.processInfo.environment["DESCENT_RECORD_RESOLVED"] == "1" {
            try FileManager.default.createDirectory(at: fixture.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(now.utf8).write(to: fixture)
        }
        #expect(now == (try String(contentsOf: fixture, encoding: .utf8)), "\(name)")
    }

    @Test("the presets are all there (a missing configs folder would make the test above vacuous)")
    func presetsFound() { #expect(Self.presets.count >= 30) }
}
