import Foundation

/// JUnit XML for CI systems: one `<testsuite>` per scenario group, one `<testcase>` per scenario × toolchain.
public enum JUnitReport {
    /// Renders the run file. A group is the scenario file's directory name, else its first tag, else
    /// `ghostrun`, so CI dashboards group seed scenarios, cache scenarios and so on as the repo does.
    public static func render(_ file: RunFile) -> String {
        var groups: [(name: String, results: [RunResult])] = []
        for result in file.results {
            let name = group(of: result)
            if let index = groups.firstIndex(where: { $0.name == name }) {
                groups[index].results.append(result)
            } else {
                groups.append((name, [result]))
            }
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        let goTests = GoTestReport.junitSuites(file)
        xml += "<testsuites name=\"ghostrun\"\(counts(file.results, plus: goTests))"
        xml += " time=\"\(seconds(total(file.results)))\">\n"
        for (name, results) in groups {
            xml += "  <testsuite name=\"\(attribute(name))\"\(counts(results)) time=\"\(seconds(total(results)))\">\n"
            xml += properties(file)
            for result in results { xml += testcase(result, classname: name) }
            xml += "  </testsuite>\n"
        }
        xml += goTests.xml
        xml += "</testsuites>\n"
        return xml
    }

    /// The group name for a result; see `render`.
    public static func group(of r: RunResult) -> String {
        if let file = r.scenarioFile {
            let directory = (file as NSString).deletingLastPathComponent
            let name = (directory as NSString).lastPathComponent
            if !name.isEmpty, name != ".", name != "/" { return name }
        }
        return r.tags.first ?? "ghostrun"
    }

    static func counts(
        _ results: [RunResult], plus goTests: (xml: String, tests: Int, failures: Int, errors: Int, skipped: Int)? = nil
    ) -> String {
        let failures = results.filter { $0.passed == false && !isError($0) }.count + (goTests?.failures ?? 0)
        let errors = results.filter(isError).count + (goTests?.errors ?? 0)
        let skipped = results.filter { $0.outcome == .skipped && $0.interrupted != true }.count + (goTests?.skipped ?? 0)
        let tests = results.count + (goTests?.tests ?? 0)
        return " tests=\"\(tests)\" failures=\"\(failures)\" errors=\"\(errors)\" skipped=\"\(skipped)\""
    }

    /// A harness error, or a run torn down by SIGINT/SIGTERM: nothing was learned about the target, so it is an
    /// `<error>`, never a `<failure>` (which says the target behaved differently from what was expected).
    static func isError(_ r: RunResult) -> Bool { r.outcome.isUnmeasured || r.interrupted == true }

    static func total(_ results: [RunResult]) -> Int { results.reduce(0) { $0 + $1.durationMs } }

    static func seconds(_ ms: Int) -> String { String(format: "%.3f", Double(ms) / 1000) }

    /// Host facts on every suite: a JUnit file is often read alone, far from the machine that made it.
    static func properties(_ file: RunFile) -> String {
        let facts = [
            ("kernel", file.host.kernel), ("libseccomp", file.host.libseccomp), ("cgroup", file.host.cgroup),
            ("ghostrun_version", file.ghostrun), ("hostname", file.host.hostname),
        ]
        var xml = "    <properties>\n"
        for (name, value) in facts {
            xml += "      <property name=\"\(attribute(name))\" value=\"\(attribute(value))\"/>\n"
        }
        return xml + "    </properties>\n"
    }

    static func testcase(_ r: RunResult, classname: String) -> String {
        var xml =
            "    <testcase name=\"\(attribute("\(r.name)@\(r.goVersion)"))\" classname=\"\(attribute(classname))\""
        if let file = r.scenarioFile { xml += " file=\"\(attribute(file))\"" }
        if let line = r.scenarioLine { xml += " line=\"\(line)\"" }
        xml += " time=\"\(seconds(r.durationMs))\">\n"
        switch r.outcome {
        case _ where r.interrupted == true:
            let message = "interrupted by SIGINT/SIGTERM"
            xml += "      <error message=\"\(message)\" type=\"interrupted\">\(text(message + ": " + r.summary))</error>\n"
        case .skipped:
            xml += "      <skipped message=\"\(attribute(r.reason ?? r.summary))\"/>\n"
        case .harnessError:
            let reason = r.reason ?? r.summary
            xml += "      <error message=\"\(attribute(reason))\" type=\"harness-error\">\(text(reason))</error>\n"
        case .inconclusive:
            xml += "      <error message=\"\(attribute(r.summary))\" type=\"inconclusive\">\(text(r.summary))</error>\n"
        default:
            if r.passed == false {
                var message = r.failures.joined(separator: "; ")
                message += (message.isEmpty ? "" : " ") + "(outcome \(r.outcome.rawValue))"
                let body = (r.failures + [r.summary]).joined(separator: "\n")
                xml += "      <failure message=\"\(attribute(message))\" type=\"\(attribute(r.outcome.rawValue))\">"
                xml += text(body) + "</failure>\n"
            }
        }
        xml += "      <system-out>\(text(evidenceSummary(r)))</system-out>\n"
        return xml + "    </testcase>\n"
    }

    /// What a CI reader needs without opening the JSON: outcome, first denial, hang kind, stderr tail.
    static func evidenceSummary(_ r: RunResult) -> String {
        var lines = ["outcome: \(r.outcome.rawValue)", "summary: \(r.summary)"]
        if r.interrupted == true { lines.append("interrupted: the run was torn down by SIGINT/SIGTERM") }
        if let failing = r.failingProcess { lines.append("failing process: \(failing)") }
        if let tests = GoTestReport.headline(r.evidence.tests) { lines.append("go test: \(tests)") }
        if let denial = r.evidence.firstDenial {
            lines.append("first denial: \(denial.syscall) (\(denial.action)) in \(denial.comm) pid \(denial.pid)")
        }
        if let kind = r.hangKind { lines.append("hang kind: \(kind.rawValue)") }
        if let check = r.evidence.restrictionsConfirmed {
            lines.append("restrictions confirmed: \(check.confirmed)")
            lines += check.mismatches.map { "  \($0)" }
        }
        if !r.stderrTail.isEmpty { lines.append("stderr tail:\n\(r.stderrTail)") }
        return lines.joined(separator: "\n")
    }

    /// Escapes element content. Characters XML 1.0 forbids (most C0 controls, e.g. the ESC of a colour
    /// code in stderr) would make the whole file unparseable, so they are written as visible `\xNN` text.
    public static func text(_ s: String) -> String {
        escape(s, inAttribute: false)
    }

    /// Escapes an attribute value; newlines and tabs become character references because XML parsers
    /// normalise literal ones in attributes to spaces.
    public static func attribute(_ s: String) -> String {
        escape(s, inAttribute: true)
    }

    static func escape(_ s: String, inAttribute: Bool) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += inAttribute ? "&quot;" : "\""
            case "'": out += inAttribute ? "&apos;" : "'"
            case "\n": out += inAttribute ? "&#10;" : "\n"
            case "\t": out += inAttribute ? "&#9;" : "\t"
            case "\r": out += "&#13;"
            default:
                if isAllowedInXML(scalar) {
                    out.unicodeScalars.append(scalar)
                } else {
                    out += String(format: "\\x%02x", scalar.value)
                }
            }
        }
        return out
    }

    /// XML 1.0's `Char` production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
    static func isAllowedInXML(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x9, 0xA, 0xD, 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: return true
        default: return false
        }
    }
}
