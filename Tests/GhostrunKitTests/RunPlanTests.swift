import CGhostrun
import Foundation
import XCTest

@testable import GhostrunKit

/// The plan stage alone: no root, no process, no host files (the host is a value).
final class RunPlanTests: XCTestCase {
    let toolchain = Toolchain(goBinary: "/go/bin/go", goroot: "/go", version: GoVersion(major: 1, minor: 23, patch: 4),
                              versionString: "go1.23.4")
    let work = WorkDirectory(root: "/tmp/ghostrun-1-1-abc")

    func host(environment: [String: String] = ["PATH": "/usr/bin:/bin"], kernel: (Int, Int) = (6, 1),
              available: CapabilitySet = .all, files: [String: String] = [:],
              executables: Set<String> = []) -> PlanHost {
        PlanHost(
            environment: environment, kernel: kernel, availableCapabilities: available, handOverDescriptor: 999,
            readFile: { files[$0] },
            lookUpExecutable: { name, search in
                search.split(separator: ":").map { "\($0)/\(name)" }.first(where: executables.contains)
            })
    }

    func scenario(_ yaml: String) throws -> Scenario {
        try XCTUnwrap(ScenarioLoader.parse(text: "name: t\n" + yaml, file: "/s/t.yaml").first)
    }

    func testEnvironmentOrderKeepsLocaleAndTermThenAddsPrivateGoSettingsThenScenarioEnv() throws {
        let environment = ["PATH": "/usr/bin", "GOFLAGS": "-x", "GOPATH": "/root/go", "HOME": "/root", "ZED": "1",
                           "ALPHA": "2", "CGO_ENABLED": "1", "XDG_CACHE_HOME": "/c", "LANG": "C.UTF-8",
                           "LC_ALL": "C", "TERM": "xterm"]
        let plan = try RunPlan.resolve(
            scenario: scenario("run: [go, version]\nenv:\n  HOME: null\n  CACHE: $WORK/cache\n  ALPHA: ${GOROOT}/a\n"),
            toolchain: toolchain, host: host(environment: environment), work: work)
        XCTAssertEqual(plan.spawn.environment, [
            "LANG=C.UTF-8", "LC_ALL=C", "TERM=xterm", "PATH=/go/bin:/usr/bin", "GOCACHE=\(work.gocache)", "GOPATH=\(work.gopath)",
            "GOTMPDIR=\(work.gotmpdir)", "GOTRACEBACK=all", "GOTOOLCHAIN=local", "GOPROXY=off",
            "GOFLAGS=-mod=mod", "CACHE=\(work.work)/cache", "ALPHA=/go/a",
        ])
        XCTAssertEqual(plan.spawn.executable, "/go/bin/go")
        XCTAssertEqual(plan.spawn.arguments, ["go", "version"])
        XCTAssertEqual(plan.workdir, work.work)
    }

    /// Issue 14: a secret in the harness's environment never reaches a stranger's scenario unless passed by name;
    /// a passed name ghostrun sets itself keeps ghostrun's value.
    func testHarnessSecretsStayOutUnlessPassedByName() throws {
        let environment = ["PATH": "/usr/bin", "CI_TOKEN": "s3cret", "AWS_SECRET_ACCESS_KEY": "k", "HOME": "/root"]
        let plain = try RunPlan.resolve(scenario: scenario("run: [go, version]\n"), toolchain: toolchain,
                                        host: host(environment: environment), work: work)
        XCTAssertFalse(plain.spawn.environment.contains { $0.contains("s3cret") || $0.hasPrefix("AWS_") })
        var passing = host(environment: environment)
        passing.passEnvironment = ["CI_TOKEN", "HOME"]
        let passed = try RunPlan.resolve(scenario: scenario("run: [go, version]\n"), toolchain: toolchain,
                                         host: passing, work: work)
        XCTAssertTrue(passed.spawn.environment.contains("CI_TOKEN=s3cret"))
        XCTAssertFalse(passed.spawn.environment.contains { $0.hasPrefix("AWS_") })
        XCTAssertEqual(passed.spawn.environment.filter { $0.hasPrefix("HOME=") }, ["HOME=\(work.home)"])
    }

    func testEnvClearKeepsOnlyPathAndNetworkSettingsAndInheritKeepsEverything() throws {
        let environment = ["PATH": "/usr/bin", "GOFLAGS": "-x", "B": "1"]
        let clear = try RunPlan.resolve(scenario: scenario("run: [go, version]\nenv_clear: true\n"),
                                        toolchain: toolchain, host: host(environment: environment), work: work)
        XCTAssertEqual(clear.spawn.environment,
                       ["PATH=/go/bin:/usr/bin", "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=-mod=mod"])
        var inherit = try scenario("run: [go, version]\n")
        inherit.inheritEnvironment = true
        let inherited = try RunPlan.resolve(scenario: inherit, toolchain: toolchain,
                                            host: host(environment: environment), work: work)
        XCTAssertEqual(inherited.spawn.environment, ["B=1", "GOFLAGS=-x", "PATH=/go/bin:/usr/bin"])
    }

    func testOtherProgramsAreLookedUpOnTheRunsPathOrTheRunIsRefused() throws {
        let found = try RunPlan.resolve(
            scenario: scenario("run: [tool, -v]\nenv:\n  PATH: /opt/tools\n"), toolchain: toolchain,
            host: host(executables: ["/opt/tools/tool", "/usr/bin/tool"]), work: work)
        XCTAssertEqual(found.spawn.executable, "/opt/tools/tool")
        XCTAssertThrowsError(
            try RunPlan.resolve(scenario: scenario("run: [tool]\n"), toolchain: toolchain, host: host(), work: work)
        ) { error in
            XCTAssertEqual("\(error)", "run: tool not found on PATH")
        }
    }

