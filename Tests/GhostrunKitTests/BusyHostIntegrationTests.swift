import Foundation
import XCTest

@testable import GhostrunKit

/// Verdicts on a busy host, for real: CPU hogs beside the run starve it (PSI measures the stall of the run's own
/// cgroup v2), and the outcome stays the one a quiet host gives. The hogs are this test's own processes, each
/// bounded by `timeout`, so a killed test run leaves none spinning.
final class BusyHostIntegrationTests: XCTestCase {
    override func setUpWithError() throws {
        try requireRoot()
        try requireHost(CgroupHierarchies.discover().v2 != nil, "needs a cgroup v2 hierarchy (PSI)")
    }

    /// `sh` counting to N: pure CPU in one thread, no Go toolchain needed.
    private func busy(_ count: Int, timeout: Duration, hangAfter: Duration = .seconds(30), then: String = "")
        throws -> Scenario
    {
        var s = try scenario("""
            name: busy
            run: [sh, -c, 'i=0; while [ $i -lt \(count) ]; do i=$((i+1)); done\(then)']
            """)
        s.timeout = timeout
        s.hangAfter = hangAfter
        return s
    }

    /// Starts `count` CPU hogs (each ends by itself after 120 s at the latest), runs `body`, stops them.
    private func withHogs<T>(_ count: Int, _ body: () throws -> T) throws -> T {
        var hogs: [Process] = []
        defer {
            for hog in hogs where hog.isRunning { hog.terminate() }
            for hog in hogs { hog.waitUntilExit() }
        }
        for _ in 0..<count {
            let hog = Process()
            hog.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            hog.arguments = ["120", "sh", "-c", "while :; do :; done"]
            try hog.run()
            hogs.append(hog)
        }
        usleep(200_000)
        return try body()
    }

    /// The CPU time the workload needs, from the shell's own `times` (user + system): unlike wall time, the same on
    /// a busy machine as on a quiet one, so the limits below are tight whatever else runs.
    private func quietDuration(_ count: Int) throws -> Duration {
        var s = try busy(count, timeout: .seconds(120), then: "; times")
        s.hangAfter = .seconds(120)
        let result = ScenarioRunner().run(s, toolchain: try anyToolchain())
        XCTAssertEqual(result.outcome, .ok, result.summary)
        // `0m0.31s 0m0.00s` (the shell), then its children's line.
        let first = result.stdoutTail.split(separator: "\n").first.map(String.init) ?? ""
        let seconds = first.split(separator: " ").compactMap { field -> Double? in
            guard let m = field.firstIndex(of: "m"), field.hasSuffix("s") else { return nil }
            let minutes = Double(field[..<m]) ?? 0
            return Double(field[field.index(after: m)..<field.index(before: field.endIndex)]).map { minutes * 60 + $0 }
        }.reduce(0, +)
        XCTAssertGreaterThan(seconds, 0, "times printed: \(result.stdoutTail)")
        return .milliseconds(max(Int(seconds * 1000), 200))
    }

    private func anyToolchain() throws -> Toolchain {
        try TestToolchains.require(TestToolchains.all.first, "any Go")
    }

    func testAStarvedRunWithinItsRunnableTimeIsOkAndSaysHowStalledItWas() throws {
        let count = 300_000
        let quiet = try quietDuration(count)
        let limit = quiet * 2
        // Six hogs on two CPUs leave the run about 2/7 of one; other work on the machine may take more. The bound is
        // set wide so that this test is about the stretching; the next one is about the bound.
        var options = RunnerOptions()
        options.maxStretch = 20
        let result = try withHogs(6) {
            ScenarioRunner(options: options).run(try busy(count, timeout: limit), toolchain: try anyToolchain())
        }
        XCTAssertEqual(result.outcome, .ok, result.summary)
        let stall = try XCTUnwrap(result.evidence.stall, "evidence.stall")
        XCTAssertEqual(stall.source, .psi)
        XCTAssertGreaterThan(stall.stalledMs, 0)
        // The point of the test: the run needed more wall time than its timeout, and that was not a hang.
        XCTAssertGreaterThan(result.durationMs, limit.milliseconds,
                             "6 hogs did not slow a run of \(quiet) CPU past its timeout: \(stall)")
        XCTAssertLessThan(stall.runnableMs, limit.milliseconds)
        XCTAssertNotNil(stall.summary(), "the result line says how stalled the run was")
    }

    func testPastTheStretchBoundTheResultIsInconclusiveNotAHang() throws {
        let count = 300_000
        let quiet = try quietDuration(count)
        var options = RunnerOptions()
        options.maxStretch = 1  // the wall bound is the timeout itself: any stall makes the run inconclusive
        let result = try withHogs(6) {
            ScenarioRunner(options: options).run(try busy(count, timeout: quiet * 2), toolchain: try anyToolchain())
        }
        XCTAssertEqual(result.outcome, .inconclusive, result.summary)
        XCTAssertNil(result.passed)
        XCTAssertEqual(result.evidence.stall?.boundReached, true)
        XCTAssertTrue(result.summary.contains("the host stalled the run"), result.summary)
        XCTAssertEqual(ExitStatus.forRun([result]), ExitStatus.harnessError)
    }

