import Foundation
import Synchronization

/// The live `[done/total] 3 passed, 1 failed  running: a@1.23, b@1.21  elapsed 12s, ~40s left` line of
/// `ghostrun run` on a terminal.
///
/// Thread-safe: workers report starts and results while a timer redraws. Only the text is decided here; the CLI
/// writes it, because only the CLI knows whether stdout is a terminal.
public final class ProgressLine: Sendable {
    /// Go back to the start of the line and erase it, before a result line or the summary.
    public static let clear = "\r\u{1B}[K"

    private struct State {
        var done = 0
        var passed = 0
        var failed = 0
        var running: [String] = []
        var finished: Set<String> = []
        var durations: [Int] = []
        var closed = false
    }

    private let state = Mutex(State())
    private let total: Int
    private let started: ContinuousClock.Instant
    /// Every entry of the matrix (`name@version`), to know which are still to run; empty when unknown.
    private let ids: [String]
    /// Previous `duration_ms` by entry (`--timings`); the median of this run's results stands in for the rest.
    private let timings: [String: Int]
    private let jobs: Int

    public init(total: Int, started: ContinuousClock.Instant = .now, ids: [String] = [], timings: [String: Int] = [:],
                jobs: Int = 1) {
        self.total = total
        self.started = started
        self.ids = ids
        self.timings = timings
        self.jobs = max(1, jobs)
    }

    public func started(_ id: String) {
        state.withLock { $0.running.append(id) }
    }

    /// `passed` is the result's verdict (nil: nothing was expected); `durationMs` feeds the estimate.
    public func finished(_ id: String, passed: Bool? = nil, durationMs: Int? = nil) {
        state.withLock { state in
            if let index = state.running.firstIndex(of: id) { state.running.remove(at: index) }
            state.done += 1
            state.finished.insert(id)
            if passed == true { state.passed += 1 }
            if passed == false { state.failed += 1 }
            if let durationMs { state.durations.append(durationMs) }
        }
    }

    /// The estimated time left in seconds: each entry not finished costs its `--timings` duration, else the median
    /// of this run's durations so far, spread over the workers; nil when there is nothing to estimate from.
    public func secondsLeft(now: ContinuousClock.Instant = .now) -> Int? {
        let state = state.withLock { $0 }
        let durations = state.durations.sorted()
        let median = durations.isEmpty ? nil : durations[durations.count / 2]
        var costMs = 0
        if ids.isEmpty {
            guard let median else { return nil }
            costMs = (total - state.done) * median
        } else {
            for id in ids where !state.finished.contains(id) {
                guard let cost = timings[id] ?? median else { return nil }
                costMs += cost
            }
        }
        return (costMs / jobs + 999) / 1000
    }

    /// The line's text, at most `width` characters (a longer line would wrap, and `\r` would then redraw only
    /// its last row).
    public func text(now: ContinuousClock.Instant = .now, width: Int = 80) -> String {
        let state = state.withLock { $0 }
        var tail = "  elapsed \((now - started).components.seconds)s"
        if state.done < total, let left = secondsLeft(now: now) { tail += ", ~\(left)s left" }
        var text = "[\(state.done)/\(total)] \(state.passed) passed, \(state.failed) failed"
        if !state.running.isEmpty { text += "  running: " + state.running.joined(separator: ", ") }
        let room = max(10, width - 1) - tail.count
        if text.count > room { text = String(text.prefix(max(1, room - 1))) + "…" }
        return text + tail
    }

    /// Ends the line for good: a redraw already on its way (a timer tick racing the end of the run) must not
    /// paint it again below the summary.
    public func close() {
        state.withLock { $0.closed = true }
    }

    /// What to write to redraw the line in place; nil once closed.
    public func redraw(now: ContinuousClock.Instant = .now, width: Int = 80) -> String? {
        let closed = state.withLock { $0.closed }
        return closed ? nil : ProgressLine.clear + text(now: now, width: width)
    }
}
