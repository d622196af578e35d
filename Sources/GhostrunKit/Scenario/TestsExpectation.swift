import Foundation
import Yams

/// `expect.tests`: which Go tests a run must show in which state, e.g. `{failed: [TestX], crashed: [syscall]}`.
///
/// A test is named `TestX`, `TestX/sub`, or with its package: `os/exec.TestX`, `exec.TestX`. A package in
/// `crashed` is named by import path, its last element or its binary (`os/exec`, `exec`, `exec.test`). Each
/// list names what must be in that state; an empty list means nothing may be (`failed: []`: no test failed).
public struct TestsExpectation: Codable, Equatable, Sendable {
    public var failed: [String]?
    public var passed: [String]?
    public var skipped: [String]?
    public var crashed: [String]?
    public init(failed: [String]? = nil, passed: [String]? = nil, skipped: [String]? = nil, crashed: [String]? = nil) {
        self.failed = failed
        self.passed = passed
        self.skipped = skipped
        self.crashed = crashed
    }

    public static let keys = ["failed", "passed", "skipped", "crashed"]

    /// Whether `name` (as written in the scenario) names this test.
    static func names(_ name: String, test record: GoTestRecord) -> Bool {
        guard let test = record.test else { return false }
        if name == test { return true }
        guard name.hasSuffix("." + test) else { return false }
        let package = String(name.dropLast(test.count + 1))
        return names(package, package: record.package)
    }

    /// Whether `name` names this package: its import path, last element or test binary.
    static func names(_ name: String, package: String) -> Bool {
        name == package || name == package.split(separator: "/").last.map(String.init)
            || name == GoTestRecord.binaryName(of: package)
    }
}

extension ScenarioParser {
    /// `expect.tests`, strictly: unknown keys, non-lists and empty names are errors with the file and line.
    func testsExpectation(_ node: Node, _ path: String) throws -> TestsExpectation {
        var result = TestsExpectation()
        for entry in try reader.mapping(node, path, allowed: TestsExpectation.keys) {
            reader.attempt {
                let items = try reader.stringList(entry.value, entry.path)
                for (name, itemNode) in items where name.trimmingCharacters(in: .whitespaces).isEmpty {
                    throw reader.error(itemNode, entry.path, "a test or package name must not be empty")
                }
                let names = items.map(\.0)
                if entry.key == "crashed",
                    let bad = items.first(where: { $0.0.hasPrefix("Test") && !$0.0.contains("/") })
                {
                    throw reader.error(
                        bad.1, entry.path, "`\(bad.0)` is a test name; `crashed` lists packages whose test binary died",
                        hint: "a test that ran when its binary died is `failed`; name the package here, e.g. `syscall`")
                }
                switch entry.key {
                case "failed": result.failed = names
                case "passed": result.passed = names
                case "skipped": result.skipped = names
                case "crashed": result.crashed = names
                default: break
                }
            }
        }
        return result
    }
}

extension ExpectationCheck {
    /// Each named test must be in the listed state; an empty list means none may be.
    static func checkTests(_ e: TestsExpectation, _ run: GoTestRun?) -> [String] {
        guard let run else {
            return ["tests: expected go test results, but the run printed no go test output"]
        }
        var failures: [String] = []
        let lists: [(String, [String]?, GoTestOutcome)] = [
            ("failed", e.failed, .fail), ("passed", e.passed, .pass), ("skipped", e.skipped, .skip),
        ]
        for (key, names, outcome) in lists {
            guard let names else { continue }
            let inState = run.records.filter { $0.test != nil && $0.outcome == outcome }
            if names.isEmpty {
                if !inState.isEmpty {
                    let shown = inState.prefix(3).map { $0.test! }.joined(separator: ", ")
                    failures.append("tests.\(key): expected none, got \(inState.count) (\(shown))")
                }
                continue
            }
            for name in names where !inState.contains(where: { TestsExpectation.names(name, test: $0) }) {
                let seen = run.records.first(where: { TestsExpectation.names(name, test: $0) })
                let got =
                    seen.map { "it was \($0.outcome.rawValue)" }
                    ?? (run.running.contains(where: { $0.test == name }) ? "it was still running" : "it did not run")
                failures.append("tests.\(key): expected \(name) to be \(outcome.rawValue), \(got)")
            }
        }
        if let names = e.crashed {
            let crashed = run.crashedPackages
            if names.isEmpty, !crashed.isEmpty {
                failures.append("tests.crashed: expected none, got " + crashed.map(\.package).joined(separator: ", "))
            }
            for name in names where !crashed.contains(where: { TestsExpectation.names(name, package: $0.package) }) {
                let seen = run.records.first(where: {
                    $0.test == nil && TestsExpectation.names(name, package: $0.package)
                })
                failures.append(
                    "tests.crashed: expected the \(name) test binary to crash, "
                        + (seen.map { "the package was \($0.outcome.rawValue)" } ?? "the package did not run"))
            }
        }
        return failures
    }
}
