// The test suite's own waiting rule: a program is judged by its progress, not by the clock.
import DescentTestSupport
import Foundation
import Testing

@Suite("Waiting on programs")
struct SupportTests {
    @Test("a program that keeps printing is waited for longer than the quiet limit; a silent one is stopped and says why")
    func waitsFollowProgress() throws {
        // 4 s in all, a line every quarter second: longer than the 3 s limit, and each pause is a twelfth of it, so
        // a busy machine that delays a line by seconds still does not make the program look silent.
        let talking = try runProgram("/bin/sh", ["-c", "i=0; while [ $i -lt 16 ]; do echo $i; i=$((i+1)); sleep 0.25; done"],
                                     quietLimit: 3)
        #expect(!talking.timedOut && talking.status == 0, "\(talking.stderr)")
        #expect(talking.stdout == (0..<16).map { "\($0)\n" }.joined())
        let silent = try runProgram("/bin/sh", ["-c", "echo started; sleep 60"], quietLimit: 3)
        #expect(silent.timedOut && silent.stdout == "started\n")
        #expect(silent.stderr.contains("no output for 3 s (waited for it to print progress or end)"), "\(silent.stderr)")
    }
}
