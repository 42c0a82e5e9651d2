// Rank 0's progress display: one updating line on a terminal, plain lines in logs and batch jobs.
import Foundation

/// Prints progress and notes. On a terminal the progress line is rewritten in place at most a few times a
/// second; elsewhere (CI, Slurm output files) a plain line is printed at most every `plainInterval` seconds.
public final class Console {
    private let interactive: Bool
    private let enabled: Bool
    private let showProgress: Bool
    private let plainInterval: Double
    private var lastPrint = -Double.infinity
    private var lineOpen = false

    /// How progress is shown: rewriting one terminal line, plain lines, or not at all (`off` keeps the
    /// summary and per-epoch lines).
    public enum Style: String, CaseIterable, Sendable {
        case auto, line, plain, off
    }

    /// Under mpirun every rank's stdout is a pseudo-terminal whatever mpirun's own output is, so `auto` picks
    /// the updating line only for a process started directly on a terminal; launch scripts that know better
    /// pass `line`.
    public convenience init(enabled: Bool, style: Style) {
        let underLauncher = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil
        let interactive: Bool
        switch style {
        case .auto: interactive = !underLauncher && isatty(STDOUT_FILENO) != 0
        case .line: interactive = true
        case .plain, .off: interactive = false
        }
        self.init(enabled: enabled, interactive: interactive, showProgress: style != .off)
    }

    public init(enabled: Bool, interactive: Bool, showProgress: Bool = true, plainInterval: Double = 10) {
        self.enabled = enabled
        self.showProgress = showProgress
        self.interactive = interactive
        self.plainInterval = plainInterval
    }

    /// A line that stays (configuration summary, epoch results, final figures).
    public func note(_ text: String) {
        guard enabled else { return }
        if lineOpen { fputs("\r\u{1B}[K", stdout); lineOpen = false }
        fputs(text + "\n", stdout)
        fflush(stdout)
    }

    /// A progress update; may be skipped if the previous one was recent.
    public func progress(_ text: @autoclosure () -> String, now: Double) {
        guard enabled && showProgress else { return }
        let interval = interactive ? 0.2 : plainInterval
        guard now - lastPrint >= interval else { return }
        lastPrint = now
        if interactive {
            fputs("\r\u{1B}[K" + text(), stdout)
            lineOpen = true
        } else {
            fputs(text() + "\n", stdout)
        }
        fflush(stdout)
    }
}

/// Seconds on a monotonic clock.
@inline(__always)
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// This process's peak resident set size in bytes.
public func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Int(usage.ru_maxrss) * 1024
}

/// "1h02m", "3m05s", "12s".
func durationText(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(twoDigits((s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(twoDigits(s % 60))s" }
    return "\(s)s"
}

private func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

/// A number with a fixed count of decimals, without Foundation's String(format:).
func fixed(_ x: Double, _ decimals: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var p = 1.0
    for _ in 0..<decimals { p *= 10 }
    let r = (abs(x) * p).rounded()
    let whole = Int(r / p), fraction = Int(r - Double(whole) * p)
    var f = String(fraction)
    while f.count < decimals { f = "0" + f }
    return (x < 0 && r != 0 ? "-" : "") + String(whole) + (decimals > 0 ? "." + f : "")
}
