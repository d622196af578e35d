import Foundation

/// The contract's outcome names (scenario-format.md).
public enum Outcome: String, Codable, Sendable, CaseIterable {
    case ok
    case clearError = "clear-error"
    case silentExit = "silent-exit"
    case crash
    case signaled
    case hang
    case skipped
    case harnessError = "harness-error"
    /// The host, not the target, decided: the run was stalled (PSI) past `--max-stretch` before its own limits ran
    /// out. Never green, never the target's outcome; counts like a harness error in the exit status.
    case inconclusive

    /// Not a verdict on the target: the run could not be set up, or the host kept it from being measured.
    public var isUnmeasured: Bool { self == .harnessError || self == .inconclusive }
}

public enum HangKind: String, Codable, Sendable, CaseIterable {
    case frozen
    case blocked
    case spinning
    case stopped
}

/// What the classifier concluded from a `RunObservation`.
public struct Classification: Equatable, Sendable {
    public var outcome: Outcome
    public var hangKind: HangKind?
    public var exitCode: Int32?
    /// Signal name (`SIGSYS`), when the go command was terminated by one.
    public var signal: String?
    /// One sentence on why: "stderr: failed to initialize build cache ...", "SIGSYS: bad system call in go".
    public var summary: String
    /// The first line of stderr that reads like a diagnostic, if any.
    public var firstDiagnostic: String?
    /// The process that failed, when the evidence names one (`compile`, `link`, the built program).
    public var failingProcess: String?
    public init(outcome: Outcome, hangKind: HangKind? = nil, exitCode: Int32? = nil, signal: String? = nil,
                summary: String, firstDiagnostic: String? = nil, failingProcess: String? = nil) {
        self.outcome = outcome
        self.hangKind = hangKind
        self.exitCode = exitCode
        self.signal = signal
        self.summary = summary
        self.firstDiagnostic = firstDiagnostic
        self.failingProcess = failingProcess
    }
}
