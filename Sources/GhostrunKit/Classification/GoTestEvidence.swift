import Foundation

/// What became of one Go test, or of one package's test binary (`evidence.tests[].outcome`).
public enum GoTestOutcome: String, Codable, Sendable, CaseIterable {
    case pass
    case fail
    case skip
    /// The test binary died (runtime fatal error, a panic outside a test, a signal); only on package entries.
    case crash
}

/// One entry of the contract's `evidence.tests`: a test (`test` set) or a whole package (`test` null).
public struct GoTestRecord: Codable, Equatable, Sendable {
    /// Import path, e.g. `os/exec`.
    public var package: String
    /// `TestX` or `TestX/sub`; nil for the package's own entry.
    public var test: String?
    public var outcome: GoTestOutcome
    public var elapsedMs: Int?
    /// The last lines this test (or, for a package entry, the binary outside any test) printed, bounded.
    public var outputTail: String
    /// The line that says why: the runtime's headline for a crash, the first message of a failed test,
    /// `panic: test timed out after …` for a timeout.
    public var headline: String?

    enum CodingKeys: String, CodingKey {
        case package, test, outcome
        case elapsedMs = "elapsed_ms"
        case outputTail = "output_tail"
        case headline
    }

    public init(
        package: String, test: String?, outcome: GoTestOutcome, elapsedMs: Int? = nil, outputTail: String = "",
        headline: String? = nil
    ) {
        self.package = package
        self.test = test
        self.outcome = outcome
        self.elapsedMs = elapsedMs
        self.outputTail = outputTail
        self.headline = headline
    }

    // `test` is written as null for package entries, as the contract shows it.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(package, forKey: .package)
        try c.encode(test, forKey: .test)
        try c.encode(outcome, forKey: .outcome)
        try c.encode(elapsedMs, forKey: .elapsedMs)
        try c.encode(outputTail, forKey: .outputTail)
        try c.encodeIfPresent(headline, forKey: .headline)
    }

    /// The name the go command gives a package's test binary: the last element of the import path plus
    /// `.test` (`os/exec` → `exec.test`), which is also its comm in `/proc`.
    public static func binaryName(of package: String) -> String {
        let last = package.split(separator: "/").last.map(String.init) ?? package
        return last + ".test"
    }
}

/// A test that had started and not ended when the output stopped.
public struct GoTestName: Codable, Equatable, Sendable {
    public var package: String
    public var test: String
    public init(package: String, test: String) {
        self.package = package
        self.test = test
    }
}

/// `go test -timeout`'s own panic: the test binary's alarm fired.
public struct GoTestTimeout: Codable, Equatable, Sendable {
    public var package: String
    /// `panic: test timed out after 2s`
    public var headline: String
    /// The tests the alarm found running (from the events, or Go 1.21+'s `running tests:` list).
    public var running: [String]
    /// Whether a goroutine other than the alarm's own was on a CPU (`[running]`/`[runnable]`) in the dump.
    public var spinning: Bool
    public init(package: String, headline: String, running: [String], spinning: Bool) {
        self.package = package
        self.headline = headline
        self.running = running
        self.spinning = spinning
    }
}

/// Everything a `go test` run showed about its packages and tests: the classifier's view of it.
public struct GoTestRun: Codable, Equatable, Sendable {
    /// Packages (test null) and tests in the order they first appeared.
    public var records: [GoTestRecord]
    /// Tests still running when the output stopped (a hang, or a binary that died inside them).
    public var running: [GoTestName]
    public var timeouts: [GoTestTimeout]
    /// Passed or skipped tests left out of `records` to keep a huge suite's evidence bounded.
    public var omittedPassed: Int
    /// Whether the output was test2json events (`-json`) or plain `go test` text.
    public var json: Bool

    enum CodingKeys: String, CodingKey {
        case records, running, timeouts
        case omittedPassed = "omitted_passed"
        case json
    }

    public init(
        records: [GoTestRecord] = [], running: [GoTestName] = [], timeouts: [GoTestTimeout] = [],
        omittedPassed: Int = 0, json: Bool = true
    ) {
        self.records = records
        self.running = running
        self.timeouts = timeouts
        self.omittedPassed = omittedPassed
        self.json = json
    }

    /// Package entries whose test binary died.
    public var crashedPackages: [GoTestRecord] { records.filter { $0.test == nil && $0.outcome == .crash } }
    /// Tests (not packages) that failed.
    public var failedTests: [GoTestRecord] { records.filter { $0.test != nil && $0.outcome == .fail } }

    /// Failed tests without their failed parents: `TestA/sub` failing makes `TestA` fail too, and naming
    /// the subtest is what tells the user where to look.
    public var innermostFailedTests: [GoTestRecord] {
        let failed = failedTests
        return failed.filter { parent in
            !failed.contains { $0.package == parent.package && $0.test!.hasPrefix(parent.test! + "/") }
        }
    }

    /// `TestA, TestB (+3 more)`: failed tests for one-line reports.
    public func failedTestList(limit: Int = 3) -> String? {
        let names = innermostFailedTests.map { $0.test! }
        guard !names.isEmpty else { return nil }
        var text = names.prefix(limit).joined(separator: ", ")
        if names.count > limit { text += " (+\(names.count - limit) more)" }
        return text
    }
}
