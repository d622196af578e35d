import Foundation
import XCTest

/// The catalog runs from anywhere (issue 18): copied without its `.git`, as a release archive or the image's
/// `COPY scenarios scenarios` has it, `ghostrun check` accepts every scenario and a run of one with a fixture works.
extension CLITests {
    func testACatalogCopiedWithoutItsRepositoryChecksAndRuns() throws {
        let cli = self
        let copy = try XCTUnwrap(temporary) + "/catalog"
        let cp = Process()
        cp.executableURL = URL(fileURLWithPath: "/bin/cp")
        cp.arguments = ["-r", CLITests.root + "/scenarios", copy]
        try cp.run()
        cp.waitUntilExit()
        XCTAssertEqual(cp.terminationStatus, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: cli.temporary + "/.git"))

        let check = try cli.ghostrun(["check", copy])
        XCTAssertEqual(check.status, 0, check.stderr + check.stdout)
        XCTAssertFalse(check.stderr.contains("outside the scenario's tree"), check.stderr)

        // A scenario with a fixture, run from the copy (no root needed to parse; running needs root).
        let withFixture = try String(contentsOfFile: copy + "/environment/go-env-looks-fine.yaml", encoding: .utf8)
        XCTAssertTrue(withFixture.contains("fixture: ../fixtures/hello"), "go-env-looks-fine uses a fixture")
        if geteuid() == 0 {
            let run = try cli.ghostrun(["run", copy, "--filter", "^go-env-looks-fine$", "--go-version", "all"])
            XCTAssertEqual(run.status, 0, run.stderr + run.stdout)
            XCTAssertTrue(run.stdout.contains("PASS"), run.stdout)
        }

        // A fixture leading out of the copy is still refused, with exit 2 and the hint.
        try "name: escape\nrun: [go, version]\nfixture: /etc\n".write(
            toFile: copy + "/seed/escape.yaml", atomically: true, encoding: .utf8)
        let refused = try cli.ghostrun(["check", copy])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("escape.yaml:3: fixture:"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("directory given on the command line"), refused.stderr)
    }

    /// `--timeout-scale` and `--max-stretch` are checked before anything runs; a scaled run applies the scale.
    func testTimeoutScaleAndMaxStretchAreCheckedAndApplied() throws {
        let good = write("scaled.yaml", "name: scaled\nrun: [sh, -c, 'exit 0']\ntimeout: 2s\nhang_after: 1s\n")
        for arguments in [["--timeout-scale", "0"], ["--timeout-scale", "-1"], ["--max-stretch", "0.5"],
                          ["--timeout-scale", "nan"]] {
            let result = try ghostrun(["run", good] + arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stdout.isEmpty, "nothing may run: \(result.stdout)")
        }
        let badEnvironment = try ghostrun(["run", good], environment: ["GHOSTRUN_TIMEOUT_SCALE": "fast"])
        XCTAssertEqual(badEnvironment.status, 2, badEnvironment.stderr)
        XCTAssertTrue(badEnvironment.stderr.contains("GHOSTRUN_TIMEOUT_SCALE"), badEnvironment.stderr)
        guard geteuid() == 0 else { return }
        let json = temporary + "/scaled.json"
        let scaled = try ghostrun(["run", good, "--timeout-scale", "4", "--max-stretch", "2", "--json", json])
        XCTAssertEqual(scaled.status, 0, scaled.stderr + scaled.stdout)
        let file = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        let result = (file?["results"] as? [[String: Any]])?.first
        let stall = (result?["evidence"] as? [String: Any])?["stall"] as? [String: Any]
        XCTAssertEqual(stall?["timeout_ms"] as? Int, 8000, "\(String(describing: stall))")
        XCTAssertEqual(stall?["hang_after_ms"] as? Int, 4000)
        XCTAssertEqual(stall?["max_stretch"] as? Double, 2)
        XCTAssertEqual(stall?["source"] as? String, "psi")
    }
}
