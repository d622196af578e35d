import ArgumentParser
import Foundation
import GhostrunKit

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine the run files of a sharded matrix into one, print it and report it as `run` would.")

    @Argument(help: "Run files (--json of `ghostrun run`) to combine.")
    var files: [String]

    @OptionGroup var reports: ReportOptions

    @OptionGroup var baselineOptions: BaselineOptions

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one run file") }
    }

    func run() throws {
        let baselineFile = try baselineOptions.load()
        var inputs: [(path: String, file: RunFile)] = []
        for path in files {
            do {
                inputs.append((path, try JSONReport.decode(Data(contentsOf: URL(fileURLWithPath: path)))))
            } catch {
                throw fail("\(path): not a readable run file: \(error)")
            }
        }
        var merged: RunFile
        do {
            merged = try RunFileMerge.merge(inputs)
            if merged.matrix == nil {
                warn("these run files do not record their shards (written before ghostrun 0.3): completeness not checked")
            }
        } catch {
            throw fail("\(error)")
        }
        // With a report on stdout (`--json -`), the lines for people go to stderr.
        let fd = reports.stdoutTaken ? STDERR_FILENO : STDOUT_FILENO
        let color = isatty(fd) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        var text = merged.results.map { TerminalReport.line(for: $0, color: color) + "\n" }.joined()
        text += TerminalReport.summary(merged.results) + "\n"
        merged.baseline = baselineOptions.compare(merged.results, matrixIds: nil, with: baselineFile)
        if let comparison = merged.baseline { text += comparison.render() + "\n" }
        if reports.stdoutTaken {
            FileHandle.standardError.write(Data(text.utf8))
        } else {
            print(text, terminator: "")
            fflush(nil)
        }
        if let events = try reports.openEvents() {
            merged.results.forEach(events.emit)
            events.close()
        }
        try reports.write(merged)
        reports.reportToGitHub(merged)
        throw ExitCode(baselineOptions.exitStatus(merged.results, comparison: merged.baseline))
    }
}
