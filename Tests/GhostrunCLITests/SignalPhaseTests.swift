import Foundation
import XCTest

/// SIGTERM stops ghostrun within a second in the phases before and after the go command runs (issue 14, item 6):
/// parsing a large scenario tree and copying a large fixture. (Matching: `testSigtermStopsBacktrackingMatch`; the
/// run itself: the SIGINT tests in CLITests.)
extension CLITests {
    /// Starts ghostrun, waits until `ready` says it is in the phase, sends SIGTERM and returns the seconds it took
    /// to exit and its status.
    private func terminate(_ arguments: [String], ready: (Int32) -> Bool, file: StaticString = #filePath,
                           line: UInt = #line) throws -> (seconds: TimeInterval, status: Int32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = CLITests.environment()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let pid = process.processIdentifier
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && !ready(pid) && Date() < deadline { usleep(5_000) }
        XCTAssertTrue(process.isRunning, "ghostrun finished before the signal: the phase was too short",
                      file: file, line: line)
        let sent = Date()
        kill(pid, SIGTERM)
        while process.isRunning && Date().timeIntervalSince(sent) < 10 { usleep(5_000) }
        let took = Date().timeIntervalSince(sent)
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
        return (took, process.terminationStatus)
    }

    private func workTrees(of pid: Int32) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("ghostrun-\(pid)-") }
    }

    /// A 4 GiB fixture file (sparse: reading it costs nothing, writing it takes seconds): SIGTERM mid-copy stops the
    /// copy at its next chunk, the run is reported interrupted, and the work tree is removed.
    func testSigtermDuringALargeFixtureCopyStopsWithinASecond() throws {
        try requireRoot()
        let directory = temporary + "/big-fixture"
        try FileManager.default.createDirectory(atPath: directory + "/fx", withIntermediateDirectories: true)
        let big = directory + "/fx/big.bin"
        XCTAssertTrue(FileManager.default.createFile(atPath: big, contents: nil))
        XCTAssertEqual(truncate(big, 4 << 30), 0)
        try "name: big-fixture\nrun: [go, version]\nfixture: fx\n".write(
            toFile: directory + "/s.yaml", atomically: true, encoding: .utf8)
        var ghostrun: Int32 = 0
        let (took, status) = try terminate(["run", directory + "/s.yaml", "--json", directory + "/r.json"]) { pid in
            ghostrun = pid
            // Copying: the fixture's file exists in a work tree and has grown past 16 MiB.
            return workTrees(of: pid).contains { tree in
                let size = (try? FileManager.default.attributesOfItem(atPath: "/tmp/\(tree)/work/big.bin"))?[.size]
                return (size as? Int ?? 0) > 16 << 20
            }
        }
        print("SIGTERM during the fixture copy: ghostrun exited after \(String(format: "%.3f", took)) s")
        XCTAssertLessThan(took, 1.5, "SIGTERM took \(took) s to stop the copy")
        XCTAssertEqual(status, 128 + SIGTERM)
        XCTAssertEqual(workTrees(of: ghostrun), [], "the work tree (with a partial copy) was left behind")
        let report = try String(contentsOfFile: directory + "/r.json", encoding: .utf8)
        XCTAssertTrue(report.contains("\"interrupted\" : true") || report.contains("\"interrupted\":true"), report)
    }

    /// 300 scenario files of ~600 KB (under the 1 MiB limit): parsing takes seconds; SIGTERM ends it at once, and
    /// nothing was started.
    func testSigtermWhileParsingALargeTreeStopsWithinASecond() throws {
        let directory = temporary + "/many"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var padding = ""
        for i in 0..<12_000 { padding += "  - \"padding line \(i) with some text to parse\"\n" }
        for i in 0..<300 {
            try "name: s\(i)\nrun: [go, version]\nx-padding:\n\(padding)".write(
                toFile: directory + "/s\(i).yaml", atomically: true, encoding: .utf8)
        }
        var ghostrun: Int32 = 0
        let (took, status) = try terminate(["run", directory]) { pid in
            ghostrun = pid
            usleep(300_000)
            return true
        }
        print("SIGTERM while parsing: ghostrun exited after \(String(format: "%.3f", took)) s")
        XCTAssertLessThan(took, 1.5, "SIGTERM took \(took) s to stop the parse")
        XCTAssertNotEqual(status, 0)
        XCTAssertEqual(workTrees(of: ghostrun), [], "nothing may be started while parsing")
    }
}
