import ArgumentParser
import Foundation
import GhostrunKit

/// Which toolchains: one option group, so `run`, `matrix` and `trace` select them the same way.
struct ToolchainOptions: ParsableArguments {
    @Option(name: .customLong("go"), help: "A go binary or GOROOT to test (repeatable).")
    var goPaths: [String] = []

    @Option(name: .customLong("go-version"), help: "An installed Go version, e.g. 1.23 (repeatable; `all` for every one).")
    var goVersions: [String] = []

    var selection: ToolchainSelection { ToolchainSelection(goPaths: goPaths, goVersions: goVersions) }
}

/// What to run: scenario paths, toolchains and a name filter, shared by `run` and `matrix` so both see one matrix.
struct MatrixSelection: ParsableArguments {
    @Argument(help: "Scenario files or directories (searched recursively for *.yaml, *.yml, *.json).")
    var paths: [String] = []

    @OptionGroup var toolchains: ToolchainOptions

    @Option(help: "Only scenarios whose name matches this regular expression.")
    var filter: String?

    @Flag(help: "Let `fixture:` name any host directory, not only one in the scenario's repository.")
    var allowHostFixtures = false

    func validate() throws {
        if let filter, (try? NSRegularExpression(pattern: filter)) == nil {
            throw ValidationError("--filter \(filter): not a valid regular expression")
        }
    }

    /// The sorted scenario × toolchain matrix; bad input (scenario files, toolchains) is exit status 2.
    func entries(defaultPaths: [String] = []) throws -> [MatrixEntry] {
        let scenarios: [Scenario]
        do {
            scenarios = try ScenarioLoader.load(
                paths: paths.isEmpty ? defaultPaths : paths, allowHostFixtures: allowHostFixtures)
        } catch {
            throw fail("\(error)")
        }
        let toolchains: [Toolchain]
        do {
            toolchains = try self.toolchains.selection.resolve()
        } catch {
            throw fail("\(error)")
        }

        var selected = scenarios
        if let filter, let regex = try? NSRegularExpression(pattern: filter) {
            selected = selected.filter {
                regex.firstMatch(in: $0.name, range: NSRange($0.name.startIndex..., in: $0.name)) != nil
            }
        }
        return Matrix.entries(scenarios: selected, toolchains: toolchains)
    }
}

/// Report files and CI integration shared by `run` and `merge`.
struct ReportOptions: ParsableArguments {
    @Option(help: "Write the run file (JSON) here (`-`: stdout).")
    var json: String?

    @Option(help: "Write a JUnit XML report here (`-`: stdout).")
    var junit: String?

    @Option(help: "Write a Markdown report here (`-`: stdout).")
    var markdown: String?

    @Option(help: "Write one JSON line per result as it finishes here (`-`: stdout).")
    var events: String?

    /// The reports that name `-`: at most one may, and the lines for people then go to stderr.
    var toStandardOutput: [String] {
        [("--json", json), ("--junit", junit), ("--markdown", markdown), ("--events", events)]
            .compactMap { $0.1 == "-" ? $0.0 : nil }
    }

    /// Whether a report takes stdout (the result lines and summary then go to stderr).
    var stdoutTaken: Bool { !toStandardOutput.isEmpty }

    func validate() throws {
        if toStandardOutput.count > 1 {
            throw ValidationError(toStandardOutput.joined(separator: " and ") + " all write to stdout (-): pick one")
        }
    }

    /// The `--events` stream, opened before anything runs (an unwritable path is bad input).
    func openEvents() throws -> EventStream? {
        guard let events else { return nil }
        do {
            return try EventStream(path: events)
        } catch {
            throw fail("--events \(events): \(error)")
        }
    }

    func write(_ runFile: RunFile) throws {
        do {
            if let json { try emit(JSONReport.encode(runFile), to: json) }
            if let junit { try emit(Data(JUnitReport.render(runFile).utf8), to: junit) }
            if let markdown { try emit(Data(MarkdownReport.render(runFile).utf8), to: markdown) }
        } catch {
            throw fail("cannot write a report: \(error)")
        }
    }

    private func emit(_ data: Data, to path: String) throws {
        if path == "-" {
            fflush(nil)
            FileHandle.standardOutput.write(data)
        } else {
            try data.write(to: URL(fileURLWithPath: path))
        }
    }

    /// Under GitHub Actions: an `::error` annotation per failed expectation, and the Markdown report in the job
    /// summary.
    func reportToGitHub(_ runFile: RunFile) {
        let environment = ProcessInfo.processInfo.environment
        guard environment["GITHUB_ACTIONS"] == "true" else { return }
        let workspace = environment["GITHUB_WORKSPACE"] ?? FileManager.default.currentDirectoryPath
        let lines = GitHubAnnotations.errors(for: runFile.results, workspace: workspace)
        if stdoutTaken {
            // The runner reads workflow commands from stderr too; stdout carries the report.
            FileHandle.standardError.write(Data(lines.map { $0 + "\n" }.joined().utf8))
        } else {
            for line in lines { print(line) }
            fflush(nil)
        }
        if let summary = environment["GITHUB_STEP_SUMMARY"], !summary.isEmpty {
            do {
                try GitHubAnnotations.appendStepSummary(MarkdownReport.render(runFile), to: summary)
            } catch {
                warn("cannot append to GITHUB_STEP_SUMMARY \(summary): \(error)")
            }
        }
    }
}
