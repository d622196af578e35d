import Foundation
import XCTest

/// A SIGKILLed ghostrun during a run with its own mount and network namespaces: the run's processes die, and the
/// host's mount table and set of network namespaces are exactly what they were.
final class NamespaceCLITests: XCTestCase {
    var binary: String {
        ProcessInfo.processInfo.environment["GHOSTRUN_BINARY"] ?? CLITests.root + "/.build/debug/ghostrun"
    }

    func pids(withCommandLineContaining marker: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            return String(decoding: data, as: UTF8.self).contains(marker) && !status.contains("State:\tZ")
        }
    }

    /// Every network namespace any process is in.
    private func networkNamespaces() -> Set<String> {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return Set(entries.compactMap { Int32($0) }.compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\($0)/ns/net")
        })
    }

    /// ghostrun's own mounts in the host's table: a line naming a run's work tree or hermetic stage
    /// (`/tmp/ghostrun-PID-...`) or a run cgroup (`/ghostrun/r...`). A run keeps its mounts in its own namespace, so
    /// after it there must be none that was not there before. Other programs' mounts may come and go meanwhile
    /// (containers, builds, the mount churner under `/tmp/ghostrun-mount-churn`): the whole table is not compared.
    func ghostrunMounts() -> Set<String> {
        let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return Set(table.split(separator: "\n").map(String.init).filter { line in
            if line.contains("/ghostrun/r") { return true }
            return line.range(of: #"/ghostrun-[0-9]+-"#, options: .regularExpression) != nil
        })
    }

    func testSigkillDuringANamespacedRunLeavesMountsAndNetworkNamespacesAsBefore() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary), "build ghostrun first (\(binary))")
        if geteuid() != 0 {
            if ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"] == "1" { XCTFail("needs root") }
            throw XCTSkip("needs root")
        }
        let marker = "ghostrun-ns-kill-\(UUID().uuidString)"
        let file = NSTemporaryDirectory() + "ghostrun-ns-kill-scenario-\(getpid()).yaml"
        try """
            name: ns-kill
            run: [/bin/sh, -c, "sleep 60; : \(marker)"]
            timeout: 120s
            hang_after: 100s
            sandbox:
              network: loopback
              mounts:
                - {path: /, readonly: true}
                - {path: /tmp, tmpfs: 16MiB, noexec: true}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let mountsBefore = ghostrunMounts()
        let namespacesBefore = networkNamespaces()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["run", file]
        process.environment = CLITests.environment([:])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        var running: [Int32] = []
        while Date() < deadline {
            running = pids(withCommandLineContaining: marker).filter { $0 != process.processIdentifier }
            if !running.isEmpty { break }
            usleep(50_000)
        }
        XCTAssertFalse(running.isEmpty, "the run never started")
        // The run really is in its own namespaces while it runs.
        let pid = try XCTUnwrap(running.first)
        let runNet = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
        let runMnt = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
        XCTAssertNotEqual(runNet, try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net"))
        XCTAssertNotEqual(runMnt, try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt"))
        XCTAssertFalse(namespacesBefore.contains(runNet))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let gone = Date().addingTimeInterval(15)
        while Date() < gone && !pids(withCommandLineContaining: marker).isEmpty { usleep(50_000) }
        XCTAssertEqual(pids(withCommandLineContaining: marker), [], "the run's processes survived")
        XCTAssertEqual(ghostrunMounts().subtracting(mountsBefore), [], "ghostrun left a mount on the host")
        // Other runs on the machine may come and go: the namespace this run had must be gone (no process holds
        // it, and ghostrun never bind-mounts one), and no namespace that existed before is missing.
        // `sleep` (no marker in its command line) outlives `sh` until the reaper kills the run's cgroup.
        let namespaceGone = Date().addingTimeInterval(15)
        while Date() < namespaceGone && networkNamespaces().contains(runNet) { usleep(50_000) }
        let after = networkNamespaces()
        XCTAssertFalse(after.contains(runNet), "the run's network namespace \(runNet) is still in use")
        XCTAssertTrue(after.contains(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")))
    }
}
