// SIGTERM and SIGUSR1 (what batch systems send before a time limit) ask the run to checkpoint and stop at the
// next step boundary instead of dying where it stands.
#if canImport(Glibc)
import Config
import Glibc
#endif

/// The signal a rank received (0: none), set by the handler and read by the training loop.
private nonisolated(unsafe) let received: UnsafeMutablePointer<sig_atomic_t> = {
    let p = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
    p.initialize(to: 0)
    return p
}()

public enum StopSignals {
    /// Installs the handlers (once per process; later calls do nothing new).
    public static func install() {
        _ = received.pointee  // initialise before a handler can run
        for s in [SIGTERM, SIGUSR1] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in received.pointee = signal }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(s, &action, nil)
        }
    }

    /// The signal received so far (0 if none).
    public static var pending: Int32 { Int32(received.pointee) }

    /// The stop signal received, as a stop message names it.
    public static var description: String {
        pending != 0 ? name(pending) : "a stop signal (SIGTERM or SIGUSR1) received by another rank"
    }

    /// A signal's usual name.
    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: return "SIGTERM"
        case SIGUSR1: return "SIGUSR1"
        default: return "signal \(signal)"
        }
    }
}
