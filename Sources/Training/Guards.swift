// The guards judge every step from what the exchange returned: every rank sees the same flags and losses, so
// every rank decides alike, without another message. Their messages are built here and nowhere else.
import Collectives
import Config
import Numerics

/// A failure every rank found together (so one rank reports it for all).
public protocol AgreedError: Error, CustomStringConvertible {}

/// Raised identically on every rank (the ranks found it together), so one rank reports it for all.
public struct AgreedFailure: AgreedError, Sendable {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Why the guards stopped a run.
public enum GuardFailure: AgreedError, Equatable, Sendable {
    /// A non-finite loss or gradient with `guards.non_finite: stop`; `savedTo` holds the last good state.
    case nonFinite(Subject, ranks: [Int], savedTo: String?, afterStep: Int)
    /// More skipped steps in a row than `guards.max_skips`.
    case tooManySkips(Subject, ranks: [Int], inRow: Int, limit: Int)
    /// The loss stayed above `factor` × the first step's loss for `steps` steps.
    case diverged(Subject, loss: Double, first: Double, factor: Double, steps: Int)

    /// Which step of which replica (the label only when several train together).
    public struct Subject: Equatable, Sendable {
        public var step: Int
        public var label: String?
    }

    public var description: String {
        switch self {
        case let .nonFinite(s, ranks, saved, after):
            return Self.nonFiniteText(s, ranks) + "; stopped (guards.non_finite: stop)"
                + (saved.map { ". The last good state (after step \(after)) is in \($0)" } ?? "")
                + "; to skip such steps instead, set guards.non_finite: skip"
        case let .tooManySkips(s, ranks, inRow, limit):
            return Self.nonFiniteText(s, ranks) + "; \(inRow) steps in a row were skipped, more than guards.max_skips (\(limit)); stopped"
        case let .diverged(s, loss, first, factor, steps):
            return "the loss" + (s.label.map { " of \($0)" } ?? "")
                + " diverged in step \(s.step): \(fixed(loss, 4)) is more than \(shortNumber(factor))× "
                + "the first step's \(fixed(first, 4))" + (steps > 1 ? ", \(steps) steps in a row" : "")
                + " (guards.divergence); lower optimizer.lr, add training.clip_norm, or raise guards.divergence"
        }
    }

    /// The note printed when a step's update is skipped.
    static func skipNote(_ s: Subject, _ ranks: [Int]) -> String {
        nonFiniteText(s, ranks) + ": update skipped on every rank (guards.non_finite: skip)"
    }

    private static func nonFiniteText(_ s: Subject, _ ranks: [Int]) -> String {
        "non-finite loss or gradient" + (s.label.map { " of \($0)" } ?? "")
            + " in step \(s.step) on rank\(ranks.count > 1 ? "s" : "") " + ranks.map(String.init).joined(separator: ", ")
    }
}

/// The guards' policy (`guards.*`) applied to one replica's share of a step.
struct Guards {
    let policy: RunConfig.Guards

    enum Verdict: Equatable {
        /// Apply the update.
        case apply
        /// Skip it on every rank.
        case skip
        /// Stop every rank: save the state before this step, then throw the failure (with where it was saved).
        case stop(GuardFailure)
    }

    /// Judges the step `subject.step` of one replica from its exchanged share, updating what the guards remember;
    /// a skipped update is told to `note`.
    func judge(_ share: Exchanged.Replica, _ subject: GuardFailure.Subject, _ state: inout GuardState,
               note: (String) -> Void) throws -> Verdict {
        var verdict = Verdict.apply
        let bad = share.nonFiniteRanks
        if bad.isEmpty {
            state.skippedInRow = 0
        } else {
            switch policy.nonFinite {
            case .stop:
                return .stop(.nonFinite(subject, ranks: bad, savedTo: nil, afterStep: subject.step - 1))
            case .skip:
                state.skippedInRow += 1
                state.skipped += 1
                note(GuardFailure.skipNote(subject, bad))
                if state.skippedInRow > policy.maxSkips {
                    throw GuardFailure.tooManySkips(subject, ranks: bad, inRow: state.skippedInRow, limit: policy.maxSkips)
                }
                verdict = .skip
            case .ignore:
                break
            }
        }
        try checkDivergence(share.loss, subject, &state)
        return verdict
    }

    private func checkDivergence(_ loss: Double, _ subject: GuardFailure.Subject, _ state: inout GuardState) throws {
        if state.firstLoss == nil, loss.isFinite { state.firstLoss = loss }
        guard policy.divergence > 0, let first = state.firstLoss, loss.isFinite, loss > policy.divergence * first else {
            state.divergingInRow = 0
            return
        }
        state.divergingInRow += 1
        if state.divergingInRow >= policy.divergenceSteps {
            throw GuardFailure.diverged(subject, loss: loss, first: first, factor: policy.divergence, steps: policy.divergenceSteps)
        }
    }
}

extension GuardFailure {
    /// The same failure, naming where the last good state was saved.
    func saved(to path: String?) -> GuardFailure {
        guard case let .nonFinite(s, ranks, _, after) = self else { return self }
        return .nonFinite(s, ranks: ranks, savedTo: path, afterStep: after)
    }
}