    func testTheSchedstatFallbackAlsoKeepsAStarvedRunOk() throws {
        let count = 300_000
        let quiet = try quietDuration(count)
        var options = RunnerOptions()
        options.schedstatStalls = true
        options.maxStretch = 20
        let result = try withHogs(6) {
            ScenarioRunner(options: options).run(try busy(count, timeout: quiet * 2), toolchain: try anyToolchain())
        }
        XCTAssertEqual(result.outcome, .ok, result.summary)
        XCTAssertEqual(result.evidence.stall?.source, .schedstat)
        XCTAssertGreaterThan(result.evidence.stall?.stalledMs ?? 0, 0)
    }

    /// `freeze: {after: 0ms}` under load (the busy-host benchmark found `go-version-frozen` ok beside stress-ng: the
    /// monitor's first round came after `go version` had ended). The child now freezes its cgroup right before
    /// execve, so the program never runs a single instruction before the freeze: `echo` prints nothing, every time.
    func testAFreezeAtZeroMillisecondsWinsEveryTimeUnderLoad() throws {
        var s = try scenario("""
            name: frozen-at-start
            run: [sh, -c, 'echo ran']
            sandbox:
              cgroup:
                freeze: {after: 0ms}
            """)
        s.timeout = .seconds(4)
        s.hangAfter = .milliseconds(800)
        let results = try withHogs(6) {
            try (0..<5).map { _ in ScenarioRunner().run(s, toolchain: try anyToolchain()) }
        }
        for result in results {
            XCTAssertEqual(result.outcome, .hang, result.summary)
            XCTAssertEqual(result.hangKind, .frozen, result.summary)
            XCTAssertEqual(result.stdoutTail, "", "the program ran before the freeze")
        }
    }

    /// program-blocked under load (issue 18): CPU-heavy work, then the tree sleeps in a syscall. The hang is
    /// `blocked`, whatever CPU the work used before, and it fires by hang_after, not by a timeout the load ate.
    func testWorkThenABlockedSyscallIsABlockedHangUnderLoad() throws {
        let count = 100_000
        let quiet = try quietDuration(count)
        let result = try withHogs(6) {
            ScenarioRunner().run(
                try busy(count, timeout: quiet * 2 + .seconds(2), hangAfter: .seconds(1), then: "; sleep 100"),
                toolchain: try anyToolchain())
        }
        XCTAssertEqual(result.outcome, .hang, result.summary)
        XCTAssertEqual(result.hangKind, .blocked, result.summary)
        XCTAssertTrue(result.summary.contains("no progress"), result.summary)
    }
}

/// Seeds that reproduce whatever the scheduling (issue 18): the same seed injects into the same calls of the same
/// processes on a quiet and on a loaded machine. EINTR on `openat`, which Go retries, keeps the build's process tree
/// the same in both runs, so any difference would be the scheduler's.
final class SeededFaultIntegrationTests: XCTestCase {
    override func setUpWithError() throws {
        try requireRoot()
    }

    func testOneSeedInjectsIntoTheSameCallsQuietAndLoaded() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        let yaml = """
            name: seeded-compile-openat
            run: [go, build, -o, out/app, .]
            seed: 7
            faults:
              - {syscall: openat, errno: EINTR, process: compile, path: "**/*.go", probability: 0.06}
            fixture: ../fixtures/hello
            """
        func injected(_ result: RunResult) -> [String] {
            result.evidence.denials.filter { $0.action == "injected" }.map {
                "\($0.process ?? "?") | \($0.path ?? "?") | \($0.match ?? 0)"
            }.sorted()
        }
        let quiet = ScenarioRunner().run(try scenario(yaml), toolchain: go)
        XCTAssertEqual(quiet.outcome, .ok, quiet.summary)
        var hogs: [Process] = []
        defer {
            for hog in hogs where hog.isRunning { hog.terminate() }
            for hog in hogs { hog.waitUntilExit() }
        }
        for _ in 0..<4 {
            let hog = Process()
            hog.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            hog.arguments = ["300", "sh", "-c", "while :; do :; done"]
            try hog.run()
            hogs.append(hog)
        }
        let loaded = ScenarioRunner().run(try scenario(yaml), toolchain: go)
        XCTAssertEqual(loaded.outcome, .ok, loaded.summary)
        let a = injected(quiet), b = injected(loaded)
        XCTAssertGreaterThan(a.count, 5, "a 6% fault on every compile's .go opens injects some")
        // Past 100 injections the evidence keeps the first 100 by time (DenialLog), which scheduling decides.
        XCTAssertLessThan(a.count, DenialLog.defaultPerKey, "every injected call is listed, none folded")
        XCTAssertEqual(quiet.evidence.trace?.injected, a.count)
        XCTAssertTrue(a.allSatisfy { $0.hasPrefix("compile ") }, "\(a.prefix(3))")
        let onlyQuiet = Set(a).subtracting(b).sorted(), onlyLoaded = Set(b).subtracting(a).sorted()
        XCTAssertEqual(a, b, "injected only quiet: \(onlyQuiet.prefix(5)); only loaded: \(onlyLoaded.prefix(5))")
    }
}
