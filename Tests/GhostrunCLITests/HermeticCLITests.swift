import Foundation
import XCTest

/// A SIGKILLed ghostrun during a hermetic run: the run saw its own writes to the host's root while it ran, the host
/// never did, and afterwards the run's processes, its work tree and its mounts are gone.
extension NamespaceCLITests {
    func testSigkillDuringAHermeticRunLeavesTheHostAsBefore() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: binary), "build ghostrun first (\(binary))")
        if geteuid() != 0 {
            if ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"] == "1" { XCTFail("needs root") }
            throw XCTSkip("needs root")
        }
        let marker = "ghostrun-hermetic-kill-\(UUID().uuidString)"
        let probe = "/\(marker)"
        let file = NSTemporaryDirectory() + "ghostrun-hermetic-kill-\(getpid()).yaml"
        try """
            name: hermetic-kill
            run: [/bin/sh, -c, "echo written > \(probe); sleep 60; : \(marker)"]
            timeout: 120s
            hang_after: 100s
            """.write(toFile: file, atomically: true, encoding: .utf8)
        defer {
            unlink(file)
            unlink(probe)
        }
        let mountsBefore = ghostrunMounts()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["run", file]
        process.environment = CLITests.environment([:])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ghostrun = process.processIdentifier
        let deadline = Date().addingTimeInterval(60)
        var running: [Int32] = []
        while Date() < deadline {
            running = pids(withCommandLineContaining: marker).filter { $0 != ghostrun }
            if !running.isEmpty, let pid = running.first,
                FileManager.default.fileExists(atPath: "/proc/\(pid)/root\(probe)")
            {
                break
            }
            usleep(50_000)
        }
        let pid = try XCTUnwrap(running.first, "the run never started")
        // The run sees what it wrote at the root; the host does not.
        XCTAssertEqual(try? String(contentsOfFile: "/proc/\(pid)/root\(probe)", encoding: .utf8), "written\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: probe), "the run's write reached the host")

        kill(ghostrun, SIGKILL)
        process.waitUntilExit()
        let gone = Date().addingTimeInterval(15)
        func workTrees() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter {
                $0.hasPrefix("ghostrun-\(ghostrun)-")
            }
        }
        while Date() < gone && (!pids(withCommandLineContaining: marker).isEmpty || !workTrees().isEmpty) {
            usleep(50_000)
        }
        XCTAssertEqual(pids(withCommandLineContaining: marker), [], "the run's processes survived")
        XCTAssertEqual(workTrees(), [], "the run's work tree (with its hermetic stage) was left behind")
        XCTAssertEqual(ghostrunMounts().subtracting(mountsBefore), [], "ghostrun left a mount on the host")
        XCTAssertFalse(FileManager.default.fileExists(atPath: probe), "the run's write reached the host")
    }
}
