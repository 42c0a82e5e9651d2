// The test suite's own waiting rule: a program is judged by its progress, not by the clock.
import DescentTestSupport
import Foundation
import Testing

@Suite("Waiting on programs")
struct SupportTests {
    @Test("a program that keeps printing is waited for longer than the quiet limit; a silent one is stopped and says why")
    func waitsFollowProgress() throws {
        // 4 s in all, a line every second: longer than the 2 s limit, never quiet for 2 s.
        let talking = try runProgram("/bin/sh", ["-c", "for i in 1 2 3 4; do echo $i; sleep 1; done"], quietLimit: 2)
        #expect(!talking.timedOut && talking.status == 0)
        #expect(talking.stdout == "1\n2\n3\n4\n")
        let silent = try runProgram("/bin/sh", ["-c", "echo started; sleep 60"], quietLimit: 2)
        #expect(silent.timedOut && silent.stdout == "started\n")
        #expect(silent.stderr.contains("no output for 2 s (waited for it to print progress or end)"), "\(silent.stderr)")
    }
}
