import Foundation

/// GitHub Actions workflow commands for results, so failures show on the scenario file in the PR's diff view.
public enum GitHubAnnotations {
    /// One `::error file=...,line=...,title=NAME@GO::FAILURES` line per result that failed its expectation.
    /// `file` is made relative to `workspace` (GitHub resolves annotation paths against the repository), and
    /// left out when the result has no scenario file.
    public static func errors(for results: [RunResult], workspace: String? = nil) -> [String] {
        results.filter { $0.passed == false }.map { result in
            var properties: [String] = []
            if let file = result.scenarioFile {
                properties.append("file=" + escapeProperty(relative(file, to: workspace)))
                if let line = result.scenarioLine { properties.append("line=\(line)") }
            }
            properties.append("title=" + escapeProperty("\(result.name)@\(result.goVersion)"))
            let message = result.failures.isEmpty ? result.summary : result.failures.joined(separator: "; ")
            return "::error " + properties.joined(separator: ",") + "::" + escapeData(message)
        }
    }

    /// The message part: `%`, CR and LF are escaped, or GitHub would end the command at the line break.
    public static func escapeData(_ text: String) -> String {
        var out = ""
        for character in text.unicodeScalars {
            switch character {
            case "%": out += "%25"
            case "\r": out += "%0D"
            case "\n": out += "%0A"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// A property value: as `escapeData`, plus `:` and `,`, which separate properties from each other and from
    /// the message.
    public static func escapeProperty(_ text: String) -> String {
        escapeData(text).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }

    static func relative(_ path: String, to workspace: String?) -> String {
        guard let workspace, path.hasPrefix("/") else { return path }
        let base = workspace.hasSuffix("/") ? workspace : workspace + "/"
        return path.hasPrefix(base) ? String(path.dropFirst(base.count)) : path
    }

    /// Appends `markdown` to the file `$GITHUB_STEP_SUMMARY` names, which GitHub shows on the run's page.
    public static func appendStepSummary(_ markdown: String, to path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((markdown.hasSuffix("\n") ? markdown : markdown + "\n").utf8))
    }
}
