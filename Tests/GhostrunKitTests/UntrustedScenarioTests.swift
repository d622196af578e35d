import Foundation
import Synchronization
import XCTest

@testable import GhostrunKit

/// Issue 14: a scenario is a stranger's input run as root. Its declarative keys stay beneath `$WORK`, its fixture
/// comes from its own tree, the sweep removes only what it can prove is ghostrun's, and evidence is the run's own.
final class UntrustedScenarioTests: XCTestCase {
    private var scratch = ""

    override func setUpWithError() throws {
        try requireRoot()
        scratch = try makeScratch()
    }

    override func tearDown() {
        if !scratch.isEmpty { WorkDirectory.removeTree(scratch) }
    }

    /// A directory outside any repository (so a scenario file written there has its own directory as its tree).
    private func makeScratch() throws -> String {
        var template = Array("/tmp/untrusted-test-XXXXXX".utf8CString)
        let pointer = try XCTUnwrap(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) })
        return String(cString: pointer)
    }

    /// A victim outside `$WORK`: a directory holding a file, both with known modes.
    private func makeVictim() throws -> (directory: String, file: String) {
        let directory = scratch + "/victim"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/secret"
        try Data("host".utf8).write(to: URL(fileURLWithPath: file))
        chmod(file, 0o600)
        chmod(directory, 0o700)
        return (directory, file)
    }

    private func mode(_ path: String) -> mode_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    private func owner(_ path: String) -> uid_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_uid : .max
    }

    /// Prepares `yaml` in a fresh work directory in which `plant` has put links first (as a fixture or an earlier
    /// step could); returns the error preparation threw, if any.
    private func prepare(_ yaml: String, plant: (WorkDirectory) throws -> Void) throws -> Error? {
        let parsed = try scenario(yaml)
        let toolchain = try TestToolchains.require(TestToolchains.all.first, "any")
        let work = try WorkDirectory.create(sequence: 900)
        defer { work.remove() }
        try plant(work)
        do {
            try WorkPreparation.apply(parsed, toolchain: toolchain, to: work)
            return nil
        } catch {
            return error
        }
    }

    // MARK: declarative keys confined beneath $WORK

    func testFilesDoNotWriteThroughASymlinkOutOfWork() throws {
        let victim = try makeVictim()
        let error = try prepare("name: t\nrun: [go, version]\nfiles:\n  out/secret: pwned\n") { work in
            try FileManager.default.createSymbolicLink(
                atPath: work.work + "/out", withDestinationPath: victim.directory)
        }
        XCTAssertNotNil(error)
        XCTAssertEqual(try String(contentsOfFile: victim.file, encoding: .utf8), "host")
    }

    func testPathsModeOwnerAndMkdirDoNotFollowASymlinkOutOfWork() throws {
        let victim = try makeVictim()
        let chmodError = try prepare(
            "name: t\nrun: [go, version]\npaths:\n  - {path: $WORK/link, mode: \"0777\", owner: \"65534:65534\"}\n"
        ) { work in
            try FileManager.default.createSymbolicLink(atPath: work.work + "/link", withDestinationPath: victim.file)
        }
        XCTAssertNotNil(chmodError)
        XCTAssertEqual(mode(victim.file), 0o600)
        XCTAssertEqual(owner(victim.file), 0)

        let mkdirError = try prepare("name: t\nrun: [go, version]\npaths:\n  - {path: $WORK/d/sub, mkdir: true}\n") {
            work in
            try FileManager.default.createSymbolicLink(atPath: work.work + "/d", withDestinationPath: victim.directory)
        }
        XCTAssertNotNil(mkdirError)
        XCTAssertFalse(FileManager.default.fileExists(atPath: victim.directory + "/sub"))

        let contentError = try prepare("name: t\nrun: [go, version]\npaths:\n  - {path: d/secret, content: x}\n") {
            work in
            try FileManager.default.createSymbolicLink(atPath: work.work + "/d", withDestinationPath: victim.directory)
        }
        XCTAssertNotNil(contentError)
        XCTAssertEqual(try String(contentsOfFile: victim.file, encoding: .utf8), "host")
    }

    func testWorkdirThroughASymlinkOutOfWorkIsRefused() throws {
        let victim = try makeVictim()
        let error = try prepare("name: t\nrun: [go, version]\nworkdir: w\n") { work in
            try FileManager.default.createSymbolicLink(atPath: work.work + "/w", withDestinationPath: victim.directory)
        }
        XCTAssertNotNil(error)
        XCTAssert("\(error.map { "\($0)" } ?? "")".contains("$WORK"), "\(String(describing: error))")
    }

    /// Relative `paths:` were resolved against ghostrun's working directory (the CI checkout).
    func testRelativePathsAreRelativeToWork() throws {
        let previous = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(scratch)
        defer { FileManager.default.changeCurrentDirectoryPath(previous) }
        let parsed = try scenario("name: t\nrun: [go, version]\npaths:\n  - {path: rel/file, content: x}\n")
        let toolchain = try TestToolchains.require(TestToolchains.all.first, "any")
        let work = try WorkDirectory.create(sequence: 901)
        defer { work.remove() }
        try WorkPreparation.apply(parsed, toolchain: toolchain, to: work)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/rel/file"))
        XCTAssertEqual(try String(contentsOfFile: work.work + "/rel/file", encoding: .utf8), "x")
    }

    /// `workdir: $WORK` failed with ENOENT (it was joined to $WORK a second time).
    func testWorkdirDollarWorkRunsInWork() throws {
        let toolchain = try TestToolchains.require(TestToolchains.all.first, "any")
        for workdir in ["$WORK", "$WORK/sub"] {
            let parsed = try scenario(
                "name: t\nrun: [go, version]\nworkdir: \(workdir)\npaths:\n  - {path: $WORK/sub, mkdir: true}\n")
            let result = ScenarioRunner().run(parsed, toolchain: toolchain)
            XCTAssertEqual(result.outcome, .ok, "\(workdir): \(result.summary)")
        }
    }

    // MARK: fixtures

    private func writeScenario(fixture: String) -> String {
        let file = scratch + "/s.yaml"
        let text = "name: t\nrun: [go, version]\nfixture: \(fixture)\n"
        FileManager.default.createFile(atPath: file, contents: Data(text.utf8))
        return file
    }

    private func loadError(_ file: String, allowHostFixtures: Bool = false) -> String? {
        Self.loadError(file, allowHostFixtures: allowHostFixtures)
    }

    private static func loadError(_ file: String, allowHostFixtures: Bool = false) -> String? {
        do {
            _ = try ScenarioLoader.load(file: file, allowHostFixtures: allowHostFixtures)
            return nil
        } catch {
            return "\(error)"
        }
    }

    func testFixtureOutsideTheScenarioTreeIsBadInputUnlessAllowed() throws {
        let victim = try makeVictim()
        try FileManager.default.createDirectory(atPath: scratch + "/scenarios", withIntermediateDirectories: true)
        let file = scratch + "/scenarios/s.yaml"
        FileManager.default.createFile(
            atPath: file, contents: Data("name: t\nrun: [go, version]\nfixture: \(victim.directory)\n".utf8))
        let error = try XCTUnwrap(loadError(file))
        XCTAssert(error.contains("s.yaml:3: fixture:") && error.contains("outside the scenario's tree"), error)
        XCTAssert(error.contains("hint:"), error)
        XCTAssertNil(loadError(file, allowHostFixtures: true))
    }

    /// A catalog copied without its `.git` (issue 18): the directory given to ghostrun is the tree its fixtures may
    /// come from; outside it they are still refused, and the message names both trees.
    func testTheDirectoryGivenOnTheCommandLineIsTheFixturesTree() throws {
        let catalog = scratch + "/copied-catalog"
        try FileManager.default.createDirectory(atPath: catalog + "/seed", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: catalog + "/fixtures/hello", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: catalog + "/fixtures/hello/main.go", contents: Data("package main\n".utf8))
        let file = catalog + "/seed/s.yaml"
        FileManager.default.createFile(
            atPath: file, contents: Data("name: t\nrun: [go, version]\nfixture: ../fixtures/hello\n".utf8))
        // The file alone: its own directory is its tree (no repository around the scratch directory).
        let alone = try XCTUnwrap(loadError(file))
        XCTAssert(alone.contains("outside the scenario's tree"), alone)
        // The catalog's directory given: the fixture is inside it.
        XCTAssertNoThrow(try ScenarioLoader.load(paths: [catalog]))
        // Still refused beyond it, naming the directory given.
        let victim = try makeVictim()
        FileManager.default.createFile(
            atPath: file, contents: Data("name: t\nrun: [go, version]\nfixture: \(victim.directory)\n".utf8))
        do {
            _ = try ScenarioLoader.load(paths: [catalog])
            XCTFail("a fixture outside the given directory loaded")
        } catch {
            let text = "\(error)"
            XCTAssert(text.contains("s.yaml:3: fixture:") && text.contains("directory given on the command line"), text)
            XCTAssert(text.contains("hint:"), text)
        }
    }

    func testFixtureSymlinkLeavingTheFixtureIsBadInput() throws {
        let victim = try makeVictim()
        try FileManager.default.createDirectory(atPath: scratch + "/fx", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: scratch + "/fx/leak", withDestinationPath: victim.file)
        let error = try XCTUnwrap(loadError(writeScenario(fixture: "fx")))
        XCTAssert(error.contains("fixture:") && error.contains("leads out of the fixture"), error)
    }

    /// A FIFO blocked the copy forever; it is bad input at parse time, and the copy itself refuses it (the tree can
    /// change after parsing) without blocking. Both run under a deadline so a regression cannot hang the suite.
    func testFifoInAFixtureIsBadInputAndNeverBlocksTheCopy() throws {
        try FileManager.default.createDirectory(atPath: scratch + "/fx", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: scratch + "/fx/main.go", contents: Data("package main\n".utf8))
        XCTAssertEqual(mkfifo(scratch + "/fx/pipe", 0o644), 0)
        let file = writeScenario(fixture: "fx")
        let source = scratch + "/fx"
        let work = try WorkDirectory.create(sequence: 902)
        defer { work.remove() }
        final class Outcome: @unchecked Sendable {
            let errors = Mutex<(String?, String?)>((nil, nil))
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let workPath = work.work
        Thread.detachNewThread {
            let parseError = Self.loadError(file)
            var copyError: String?
            do {
                let directory = try ConfinedDirectory(path: workPath)
                _ = try FixtureTree.copy(from: source, into: directory)
            } catch {
                copyError = "\(error)"
            }
            outcome.errors.withLock { $0 = (parseError, copyError) }
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success, "the fixture copy blocked on a FIFO")
        let (parseError, copyError) = outcome.errors.withLock { $0 }
        XCTAssert(parseError?.contains("is a FIFO") == true, parseError ?? "no error")
        XCTAssert(copyError?.contains("is a FIFO") == true, copyError ?? "no error")
    }

    /// The copy of a file the host kept from other users is not handed to `sandbox.user`; the rest of `$WORK` is,
    /// and the source keeps its owner and mode.
    func testRootOnlyFixtureFileIsNotHandedToTheSandboxUser() throws {
        try FileManager.default.createDirectory(atPath: scratch + "/fx", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: scratch + "/fx/private", contents: Data("key".utf8))
        FileManager.default.createFile(atPath: scratch + "/fx/public", contents: Data("ok".utf8))
        chmod(scratch + "/fx/private", 0o600)
        chmod(scratch + "/fx/public", 0o644)
        let file = scratch + "/s.yaml"
        FileManager.default.createFile(
            atPath: file,
            contents: Data("name: t\nrun: [go, version]\nfixture: fx\nsandbox:\n  user: \"65534:65534\"\n".utf8))
        let parsed = try XCTUnwrap(ScenarioLoader.load(file: file).first)
        let toolchain = try TestToolchains.require(TestToolchains.all.first, "any")
        let work = try WorkDirectory.create(sequence: 903)
        defer { work.remove() }
        try WorkPreparation.apply(parsed, toolchain: toolchain, to: work)
        XCTAssertEqual(owner(work.work + "/private"), 0)
        XCTAssertEqual(mode(work.work + "/private"), 0o600)
        XCTAssertEqual(owner(work.work + "/public"), 65534)
        XCTAssertEqual(owner(scratch + "/fx/private"), 0)
        XCTAssertEqual(mode(scratch + "/fx/private"), 0o600)
        XCTAssertEqual(owner(scratch + "/fx/public"), 0)
    }

    // MARK: the sweep

    private func withTemporaryBase(_ body: (String) throws -> Void) throws {
        let base = scratch + "/tmpbase"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let previous = ProcessInfo.processInfo.environment["GHOSTRUN_TMPDIR"]
        setenv("GHOSTRUN_TMPDIR", base, 1)
        defer {
            if let previous { setenv("GHOSTRUN_TMPDIR", previous, 1) } else { unsetenv("GHOSTRUN_TMPDIR") }
        }
        try body(base)
    }

    /// A planted `/tmp/ghostrun-*` symlink was followed (its target chmodded and emptied); a directory without
    /// ghostrun's marker is not ghostrun's.
    func testSweepNeverFollowsAPlantedLinkNorRemovesAnUnmarkedDirectory() throws {
        let victim = try makeVictim()
        try withTemporaryBase { base in
            try FileManager.default.createSymbolicLink(
                atPath: base + "/ghostrun-999999-1-planted", withDestinationPath: victim.directory)
            try FileManager.default.createDirectory(
                atPath: base + "/ghostrun-999998-1-unmarked/work", withIntermediateDirectories: true)
            let removed = WorkDirectory.sweep()
            XCTAssertEqual(removed, [])
            XCTAssertEqual(mode(victim.directory), 0o700)
            XCTAssertEqual(try String(contentsOfFile: victim.file, encoding: .utf8), "host")
            XCTAssertTrue(FileManager.default.fileExists(atPath: base + "/ghostrun-999998-1-unmarked/work"))
        }
    }

    /// Ownership is pid + start time: a live owner with any process name (a renamed ghostrun binary) keeps its
    /// tree; a reused pid (same pid, other start time) does not.
    func testSweepKeepsALiveRenamedOwnersTreeAndRemovesAReusedPidsTree() throws {
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["30"]
        try sleeper.run()
        defer { sleeper.terminate() }
        let pid = sleeper.processIdentifier
        let started = try XCTUnwrap(GhostrunProcess.startTime(pid))
        try withTemporaryBase { base in
            for (name, marker) in [("live", "\(pid) \(started)"), ("reused", "\(pid) \(started - 1)")] {
                let root = base + "/ghostrun-\(pid)-1-\(name)"
                try FileManager.default.createDirectory(atPath: root + "/work", withIntermediateDirectories: true)
                FileManager.default.createFile(
                    atPath: root + "/" + WorkDirectory.markerName, contents: Data((marker + "\n").utf8))
            }
            let removed = WorkDirectory.sweep()
            XCTAssertEqual(removed, [base + "/ghostrun-\(pid)-1-reused"])
            XCTAssertTrue(FileManager.default.fileExists(atPath: base + "/ghostrun-\(pid)-1-live/work"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: base + "/ghostrun-\(pid)-1-reused"))
        }
    }

    func testAWorkDirectoryCarriesItsOwnersMarker() throws {
        let work = try WorkDirectory.create(sequence: 904)
        defer { work.remove() }
        let marker = try XCTUnwrap(WorkDirectory.ownerMarker(work.root))
        XCTAssertEqual(marker.0, getpid())
        XCTAssertEqual(marker.1, GhostrunProcess.startTime(getpid()))
        XCTAssertEqual(WorkDirectory.sweep(ownerFilter: { _ in false }), [])
        work.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.root))
    }

    // MARK: environment

    /// A secret in ghostrun's environment appeared in a run's `stdout_tail`.
    func testHarnessSecretDoesNotReachTheGoCommand() throws {
        let toolchain = try TestToolchains.require(TestToolchains.all.first, "any")
        setenv("GHOSTRUN_TEST_SECRET", "s3cret-value", 1)
        defer { unsetenv("GHOSTRUN_TEST_SECRET") }
        let yaml = "name: t\nrun: [sh, -c, 'echo secret=$GHOSTRUN_TEST_SECRET; echo lang=$LANG']\n"
        let plain = ScenarioRunner().run(try scenario(yaml), toolchain: toolchain)
        XCTAssertEqual(plain.outcome, .ok, plain.summary)
        XCTAssert(plain.stdoutTail.contains("secret=\n"), plain.stdoutTail)
        var options = RunnerOptions()
        options.passEnvironment = ["GHOSTRUN_TEST_SECRET"]
        let passed = ScenarioRunner(options: options).run(try scenario(yaml), toolchain: toolchain)
        XCTAssert(passed.stdoutTail.contains("secret=s3cret-value"), passed.stdoutTail)
    }

    // MARK: attribution

    /// Two ghostruns (two runners, two registries) at once: one run's toolchain is killed on `pidfd_open` again and
    /// again while the other runs the same toolchain. The kills are the first run's evidence only; the other's
    /// result shows none (it used to take every record from the shared GOROOT as its own).
    func testConcurrentRunsDoNotShareDenials() throws {
        let go = try TestToolchains.require(TestToolchains.static123, "go >= 1.23")
        try requireHost(KernelAuditLog.shared.isAvailable, "/dev/kmsg not readable")
        let hello = """
            files:
              go.mod: |
                module example.com/hello
                go 1.19
              main.go: |
                package main
                import "fmt"
                func main() { fmt.Println("alive") }
            """
        // The builder's go command is held frozen for a few seconds (little CPU on a loaded machine), under a
        // filter of its own so that it collects audit records like any filtered run.
        let builder = try scenario(
            """
            name: builder
            run: [go, version]
            timeout: 120s
            sandbox:
              seccomp:
                rules:
                  - {syscalls: [acct], action: errno, errno: EPERM}
              cgroup:
                freeze:
                  after: 0ms
                  hold: 4s
            """)
        let killed = try scenario(
            """
            name: killed
            run: [go, build, -o, out/app, .]
            sandbox:
              seccomp:
                rules:
                  - {syscalls: [pidfd_open], action: kill-process}
            """ + "\n" + hello)
        final class Results: @unchecked Sendable {
            let builder = Mutex<RunResult?>(nil)
            let killed = Mutex<[RunResult]>([])
        }
        let results = Results()
        let builderDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let result = ScenarioRunner().run(builder, toolchain: go)
            results.builder.withLock { $0 = result }
            builderDone.signal()
        }
        let killer = ScenarioRunner()
        while builderDone.wait(timeout: .now()) == .timedOut {
            let result = killer.run(killed, toolchain: go)
            results.killed.withLock { $0.append(result) }
        }
        let built = try XCTUnwrap(results.builder.withLock { $0 })
        let kills = results.killed.withLock { $0 }
        XCTAssertEqual(built.outcome, .ok, built.summary)
        XCTAssertGreaterThan(kills.count, 1, "the builder ended before the kills overlapped it")
        // Each kill run shows at most its own one denial; a record that arrives after its run has ended is dropped
        // (counted), never given to the next run, so most, not necessarily all, kill runs show theirs.
        XCTAssertTrue(
            kills.allSatisfy {
                $0.evidence.denials.count <= 1 && $0.evidence.denials.allSatisfy { $0.syscall == "pidfd_open" }
            },
            "\(kills.map(\.summary))")
        XCTAssertGreaterThan(kills.filter { $0.evidence.firstDenial?.syscall == "pidfd_open" }.count, kills.count / 2)
        XCTAssertEqual(built.evidence.denials.map(\.syscall), [])
    }

    // MARK: Seccomp 3

    /// A task its filter is killing shows `Seccomp: 3` (SECCOMP_MODE_DEAD): it had the filter.
    func testSeccompModeDeadConfirmsTheFilter() {
        var status = ProcStatus()
        status.seccomp = 3
        XCTAssertEqual(
            ResultBuilder.restrictionProblems(status, requested: RequestedRestrictions(seccompFilter: true)), [])
        status.seccomp = 0
        XCTAssertEqual(
            ResultBuilder.restrictionProblems(status, requested: RequestedRestrictions(seccompFilter: true)).count, 1)
        XCTAssertEqual(InspectReport.seccompModes[3], "dead (its seccomp filter is killing it)")
    }
}
