import Foundation
import XCTest

@testable import GhostrunKit

/// The BPF backend end to end: the built binary, `--trace-backend bpf`, real go builds, and what is left in the
/// kernel after a run, an interrupt, or a SIGKILL.
extension CLITests {
    private func requireBPFBackend() throws {
        try requireRoot()
        if let problem = BPFTracer.hostProblem() {
            if ProcessInfo.processInfo.environment["GHOSTRUN_REQUIRE_HOST"] == "1" { XCTFail(problem) }
            throw XCTSkip(problem)
        }
    }

    /// The BPF programs a process holds, from the `prog_id:` lines of its descriptors' fdinfo.
    private func programIDs(heldBy pid: Int32) -> Set<Int> {
        let directory = "/proc/\(pid)/fdinfo"
        var ids = Set<Int>()
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let text = (try? String(contentsOfFile: directory + "/" + entry, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix("prog_id:") {
                if let id = Int(line.dropFirst(8).trimmingCharacters(in: .whitespaces)) { ids.insert(id) }
            }
        }
        return ids
    }

    private func programLoaded(_ id: Int) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/bpftool")
        process.arguments = ["prog", "show", "id", String(id)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    private func startBackgroundGhostrun(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = CLITests.environment()
        process.currentDirectoryURL = URL(fileURLWithPath: CLITests.root)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    func testBPFProgramsAreReleasedWhenGhostrunIsSigkilledOrInterrupted() throws {
        try requireBPFBackend()
        for signal in [SIGKILL, SIGINT] {
            let scenario = write(
                "sleepy-\(signal).yaml",
                """
                name: sleepy
                run: [sh, -c, "sleep 60"]
                timeout: 90s
                hang_after: 90s
                """)
            let process = try startBackgroundGhostrun(["run", scenario, "--trace-backend", "bpf"])
            let pid = process.processIdentifier
            var held = Set<Int>()
            XCTAssertTrue(
                eventually(20) {
                    held = self.programIDs(heldBy: pid)
                    return held.count >= 5
                }, "ghostrun never loaded its programs")
            XCTAssertTrue(held.allSatisfy(programLoaded))
            kill(pid, signal)
            process.waitUntilExit()
            // Nothing pinned: the kernel frees the programs with the last descriptor (after an RCU grace period).
            XCTAssertTrue(
                eventually(10) { held.allSatisfy { !self.programLoaded($0) } },
                "programs \(held.filter(programLoaded)) survived signal \(signal)")
        }
    }

    func testTraceBackendBPFCountsTheWholeTreeAndConfirmsThePolicyOnEveryProcess() throws {
        try requireBPFBackend()
        let scenario = write(
            "bpf-build.yaml",
            """
            name: bpf-build
            run: [go, build, -o, out/app, .]
            files:
              go.mod: |
                module example.com/b
                go 1.19
              main.go: |
                package main
                import ("fmt"; "example.com/b/lib")
                func main() { fmt.Println(lib.Name()) }
              lib/lib.go: |
                package lib
                func Name() string { return "lib" }
            sandbox:
              no_new_privs: true
              seccomp:
                rules:
                  - syscalls: [sched_getaffinity]
                    action: errno
                    errno: ENOSYS
            trace: true
            expect:
              outcome: ok
            """)
        let json = temporary + "/bpf.json"
        let traceOut = temporary + "/bpf.jsonl"
        let timeline = temporary + "/t.json"
        let outcome = try ghostrun([
            "run", scenario, "--go-version", "1.23", "--trace-backend", "bpf", "--json", json,
            "--trace-out", traceOut, "--timeline", timeline,
        ])
        XCTAssertEqual(outcome.status, 0, outcome.stdout + outcome.stderr)
        let file =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        let result = try XCTUnwrap((file?["results"] as? [[String: Any]])?.first)
        let evidence = try XCTUnwrap(result["evidence"] as? [String: Any])
        let trace = try XCTUnwrap(evidence["trace"] as? [String: Any])
        XCTAssertEqual(trace["backend"] as? String, "bpf")
        XCTAssertEqual(trace["lost_records"] as? Int, 0)
        let total = try XCTUnwrap(trace["total_calls"] as? Int)
        XCTAssertGreaterThan(total, 10_000)
        let tree = try XCTUnwrap(evidence["process_tree"] as? [[String: Any]])
        let check = try XCTUnwrap(evidence["restrictions_confirmed"] as? [String: Any])
        XCTAssertEqual(check["confirmed"] as? Bool, true, "\(check)")
        XCTAssertEqual(check["source"] as? String, "bpf")
        XCTAssertEqual(check["checked_processes"] as? Int, tree.count)
        XCTAssertEqual(check["total_processes"] as? Int, tree.count)
        XCTAssertTrue(
            outcome.stdout.contains("policy confirmed on \(tree.count) of \(tree.count) processes"),
            outcome.stdout)
        // More processes than /proc sampling catches: the compiles of a 2-package build are all there.
        let comms = tree.compactMap { $0["comm"] as? String }
        XCTAssertGreaterThanOrEqual(comms.filter { $0 == "compile" }.count, 2, "\(comms)")
        XCTAssertTrue(comms.contains("link"))
        // The errno denial was seen at sys_exit (nothing was notified), with its errno.
        let denials = try XCTUnwrap(evidence["denials"] as? [[String: Any]])
        XCTAssertTrue(
            denials.contains {
                $0["syscall"] as? String == "sched_getaffinity" && $0["errno"] as? String == "ENOSYS"
            }, "\(denials)")
        // --timeline: trace-event JSON with a named track and a lifetime per process, fork flows, a rate counter.
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: timeline)))
        let events = try XCTUnwrap((document as? [String: Any])?["traceEvents"] as? [[String: Any]])
        let treePids = Set(tree.compactMap { $0["pid"] as? Int })
        let named = Set(
            events.filter { $0["ph"] as? String == "M" && $0["name"] as? String == "thread_name" }
                .compactMap { $0["tid"] as? Int })
        XCTAssertTrue(treePids.isSubset(of: named), "every process has a track")
        let lifetimes = events.filter { $0["ph"] as? String == "X" && $0["cat"] as? String == "process" }
        XCTAssertEqual(Set(lifetimes.compactMap { $0["tid"] as? Int }), treePids)
        XCTAssertEqual(events.filter { $0["ph"] as? String == "s" }.count, tree.count - 1, "a fork flow per child")
        XCTAssertTrue(events.contains { $0["ph"] as? String == "C" })
        XCTAssertTrue(events.contains { $0["cat"] as? String == "denial" })
        // --trace-out: one JSON line per counted call.
        let lines = try String(contentsOfFile: traceOut, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, total)
    }
}