    func testArtifactsAreGivenOrInferredAndAbsolute() throws {
        let build = try RunPlan.resolve(
            scenario: scenario("run: [go, build, -o, out/app, .]\nworkdir: src\nexpect:\n  artifact: $WORK/x\n"),
            toolchain: toolchain, host: host(), work: work)
        XCTAssertEqual(build.workdir, work.work + "/src")
        XCTAssertEqual(build.successArtifact, work.work + "/src/out/app")
        XCTAssertEqual(build.expectArtifact, work.work + "/x")
        // `go install` reads go.mod in the workdir: WorkPreparation has written it by then.
        let install = try RunPlan.resolve(
            scenario: scenario("run: [go, install, ./cmd/tool]\n"), toolchain: toolchain,
            host: host(files: [work.work + "/go.mod": "module example.com/m\n\ngo 1.21\n"]), work: work)
        XCTAssertEqual(install.successArtifact, work.gopath + "/bin/tool")
        let noModule = try RunPlan.resolve(scenario: scenario("run: [go, install, ./cmd/tool]\n"),
                                           toolchain: toolchain, host: host(), work: work)
        XCTAssertNil(noModule.successArtifact)
    }

    func testSeccompFlagsFollowTheSupervisorAndTheKernel() throws {
        let policy = "sandbox:\n  seccomp:\n    default: allow\n    rules:\n      - {syscalls: [eventfd2], action: errno, errno: EPERM}\n"
        let plain = try RunPlan.resolve(scenario: scenario("run: [go, version]\n" + policy), toolchain: toolchain,
                                        host: host(), work: work)
        XCTAssertNotNil(plain.spawn.filter)
        XCTAssertNil(plain.supervisor)
        XCTAssertEqual(plain.spawn.seccompFlags, UInt32(GHOSTRUN_SECCOMP_FILTER_FLAG_LOG))
        XCTAssertEqual(plain.spawn.listenerSocketTarget, -1)
        XCTAssertTrue(plain.requested.seccompFilter)

        let traced = try RunPlan.resolve(scenario: scenario("run: [go, version]\ntrace: true\n" + policy),
                                         toolchain: toolchain, host: host(kernel: (6, 1)), work: work)
        XCTAssertNotNil(traced.supervisor)
        XCTAssertEqual(traced.supervisor?.workRoot, work.root)
        XCTAssertEqual(traced.spawn.listenerSocketTarget, 999)
        XCTAssertEqual(traced.spawn.seccompFlags,
                       UInt32(GHOSTRUN_SECCOMP_FILTER_FLAG_NEW_LISTENER | GHOSTRUN_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV))
        let oldKernel = try RunPlan.resolve(scenario: scenario("run: [go, version]\ntrace: true\n"),
                                            toolchain: toolchain, host: host(kernel: (5, 15)), work: work)
        XCTAssertEqual(oldKernel.spawn.seccompFlags, UInt32(GHOSTRUN_SECCOMP_FILTER_FLAG_NEW_LISTENER))

        let none = try RunPlan.resolve(scenario: scenario("run: [go, version]\n"), toolchain: toolchain,
                                       host: host(), work: work)
        XCTAssertNil(none.spawn.filter)
        XCTAssertEqual(none.spawn.seccompFlags, 0)
        XCTAssertFalse(none.requested.seccompFilter)
    }

    func testCapabilitiesAreCheckedAgainstTheHostAndAttested() throws {
        let yaml = """
            run: [go, version]
            sandbox:
              user: "65534:65534"
              no_new_privs: true
              capabilities: {drop: [ALL], add: [CAP_NET_RAW]}
              rlimits: {nofile: 64}
              cgroup: {pids_max: 16, memory_max: 256MiB, freeze: [{after: 0ms, hold: 1s}]}

            """
        let plan = try RunPlan.resolve(scenario: scenario(yaml), toolchain: toolchain, host: host(), work: work)
        XCTAssertEqual(plan.requested.capEff, CapabilitySet(numbers: [13]).rawValue, "a non-root user keeps it ambient")
        XCTAssertEqual(plan.requested.uid, 65534)
        XCTAssertTrue(plan.requested.noNewPrivs)
        XCTAssertEqual(plan.spawn.rlimits.count, 1)
        XCTAssertEqual(plan.cgroup.pidsMax, 16)
        XCTAssertEqual(plan.freezeSteps.count, 1)
        XCTAssertTrue(plan.warmPageCache, "memory_max reads the toolchain into the page cache first")
        XCTAssertThrowsError(
            try RunPlan.resolve(scenario: scenario(yaml), toolchain: toolchain, host: host(available: []), work: work)
        ) { error in
            XCTAssertTrue("\(error)".contains("which ghostrun itself does not hold"), "\(error)")
        }
    }

    func testWorkPreparationWritesFilesAndPathsWithSubstitutions() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let work = WorkDirectory(root: root)
        try FileManager.default.createDirectory(atPath: work.work, withIntermediateDirectories: true)
        let yaml = """
            run: [go, version]
            files:
              go.mod: "module example.com/m // $WORK"
            paths:
              - {path: $WORK/ro, mkdir: true, mode: "0555"}
              - {path: $WORK/notes/a.txt, content: "at ${GOROOT}"}

            """
        try WorkPreparation.apply(scenario(yaml), toolchain: toolchain, to: work)
        XCTAssertEqual(try String(contentsOfFile: work.work + "/go.mod", encoding: .utf8),
                       "module example.com/m // \(work.work)")
        XCTAssertEqual(try String(contentsOfFile: work.work + "/notes/a.txt", encoding: .utf8), "at /go")
        let mode = try FileManager.default.attributesOfItem(atPath: work.work + "/ro")[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o555)
    }
}
