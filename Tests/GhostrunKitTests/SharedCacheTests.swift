import Foundation
import XCTest

@testable import GhostrunKit

/// Item 12 of issue 11: `--shared-cache DIR`, opt-in GOCACHE shared by the runs of one toolchain.
final class SharedCacheTests: XCTestCase {
    let toolchain = Toolchain(goBinary: "/go/bin/go", goroot: "/go", version: GoVersion(major: 1, minor: 23, patch: 4),
                              versionString: "go1.23.4")
    let work = WorkDirectory(root: "/tmp/ghostrun-1-1-abc")
    let host = PlanHost(environment: ["PATH": "/usr/bin"], kernel: (6, 1), availableCapabilities: .all,
                        handOverDescriptor: 999, readFile: { _ in nil }, lookUpExecutable: { _, _ in nil })

    private func gocache(_ yaml: String, shared: String?) throws -> String? {
        let scenario = try XCTUnwrap(ScenarioLoader.parse(text: "name: t\n" + yaml, file: "/s/t.yaml").first)
        let plan = try RunPlan.resolve(scenario: scenario, toolchain: toolchain, host: host, work: work,
                                       sharedCache: shared)
        return plan.spawn.environment.last { $0.hasPrefix("GOCACHE=") }.map { String($0.dropFirst(8)) }
    }

    func testSharedCacheOnlyWhereTheScenarioLeavesTheCacheAlone() throws {
        XCTAssertEqual(try gocache("run: [go, version]\n", shared: nil), work.gocache, "private by default")
        XCTAssertEqual(try gocache("run: [go, version]\n", shared: "/c/go1.23.4"), "/c/go1.23.4")
        XCTAssertEqual(try gocache("run: [go, version]\nenv:\n  GOCACHE: /mine\n", shared: "/c/go1.23.4"), "/mine")
        XCTAssertEqual(try gocache("run: [go, version]\nsandbox:\n  user: 12345\n", shared: "/c/go1.23.4"),
                       work.gocache, "another user keeps a private cache")
        XCTAssertEqual(
            try gocache("run: [go, version]\nfaults:\n  - syscall: openat\n    errno: EACCES\n", shared: "/c/go1.23.4"),
            work.gocache, "faults keep a private cache")
        XCTAssertNil(try gocache("run: [go, version]\nenv_clear: true\n", shared: "/c/go1.23.4"))
        XCTAssertEqual(try gocache("run: [go, version]\nsandbox:\n  cgroup:\n    pids_max: 20\n", shared: "/c/go1.23.4"),
                       work.gocache, "a limit on the build measures the compile")
        XCTAssertEqual(try gocache("run: [go, version]\nsandbox:\n  rlimits:\n    nofile: 20\n", shared: "/c/go1.23.4"),
                       work.gocache)
    }

    /// A real build fills the shared cache; a later run of the same toolchain finds its package up to date (not
    /// stale), where a run with a private cache does not.
    func testRunsOfOneToolchainShareTheCache() throws {
        try requireRoot()
        let toolchain = try TestToolchains.require(TestToolchains.static123, "static go >= 1.23")
        let shared = NSTemporaryDirectory() + "ghostrun-shared-cache-\(UUID().uuidString)"
        defer { WorkDirectory.removeTree(shared) }
        var options = RunnerOptions()
        options.sharedCache = shared
        let sharing = ScenarioRunner(options: options)
        let files = """
            files:
              go.mod: |
                module example.com/hello
                go 1.19
              main.go: |
                package main
                func main() { println("alive") }
            """
        let build = "name: shared-build\nrun: [go, build, -o, out/app, .]\nexpect:\n  outcome: ok\n" + files
        let stale = "name: shared-stale\nrun: [go, list, -f, \"{{.Stale}}\", runtime]\nexpect:\n  outcome: ok\n" + files
        let first = sharing.run(try scenario(build), toolchain: toolchain)
        XCTAssertEqual(first.passed, true, first.summary)
        XCTAssertTrue(FileManager.default.fileExists(atPath: shared + "/go" + toolchain.label + "/README"))
        let warm = sharing.run(try scenario(stale), toolchain: toolchain)
        XCTAssertEqual(warm.stdoutTail, "false\n", "built by the earlier run: \(warm.stderrTail)")
        let cold = ScenarioRunner().run(try scenario(stale), toolchain: toolchain)
        XCTAssertEqual(cold.stdoutTail, "true\n", "a private cache starts empty: \(cold.stderrTail)")
    }
}
