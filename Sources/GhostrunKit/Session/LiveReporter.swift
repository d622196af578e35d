import Foundation
import Synchronization

/// What `ghostrun run` prints while the matrix runs: a line per result as it finishes, on a terminal a live
/// progress line redrawn every second, and the summary at the end. One lock keeps the lines whole.
public final class LiveReporter: Sendable {
    private let progress: ProgressLine?
    private let color: Bool
    private let width: Int
    /// Guards standard output, and holds the redraw timer while it runs.
    private let output = Mutex<(any DispatchSourceTimer)?>(nil)

    /// `terminal`: stdout is a terminal (the live line exists only there: in a CI log `\r` redraws would be noise).
    public init(total: Int, started: ContinuousClock.Instant, terminal: Bool, color: Bool, width: Int) {
        progress = terminal ? ProgressLine(total: total, started: started) : nil
        self.color = color
        self.width = width
    }

    /// For stdout as it is: a terminal or not, NO_COLOR, the terminal's width.
    public static func forStandardOutput(total: Int, started: ContinuousClock.Instant) -> LiveReporter {
        let terminal = isatty(STDOUT_FILENO) == 1
        return LiveReporter(total: total, started: started, terminal: terminal,
                            color: terminal && ProcessInfo.processInfo.environment["NO_COLOR"] == nil,
                            width: terminalWidth())
    }

    func start() {
        guard let progress else { return }
        let width = self.width
        output.withLock { slot in
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now(), repeating: .seconds(1))
            timer.setEventHandler { [self] in
                output.withLock { _ in
                    if let line = progress.redraw(width: width) {
                        print(line, terminator: "")
                        fflush(nil)
                    }
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
        progress?.finished("\(result.name)@\(result.goVersion)")
        output.withLock { _ in
            if progress != nil { print(ProgressLine.clear, terminator: "") }
            print(TerminalReport.line(for: result, color: color))
            if let progress { print(progress.text(width: width), terminator: "") }
            fflush(nil)
        }
    }

    func finish(_ results: [RunResult]) {
        output.withLock { timer in
            timer?.cancel()
            timer = nil
            progress?.close()
            if progress != nil { print(ProgressLine.clear, terminator: "") }
            print(TerminalReport.summary(results))
            fflush(nil)
        }
    }
}

/// The terminal's width in columns, 80 when it cannot be told.
public func terminalWidth() -> Int {
    var size = winsize()
    if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    return 80
}
