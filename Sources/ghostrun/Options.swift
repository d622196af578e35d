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
    @Option(help: "Write the run file (JSON) here.")
    var json: String?

    @Option(help: "Write a JUnit XML report here.")
    var junit: String?

    @Option(help: "Write a Markdown report here.")
    var markdown: String?

    func write(_ runFile: RunFile) throws {
        do {
            if let json {
                try JSONReport.encode(runFile).write(to: URL(fileURLWithPath: json))
            }
            if let junit { try Data(JUnitReport.render(runFile).utf8).write(to: URL(fileURLWithPath: junit)) }
            if let markdown { try Data(MarkdownReport.render(runFile).utf8).write(to: URL(fileURLWithPath: markdown)) }
        } catch {
            throw fail("cannot write a report: \(error)")
        }
    }

    /// Under GitHub Actions: an `::error` annotation per failed expectation, and the Markdown report in the job
    /// summary.
    func reportToGitHub(_ runFile: RunFile) {
        let environment = ProcessInfo.processInfo.environment
        guard environment["GITHUB_ACTIONS"] == "true" else { return }
        let workspace = environment["GITHUB_WORKSPACE"] ?? FileManager.default.currentDirectoryPath
        for line in GitHubAnnotations.errors(for: runFile.results, workspace: workspace) { print(line) }
        fflush(nil)
        if let summary = environment["GITHUB_STEP_SUMMARY"], !summary.isEmpty {
            do {
                try GitHubAnnotations.appendStepSummary(MarkdownReport.render(runFile), to: summary)
            } catch {
                warn("cannot append to GITHUB_STEP_SUMMARY \(summary): \(error)")
            }
        }
    }
}
