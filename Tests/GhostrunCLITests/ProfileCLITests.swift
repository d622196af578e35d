import Foundation
import XCTest

@testable import GhostrunKit

/// `ghostrun profile show`, `run --seccomp-profile`, and bad profiles as exit status 2.
extension CLITests {
    func testProfileShowExplainsEachSyscall() throws {
        let text = try ghostrun([
            "profile", "show", "scenarios/profiles/docker/docker-v19.03.15.json",
            "--caps", "docker-default",
        ])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("ENOSYS stub: syscalls numbered above 333"), text.stdout)
        XCTAssertTrue(text.stdout.contains("chown32: not a syscall of"), text.stdout)
        let json = try ghostrun(["profile", "show", "docker-default", "--caps", "docker-default", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let report = try JSONDecoder().decode(ProfileReport.self, from: Data(json.stdout.utf8))
        let clone3 = try XCTUnwrap(report.syscalls.first { $0.name == "clone3" })
        XCTAssertEqual(clone3.action, "errno:ENOSYS")
        XCTAssertEqual(clone3.decidedBy, "docker-default syscalls[20]")
        XCTAssertEqual(report.syscalls.first { $0.name == "mount" }?.decidedBy, "docker-default defaultAction")
        let crun = try ghostrun(["profile", "show", "docker-default", "--runtime", "crun", "--json"])
        XCTAssertNil(try JSONDecoder().decode(ProfileReport.self, from: Data(crun.stdout.utf8)).enosysAbove)
    }

    func testBadProfilesAreExitTwoNamingFilePathAndScenario() throws {
        let profile = write(
            "bad-profile.json",
            """
            {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
              {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
              {"names": ["write"], "action": "SCMP_ACT_ALOW"}]}
            """)
        let scenarioFile = write(
            "s.yaml",
            """
            name: under-bad-profile
            run: [go, version]
            sandbox:
              seccomp:
                profile: bad-profile.json
            """)
        let bad = try ghostrun(["run", scenarioFile])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains(scenarioFile + ":5: sandbox.seccomp.profile"), bad.stderr)
        XCTAssertTrue(
            bad.stderr.contains("bad-profile.json: syscalls[1].action: unknown action `SCMP_ACT_ALOW`"),
            bad.stderr)
        XCTAssertTrue(bad.stderr.contains("did you mean `SCMP_ACT_ALLOW`"), bad.stderr)
        XCTAssertFalse(bad.stdout.contains("under-bad-profile@"), "a run started: \(bad.stdout)")

        let missing = write("m.yaml", "name: m\nrun: [go, version]\nsandbox:\n  seccomp:\n    profile: nowhere.json\n")
        let missingResult = try ghostrun(["run", missing])
        XCTAssertEqual(missingResult.status, 2)
        XCTAssertTrue(missingResult.stderr.contains("nowhere.json: cannot read the profile"), missingResult.stderr)

        let malformed = write("broken.json", "{\"defaultAction\": ")
        let malformedScenario = write(
            "b.yaml", "name: b\nrun: [go, version]\nsandbox:\n  seccomp:\n    profile: broken.json\n")
        let malformedResult = try ghostrun(["run", malformedScenario])
        XCTAssertEqual(malformedResult.status, 2)
        XCTAssertTrue(malformedResult.stderr.contains("broken.json: not valid JSON"), malformedResult.stderr)

        let unknown = write(
            "u.yaml", "name: u\nrun: [go, version]\nsandbox:\n  seccomp:\n    profile: docker-defualt\n")
        let unknownResult = try ghostrun(["run", unknown])
        XCTAssertEqual(unknownResult.status, 2)
        XCTAssertTrue(unknownResult.stderr.contains("unknown built-in profile"), unknownResult.stderr)
        XCTAssertTrue(
            unknownResult.stderr.contains("docker-default, podman-default, containerd-default"),
            unknownResult.stderr)

        let flag = try ghostrun([
            "run", write("ok.yaml", "name: ok\nrun: [go, version]\n"),
            "--seccomp-profile", profile,
        ])
        XCTAssertEqual(flag.status, 2)
        XCTAssertTrue(flag.stderr.contains("--seccomp-profile: "), flag.stderr)
        XCTAssertTrue(flag.stderr.contains("syscalls[1].action"), flag.stderr)
        XCTAssertEqual(try ghostrun(["profile", "show", "podman-defualt"]).status, 2)
        // A syscall name unknown to the kernel tables stays an error in scenario rules: it is a typo there.
        let typo = write(
            "t.yaml",
            """
            name: t
            run: [go, version]
            sandbox:
              seccomp:
                profile: docker-default
                rules: [{syscalls: [pidfd_opn], action: trap}]
            """)
        let typoResult = try ghostrun(["run", typo])
        XCTAssertEqual(typoResult.status, 2)
        XCTAssertTrue(typoResult.stderr.contains("unknown syscall `pidfd_opn`"), typoResult.stderr)
    }

    func testSeccompProfileOptionAppliesToScenariosWithoutOne() throws {
        try requireRoot()
        let plain = write("plain.yaml", "name: plain-version\nrun: [go, version]\n")
        let result = try ghostrun([
            "run", plain, "--go-version", "1.19", "--seccomp-profile", "docker-default",
            "--json", temporary + "/r.json",
        ])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let runFile = try JSONDecoder().decode(
            RunFile.self, from: Data(contentsOf: URL(fileURLWithPath: temporary + "/r.json")))
        XCTAssertEqual(runFile.results.first?.evidence.policy?.profile, "docker-default")
        XCTAssertEqual(runFile.results.first?.outcome, .ok)
    }
}
