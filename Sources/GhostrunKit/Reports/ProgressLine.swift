import Foundation

/// The live `[done/total] running: a@1.23, b@1.21  elapsed 12s` line of `ghostrun run` on a terminal.
///
/// Thread-safe: workers report starts and results while a timer redraws. Only the text is decided here; the CLI
/// writes it, because only the CLI knows whether stdout is a terminal.
public final class ProgressLine: @unchecked Sendable {
    /// Go back to the start of the line and erase it, before a result line or the summary.
    public static let clear = "\r\u{1B}[K"

    private let lock = NSLock()
    private let total: Int
    private let started: ContinuousClock.Instant
    private var done = 0
    private var running: [String] = []
    private var closed = false

    public init(total: Int, started: ContinuousClock.Instant = .now) {
        self.total = total
        self.started = started
    }

    public func started(_ id: String) {
        lock.lock()
        running.append(id)
        lock.unlock()
    }

    public func finished(_ id: String) {
        lock.lock()
        if let index = running.firstIndex(of: id) { running.remove(at: index) }
        done += 1
        lock.unlock()
    }

    /// The line's text, at most `width` characters (a longer line would wrap, and `\r` would then redraw only
    /// its last row).
    public func text(now: ContinuousClock.Instant = .now, width: Int = 80) -> String {
        lock.lock()
        let (done, running) = (self.done, self.running)
        lock.unlock()
        let elapsed = "  elapsed \((now - started).components.seconds)s"
        var text = "[\(done)/\(total)]"
        if !running.isEmpty { text += " running: " + running.joined(separator: ", ") }
        let room = max(10, width - 1) - elapsed.count
        if text.count > room { text = String(text.prefix(max(1, room - 1))) + "…" }
        return text + elapsed
    }

    /// Ends the line for good: a redraw already on its way (a timer tick racing the end of the run) must not
    /// paint it again below the summary.
    public func close() {
        lock.lock()
        closed = true
        lock.unlock()
    }

    /// What to write to redraw the line in place; nil once closed.
    public func redraw(now: ContinuousClock.Instant = .now, width: Int = 80) -> String? {
        lock.lock()
        let closed = self.closed
        lock.unlock()
        return closed ? nil : ProgressLine.clear + text(now: now, width: width)
    }
}
