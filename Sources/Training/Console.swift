// Rank 0's progress display: one updating line on a terminal, plain lines in logs and batch jobs.
import Collectives
import Config
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
    /// Notes are printed; `quietly` turns them off for a while (a study's trainers show progress only).
    private var notesShown = true

    /// How progress is shown: rewriting one terminal line, plain lines, or not at all (`off` keeps the
    /// summary and per-epoch lines).
    public enum Style: String, CaseIterable, Sendable {
        case auto, line, plain, off
    }

    /// Under mpirun every rank's stdout is a pseudo-terminal whatever mpirun's own output is, so `auto` picks
    /// the updating line only for a process started directly on a terminal; launch scripts that know better
    /// pass `line`.
    public convenience init(enabled: Bool, style: Style) {
        let underLauncher = Launcher.current.mpirunWorldSize != nil
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
        guard enabled && notesShown else { return }
        if lineOpen { fputs("\r\u{1B}[K", stdout); lineOpen = false }
        fputs(text + "\n", stdout)
        fflush(stdout)
    }

    /// Runs `body` with notes off and progress on: what a study shows of the trainings it launches.
    public func quietly<T>(_ body: () throws -> T) rethrows -> T {
        let was = notesShown
        notesShown = false
        defer { notesShown = was }
        return try body()
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
