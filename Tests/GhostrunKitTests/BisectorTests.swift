import XCTest

@testable import GhostrunKit

/// ddmin's search on its own: the runner here decides `ok` from the rules a probe added, so the search order and
/// the run count can be checked exactly. The real go is bisected in GhostrunCLITests.
final class BisectorTests: XCTestCase {
    private func failing(_ refused: [String], needs culprits: Set<String>, toleratesENOSYS: Set<String> = [])
        -> (Scenario) -> RunResult
    {
        return { scenario in
            let rules = scenario.sandbox.seccomp?.rules.filter { $0.location?.file == "<bisect>" } ?? []
            var answers: [String: SeccompAction] = [:]
            for rule in rules { answers[rule.syscalls[0]] = rule.action }
            let ok = culprits.allSatisfy { name in
                answers[name] == .allow
                    || (toleratesENOSYS.contains(name) && answers[name] == .errno(ErrnoName.value(of: "ENOSYS")!))
            }
            var result = RunResult(name: scenario.name, goVersion: "1.19.8", outcome: ok ? .ok : .crash, summary: "")
            if scenario.trace == .all {
                result.evidence.denials = refused.enumerated().map { index, name in
                    var denial = Denial(
                        pid: 1, comm: "go", syscall: name, action: "errno", errno: "EPERM", timeMs: index,
                        source: "supervisor")
                    denial.rule = "default"
                    return denial
                }
            }
            return result
        }
    }

    private let policed: Scenario = {
        var scenario = Scenario(
            name: "s", run: ["go", "version"], location: SourceLocation(file: "s.yaml", line: 1),
            scenarioDirectory: "/")
        scenario.sandbox.seccomp = SeccompPolicy(profile: "docker-default")
        return scenario
    }()

    func testFindsTwoCulpritsAmongEightInFewRuns() throws {
        let names = ["rseq", "a", "b", "clone3", "c", "d", "e", "f"]
        let bisector = Bisector(
            scenario: policed, maxRuns: 40,
            runner: failing(names, needs: ["clone3", "e"], toleratesENOSYS: ["clone3"]))
        let report = try bisector.bisect()
        XCTAssertEqual(report.culprits.map(\.syscall).sorted(), ["clone3", "e"])
        XCTAssertEqual(report.culprits.first { $0.syscall == "clone3" }?.tolerated, ["ENOSYS", "allow"])
        XCTAssertEqual(report.culprits.first { $0.syscall == "e" }?.tolerated, ["allow"])
        XCTAssertTrue(report.minimal)
        // 1 traced, 1 with all eight allowed, 15 ddmin probes (the culprits sit in different halves), 4 answers.
        XCTAssertEqual(report.runs, 21)
        XCTAssertEqual(report.candidates.count, 8)
    }

    func testTheCapStopsTheSearchAndSaysSo() throws {
        let names = (0..<16).map { "n\($0)" }
        let bisector = Bisector(scenario: policed, maxRuns: 4, runner: failing(names, needs: ["n3", "n12"]))
        let report = try bisector.bisect()
        XCTAssertFalse(report.minimal)
        XCTAssertLessThanOrEqual(report.runs, 4)
        XCTAssertTrue(Set(report.culprits.map(\.syscall)).isSuperset(of: ["n3", "n12"]))
    }

    func testAFailureSeccompDoesNotCauseIsReported() {
        let bisector = Bisector(scenario: policed, maxRuns: 10, runner: failing(["rseq"], needs: ["never-refused"]))
        XCTAssertThrowsError(try bisector.bisect()) { error in
            XCTAssertEqual((error as? BisectError)?.exitStatus, 1)
        }
        XCTAssertEqual(bisector.runs, 2)
    }
}
