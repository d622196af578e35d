import Foundation
import Synchronization

/// What `ghostrun run` prints while the matrix runs: a line per result as it finishes, on a terminal a live
/// progress line redrawn every second, and the summary at the end. One lock keeps the lines whole.
public final class LiveReporter: Sendable {
    private let progress: ProgressLine?
    private let color: Bool
    private let width: Int
    /// Result lines and the summary go to stderr when stdout carries a machine-readable report (`--json -`).
    private let toStandardError: Bool
    /// `--events`: a JSON line per result as it finishes.
    private let events: EventStream?
    /// Guards standard output, and holds the redraw timer while it runs.
    private let output = Mutex<(any DispatchSourceTimer)?>(nil)

    /// `terminal`: stdout is a terminal (the live line exists only there: in a CI log `\r` redraws would be noise).
    /// `ids`, `timings` and `jobs` feed the progress line's estimate of the time left.
    public init(total: Int, started: ContinuousClock.Instant, terminal: Bool, color: Bool, width: Int,
                ids: [String] = [], timings: [String: Int] = [:], jobs: Int = 1, toStandardError: Bool = false,
                events: EventStream? = nil) {
        progress = terminal ? ProgressLine(total: total, started: started, ids: ids, timings: timings, jobs: jobs) : nil
        self.toStandardError = toStandardError
        self.events = events
        self.color = color
        self.width = width
    }

    /// For stdout as it is: a terminal or not, NO_COLOR, the terminal's width.
    /// `stdoutTaken`: a report (`--json -`, `--events -`, ...) writes to stdout, so the lines for people go to
    /// stderr and stdout stays parseable.
    public static func forStandardOutput(total: Int, started: ContinuousClock.Instant, ids: [String] = [],
                                         timings: [String: Int] = [:], jobs: Int = 1, stdoutTaken: Bool = false,
                                         events: EventStream? = nil) -> LiveReporter {
        let fd = stdoutTaken ? STDERR_FILENO : STDOUT_FILENO
        let terminal = isatty(fd) == 1
        return LiveReporter(total: total, started: started, terminal: terminal,
                            color: terminal && ProcessInfo.processInfo.environment["NO_COLOR"] == nil,
                            width: terminalWidth(fd), ids: ids, timings: timings, jobs: jobs,
                            toStandardError: stdoutTaken, events: events)
    }

    func start() {
        guard let progress else { return }
        let width = self.width
        output.withLock { slot in
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now(), repeating: .seconds(1))
            timer.setEventHandler { [self] in
                output.withLock { _ in
                    if let line = progress.redraw(width: width) { write(line) }
                }
            }
            timer.resume()
            slot = timer
        }
    }

    func runStarted(_ entry: MatrixEntry) {
        progress?.started(entry.id)
    }

    func runFinished(_ result: RunResult) {
        progress?.finished("\(result.name)@\(result.goVersion)", passed: result.passed, durationMs: result.durationMs)
        events?.emit(result)
        output.withLock { _ in
            var text = progress != nil ? ProgressLine.clear : ""
            text += TerminalReport.line(for: result, color: color) + "\n"
            if let progress { text += progress.text(width: width) }
            write(text)
        }
    }

    func finish(_ results: [RunResult]) {
        output.withLock { timer in
            timer?.cancel()
            timer = nil
            progress?.close()
            write((progress != nil ? ProgressLine.clear : "") + TerminalReport.summary(results) + "\n")
        }
    }

    /// Writes `text` to stdout or stderr at once; callers hold `output`.
    private func write(_ text: String) {
        if toStandardError {
            FileHandle.standardError.write(Data(text.utf8))
        } else {
            print(text, terminator: "")
            fflush(nil)
        }
    }
}

/// The terminal's width in columns, 80 when it cannot be told.
public func terminalWidth(_ fd: Int32 = STDOUT_FILENO) -> Int {
    var size = winsize()
    if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    return 80
}
