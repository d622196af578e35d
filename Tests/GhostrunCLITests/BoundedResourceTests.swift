import Foundation
import XCTest

/// Floods and hostile patterns keep ghostrun's own memory, report and time bounded (issue 14 items 5 and 6).
extension CLITests {
    /// Runs ghostrun and samples its peak RSS (VmHWM, kB) from /proc while it runs; the last sample before it
    /// exits is its peak, since VmHWM never decreases.
    func ghostrunPeakRSS(_ arguments: [String], timeout: TimeInterval = 120) throws -> (status: Int32, peakKB: Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = CLITests.environment()
        process.currentDirectoryURL = URL(fileURLWithPath: CLITests.root)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var peak = 0
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline {
            if let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
               let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
               let kB = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            {
                peak = max(peak, kB)
            }
            usleep(10_000)
        }
        if process.isRunning {
            // SIGKILL: a ghostrun stuck in a backtracking search ignored SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            XCTFail("ghostrun \(arguments) did not finish in \(timeout) s")
        }
        process.waitUntilExit()
        return (process.terminationStatus, peak)
    }

    /// 1 GB of stdout and stderr: the capture keeps a fixed head and tail. Before the ring buffer, `Data` kept
    /// every byte (2 GB of stdout was 2.13 GB RSS); this flood alone made ghostrun grow past 1 GB.
    func testOutputFloodKeepsRSSBounded() throws {
        try requireRoot()
        let path = write("flood.yaml", """
            name: output-flood
            run: [sh, -c, "head -c 700000000 /dev/zero; head -c 300000000 /dev/zero >&2; echo the-end"]
            timeout: 60s
            expect:
              outcome: ok
              stdout: "the-end"
            """)
        let json = temporary + "/flood.json"
        let (status, peakKB) = try ghostrunPeakRSS(["run", path, "--json", json])
        let report = (try? Data(contentsOf: URL(fileURLWithPath: json)))
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        let result = (report?["results"] as? [[String: Any]])?.first ?? [:]
        XCTAssertEqual(status, 0, "the tail must still hold the last line: \(result["failures"] ?? "no report") "
            + "\(result["summary"] ?? "")")
        XCTAssertGreaterThan(peakKB, 0, "VmHWM was never read")
        XCTAssertLessThan(peakKB, 200 * 1024, "ghostrun's peak RSS was \(peakKB) kB for 1 GB of output")
        let size = (try? FileManager.default.attributesOfItem(atPath: json)[.size] as? Int) ?? Int.max
        XCTAssertLessThan(size, 10 << 20, "report is \(size) bytes")
    }

    /// `--keep-work`: the whole output goes to files beside `$WORK`, every byte, streamed (RSS stays bounded), while
    /// the report keeps its bounded tails and names the files.
    func testKeepWorkWritesTheWholeOutputToFilesWithBoundedMemory() throws {
        try requireRoot()
        let size = 50 << 20
        let path = write("keep-output.yaml", """
            name: keep-output
            run: [sh, -c, "head -c \(size) /dev/zero | tr '\\\\0' x; echo err-line >&2"]
            timeout: 60s
            expect:
              outcome: ok
            """)
        let json = temporary + "/keep-output.json"
        let (status, peakKB) = try ghostrunPeakRSS(["run", path, "--keep-work", "--json", json])
        XCTAssertEqual(status, 0)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
        let result = try XCTUnwrap(((report as? [String: Any])?["results"] as? [[String: Any]])?.first)
        let files = try XCTUnwrap(result["output_files"] as? [String: Any], "the result names the output files")
        let stdoutPath = try XCTUnwrap(files["stdout"] as? String)
        let stderrPath = try XCTUnwrap(files["stderr"] as? String)
        let workDir = try XCTUnwrap(result["work_dir"] as? String)
        defer { try? FileManager.default.removeItem(atPath: (workDir as NSString).deletingLastPathComponent) }
        XCTAssertEqual(files["stdout_bytes"] as? Int, size)
        XCTAssertNil(files["error"])
        let attributes = try FileManager.default.attributesOfItem(atPath: stdoutPath)
        XCTAssertEqual(attributes[.size] as? Int, size, "every byte of stdout is in the file")
        let handle = try XCTUnwrap(FileHandle(forReadingAtPath: stdoutPath))
        handle.seek(toFileOffset: UInt64(size - 4))
        XCTAssertEqual(handle.readData(ofLength: 4), Data("xxxx".utf8))
        handle.closeFile()
        XCTAssertEqual(try String(contentsOfFile: stderrPath, encoding: .utf8), "err-line\n")
        XCTAssertLessThanOrEqual((result["stdout_tail"] as? String)?.utf8.count ?? .max, 4 << 20,
                                 "the report's tail stays bounded")
        XCTAssertGreaterThan(peakKB, 0, "VmHWM was never read")
        XCTAssertLessThan(peakKB, 200 * 1024, "ghostrun's peak RSS was \(peakKB) kB for 50 MB kept on disk")
    }

