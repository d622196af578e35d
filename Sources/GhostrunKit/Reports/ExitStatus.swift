import Foundation

/// The exit status of `ghostrun run`, which is what gates CI (scenario-format.md, "Exit status of run").
public enum ExitStatus {
    public static let success: Int32 = 0
    public static let expectationFailed: Int32 = 1
    public static let harnessError: Int32 = 2

    /// 2 when any result is a harness error, else 1 when any result failed its expectation, else 0.
    ///
    /// A harness error wins over a failed expectation because it means the matrix is incomplete: the
    /// missing result might have failed too, and CI must not mistake "broken harness" for "broken Go".
    public static func forRun(_ results: [RunResult]) -> Int32 {
        if results.contains(where: { $0.outcome.isUnmeasured }) { return harnessError }
        if results.contains(where: { $0.passed == false }) { return expectationFailed }
        return success
    }

    /// The exit status of `ghostrun trace`: the traced command's own (its exit code, or 128 + its signal), 2 for a
    /// harness error, else 0 when the outcome is `ok` and 1 otherwise.
    public static func forTrace(_ result: RunResult) -> Int32 {
        if result.outcome.isUnmeasured { return harnessError }
        if let code = result.exitCode { return code }
        if let signal = result.signal, let number = SignalName.number(of: signal) { return 128 + number }
        return result.outcome == .ok ? success : expectationFailed
    }
}