    /// 300 000 injected denials: 101 records (the first 100 and one closing record with the exact count) instead of
    /// 300 000. Before `DenialLog` this flood took ghostrun to 587 MB RSS and a 105 MB JSON report.
    func testDenialFloodKeepsRSSAndReportBounded() throws {
        try requireRoot()
        let path = write("denials.yaml", """
            name: denial-flood
            run: [python3, -c, "import os\\nfor i in range(300000):\\n    os.getppid()\\nprint('done')"]
            timeout: 120s
            faults:
              - syscall: getppid
                errno: EPERM
                every: true
            """)
        let json = temporary + "/denials.json"
        let (_, peakKB) = try ghostrunPeakRSS(["run", path, "--json", json])
        XCTAssertGreaterThan(peakKB, 0, "VmHWM was never read")
        XCTAssertLessThan(peakKB, 200 * 1024, "ghostrun's peak RSS was \(peakKB) kB for 300 000 denials")
        let size = (try? FileManager.default.attributesOfItem(atPath: json)[.size] as? Int) ?? Int.max
        XCTAssertLessThan(size, 10 << 20, "report is \(size) bytes")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json)))
        let result = ((report as? [String: Any])?["results"] as? [[String: Any]])?.first ?? [:]
        let evidence = result["evidence"] as? [String: Any] ?? [:]
        let denials = (evidence["denials"] as? [[String: Any]] ?? []).filter {
            $0["syscall"] as? String == "getppid" && $0["action"] as? String == "injected"
        }
        let counted = denials.reduce(0) { $0 + (($1["repeated"] as? Int) ?? 1) }
        XCTAssertLessThanOrEqual(denials.count, 101)
        XCTAssertGreaterThanOrEqual(counted, 300_000, "every denial is counted exactly")
        XCTAssertEqual(counted, (evidence["trace"] as? [String: Any])?["injected"] as? Int)
    }

    /// A catastrophic pattern over the output stops at its time budget with a failure that names it.
    func testBacktrackingExpectPatternIsBoundedInTime() throws {
        try requireRoot()
        let path = write("redos.yaml", """
            name: redos
            run: [sh, -c, "head -c 30000 /dev/zero | tr '\\\\0' x"]
            expect:
              stdout: "(x+x+)+y"
            """)
        let json = temporary + "/redos.json"
        let start = Date()
        let (status, _) = try ghostrunPeakRSS(["run", path, "--json", json], timeout: 30)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(status, 1)
        XCTAssertLessThan(seconds, 20, "matching took \(seconds) s")
        let report = (try? String(contentsOfFile: json, encoding: .utf8)) ?? ""
        XCTAssertTrue(report.contains("catastrophic"), String(report.prefix(2000)))
    }

    /// SIGTERM while a pattern backtracks: ghostrun exits within a second or two, leaving no work directory.
    func testSigtermStopsBacktrackingMatch() throws {
        try requireRoot()
        let path = write("redos-term.yaml", """
            name: redos-term
            run: [sh, -c, "head -c 30000 /dev/zero | tr '\\\\0' x"]
            expect:
              stdout: "(x+x+)+y"
            """)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["run", path]
        process.environment = CLITests.environment()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The run itself takes well under a second; by then ghostrun is matching.
        usleep(1_200_000)
        XCTAssertTrue(process.isRunning, "ghostrun finished before the signal: the pattern did not backtrack")
        let sent = Date()
        kill(process.processIdentifier, SIGTERM)
        while process.isRunning && Date().timeIntervalSince(sent) < 10 { usleep(10_000) }
        let took = Date().timeIntervalSince(sent)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        XCTAssertLessThan(took, 1.5, "SIGTERM took \(took) s to stop ghostrun")
    }

    /// 100 000 aliases (43 s and 276 MB before the limit) are bad input at once: exit 2, file and line.
    func testYAMLAliasFloodIsExitTwoQuickly() throws {
        var text = "name: aliases\nrun: [go, version]\nx-anchor: &a [1]\nx-list:\n"
        for _ in 0..<100_000 { text += "  - *a\n" }
        let path = write("aliases.yaml", text)
        let start = Date()
        let result = try ghostrun(["run", path], timeout: 30)
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stderr.contains("aliases.yaml:"), result.stderr)
        XCTAssertTrue(result.stderr.contains("alias"), result.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }
}
