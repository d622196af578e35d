import GhostrunKit
import XCTest

/// The classifier on recorded observations: stderr texts are the real ones from failure-catalog.md.
final class ClassifierTests: XCTestCase {
    // MARK: crash

    /// Catalog row 1: Go 1.23 under a pidfd_open trap (golang/go#69065).
    /// Recorded from the pids-max scenario on go 1.23.4: the traceback is `go tool compile -V=full`'s, relayed
    /// by the go command, which then names the tool.
    func testThreadCreationFailureRelayedForGoToolIsCrashInThatTool() {
        let stderr = """
            runtime: failed to create new OS thread (have 3 already; errno=11)
            runtime: may need to increase max user processes (ulimit -u)
            fatal error: newosproc

            goroutine 0 gp=0x7a4f40 m=0 mp=0x7a5ba0 [idle]:
            runtime.throw({0x6a8d2f?, 0x0?})
            	runtime/panic.go:1067 +0x48 fp=0x7ffd5e2fd7b8 sp=0x7ffd5e2fd788 pc=0x47d608
            runtime.newosproc(0xc000082008)
            	runtime/os_linux.go:188 +0x1b9 fp=0x7ffd5e2fd860 sp=0x7ffd5e2fd7b8 pc=0x441639
            go: error obtaining buildID for go tool compile: exit status 2

            """
        let c = Classifier.classify(Recorded.exited(1, stderr: stderr))
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.failingProcess, "compile")
    }

    /// Recorded from nth-openat-compile on go 1.23.4: compile's open of a source file failed by an injected EIO.
    func testInjectedFaultInChildNamesThatChild() {
        var o = Recorded.exited(1, stderr: """
            # internal/goarch
            open /go/src/internal/goarch/goarch.go: input/output error

            """)
        o.denials = [Denial(pid: 40, comm: "compile", syscall: "openat", action: "injected", errno: "EIO",
                            timeMs: 900, source: "supervisor", role: "compile",
                            path: "/go/src/internal/goarch/goarch.go")]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .clearError)
        XCTAssertEqual(c.failingProcess, "compile")
    }

    func testGo123SigsysTracebackIsCrashInGo() {
        let stderr = """
            SIGSYS: bad system call
            PC=0x4766ee m=0 sigcode=1

            goroutine 0 gp=0xc0000061c0 m=0 mp=0x10b1e60 [idle]:
            syscall.Syscall6(0x1b2, 0x5ffc, 0x0, 0x0, 0x0, 0x0, 0x0)
            \t/usr/local/go/src/syscall/syscall_linux.go:95 +0x39
            os.pidfdFind(0x5ffc)
            \t/usr/local/go/src/os/pidfd_linux.go:49 +0x5a
            rax    0x1b2
            rip    0x4766ee

            """
        var o = Recorded.exited(2, stderr: stderr)
        o.denials = [
            Denial(
                pid: 1234, comm: "go", syscall: "pidfd_open", syscallNumber: 434, action: "trap",
                signal: 31, timeMs: 35, source: "audit")
        ]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.exitCode, 2)
        XCTAssertNil(c.signal)
        XCTAssertEqual(c.failingProcess, "go")
        XCTAssertEqual(c.firstDiagnostic, "SIGSYS: bad system call")
        XCTAssertTrue(c.summary.contains("SIGSYS: bad system call"), c.summary)
    }

    /// Without a denial record the crash is still the go command's own.
    func testSigsysTracebackWithoutDenialIsStillGo() {
        let c = Classifier.classify(Recorded.exited(2, stderr: "SIGSYS: bad system call\nPC=0x4766ee m=0 sigcode=1\n"))
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.failingProcess, "go")
    }

    /// Catalog row (mission table): eventfd2 → EPERM under Go 1.23.
    func testEventfdFailureIsCrash() {
        let stderr = """
            runtime: eventfd failed with 18446744073709551615
            fatal error: runtime: eventfd failed

            goroutine 1 gp=0xc0000061c0 m=0 mp=0x10b1e60 [running]:
            runtime.throw({0x9d2f1e?, 0x0?})
            \t/usr/local/go/src/runtime/panic.go:1067 +0x48 fp=0xc00006ee00 sp=0xc00006edd0 pc=0x46f7a8

            """
        let c = Classifier.classify(Recorded.exited(2, stderr: stderr))
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.firstDiagnostic, "runtime: eventfd failed with 18446744073709551615")
        XCTAssertEqual(c.failingProcess, "go")
    }

    /// Catalog row 4: cgo-linked go 1.19 under clone3 → EPERM exits 2 after a SIGABRT traceback.
    func testCgoPthreadCreateAbortWithExit2IsCrash() {
        let stderr = """
            runtime/cgo: pthread_create failed: Operation not permitted
            SIGABRT: abort
            PC=0x7f1d2c8a8d3c m=3 sigcode=18446744073709551610

            goroutine 0 [idle]:
            runtime: unknown pc 0x7f1d2c8a8d3c

            """
        let c = Classifier.classify(Recorded.exited(2, stderr: stderr))
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.exitCode, 2)
        XCTAssertEqual(c.firstDiagnostic, "runtime/cgo: pthread_create failed: Operation not permitted")
    }

    /// The same abort on a version that lets SIGABRT kill the process is still the runtime's crash.
    func testCgoAbortKilledBySigabrtIsCrash() {
        var o = Recorded.exited(
            0, stderr: "runtime/cgo: pthread_create failed: Operation not permitted\nSIGABRT: abort\n")
        o.termination = .signaled(6)
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.signal, "SIGABRT")
        XCTAssertNil(c.exitCode)
    }

    /// `runtime: failed to create new OS thread` inside compile, relayed by go build (catalog row 8).
    func testChildTracebackNamesTheTool() {
        let stderr = """
            # example.com/x
            runtime: failed to create new OS thread (have 7 already; errno=11)
            runtime: may need to increase max user processes (ulimit -u)
            fatal error: newosproc

            goroutine 1 [running]:
            cmd/compile/internal/gc.Main(0xc0001a2000)
            \t/usr/lib/go-1.19/src/cmd/compile/internal/gc/main.go:190 +0x5c

            """
        let c = Classifier.classify(Recorded.exited(2, stderr: stderr))
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.failingProcess, "compile")
        XCTAssertEqual(c.firstDiagnostic, "runtime: failed to create new OS thread (have 7 already; errno=11)")
    }

    /// A panic from the program `go run` ran: go prints `exit status 2` after it.
    func testPanicInProgramRunByGoRun() {
        var o = Recorded.exited(
            1, stderr: "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/w/main.go:5 +0x25\nexit status 2\n")
        o.processes = [
            Recorded.process("go", pid: 10, exited: true),
            Recorded.process("app", pid: 20, ppid: 10, exe: "/w/tmp/go-build123/b001/exe/app", exited: true),
        ]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .crash)
        XCTAssertEqual(c.failingProcess, "app")
        XCTAssertEqual(c.firstDiagnostic, "panic: boom")
    }

    /// "panic:" without a goroutine trace is a message, not a runtime death.
    func testPanicWordWithoutTraceIsClearError() {
        let c = Classifier.classify(Recorded.exited(1, stderr: "panic: config missing, see --help\n"))
        XCTAssertEqual(c.outcome, .clearError)
    }

    // MARK: signaled

    /// Catalog row 2: pidfd_open → KILL_PROCESS; the go command dies by SIGSYS with no traceback.
    func testSeccompKillIsSignaled() {
        var o = RunObservation(termination: .signaled(31), durationMs: 40, stdout: "", stderr: "")
        o.denials = [
            Denial(
                pid: 99, comm: "go", syscall: "pidfd_open", syscallNumber: 434, action: "kill-process",
                signal: 31, timeMs: 30, source: "audit")
        ]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .signaled)
        XCTAssertEqual(c.signal, "SIGSYS")
        XCTAssertNil(c.exitCode)
        XCTAssertEqual(c.failingProcess, "go")
        XCTAssertTrue(c.summary.contains("pidfd_open"), c.summary)
    }

    /// A traceback does not make SIGKILL a crash: something outside the runtime killed it.
    func testSigkillWithTracebackTextIsSignaled() {
        var o = Recorded.exited(0, stderr: "fatal error: runtime: out of memory\n")
        o.termination = .signaled(9)
        XCTAssertEqual(Classifier.classify(o).outcome, .signaled)
    }

    // MARK: clear-error

    /// Catalog row 5.
    func testGocacheUndefinedIsClearError() {
        let stderr = "GOCACHE is not defined and neither $XDG_CACHE_HOME nor $HOME are defined\n"
        let c = Classifier.classify(Recorded.exited(1, stderr: stderr))
        XCTAssertEqual(c.outcome, .clearError)
        XCTAssertEqual(c.exitCode, 1)
        XCTAssertEqual(c.firstDiagnostic, "GOCACHE is not defined and neither $XDG_CACHE_HOME nor $HOME are defined")
        XCTAssertEqual(c.failingProcess, "go")
    }

    /// Catalog row 6.
    func testBuildCachePermissionDeniedIsClearError() {
        let stderr = "go: failed to initialize build cache at /.cache/go-build: mkdir /.cache: permission denied\n"
        let c = Classifier.classify(Recorded.exited(1, stderr: stderr))
        XCTAssertEqual(c.outcome, .clearError)
        XCTAssertEqual(c.firstDiagnostic, stderr.trimmingCharacters(in: .newlines))
    }

    /// Catalog row 9: the package header is context; the killed child is compile.
    func testKilledCompileIsClearErrorNamingCompile() {
        let stderr = "# example.com/x\n/usr/lib/go-1.19/pkg/tool/linux_amd64/compile: signal: killed\n"
        let c = Classifier.classify(Recorded.exited(1, stderr: stderr))
        XCTAssertEqual(c.outcome, .clearError)
        XCTAssertEqual(c.failingProcess, "compile")
        XCTAssertEqual(c.firstDiagnostic, "/usr/lib/go-1.19/pkg/tool/linux_amd64/compile: signal: killed")
    }

    func testKilledLinkIsNamed() {
        let stderr = "# example.com/x\n/opt/go/pkg/tool/linux_amd64/link: signal: killed\n"
        XCTAssertEqual(Classifier.classify(Recorded.exited(1, stderr: stderr)).failingProcess, "link")
    }

    /// Catalog row 8, the fork side.
    func testForkExecFailureNamesTheChild() {
        let stderr = """
            go: downloading example.com/dep v1.0.0
            # example.com/x
            fork/exec /root/.toolchains/go/pkg/tool/linux_amd64/compile: resource temporarily unavailable

            """
        let c = Classifier.classify(Recorded.exited(1, stderr: stderr))
        XCTAssertEqual(c.outcome, .clearError)
        XCTAssertEqual(c.failingProcess, "compile")
        XCTAssertEqual(
            c.firstDiagnostic,
            "fork/exec /root/.toolchains/go/pkg/tool/linux_amd64/compile: resource temporarily unavailable")
    }

    func testGoToolNameIsTaken() {
        let c = Classifier.classify(Recorded.exited(1, stderr: "go tool compile: exit status 2\n"))
        XCTAssertEqual(c.failingProcess, "compile")
    }

    // MARK: silent-exit and ok

    /// The seed ghost: go install "succeeds" but nothing is installed.
    func testExitZeroWithoutArtifactIsSilentExit() {
        var o = Recorded.exited(0, stderr: "")
        o.successArtifact = "out/app"
        o.artifactExists = false
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .silentExit)
        XCTAssertEqual(c.exitCode, 0)
        XCTAssertTrue(c.summary.contains("out/app"), c.summary)
    }

    func testExitZeroWithArtifactIsOk() {
        var o = Recorded.exited(0, stderr: "")
        o.successArtifact = "out/app"
        o.artifactExists = true
        XCTAssertEqual(Classifier.classify(o).outcome, .ok)
    }

    /// Catalog row 16: go run exits 0 but the program printed nothing.
    func testExitZeroWithoutExpectedStdoutIsSilentExit() {
        var o = Recorded.exited(0, stderr: "", stdout: "")
        o.successStdout = "^alive$"
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .silentExit)
        XCTAssertTrue(c.summary.contains("stdout"), c.summary)
        o.stdout = "starting\nalive\n"
        XCTAssertEqual(Classifier.classify(o).outcome, .ok)
    }

    func testNonZeroExitWithEmptyStderrIsSilentExit() {
        let c = Classifier.classify(Recorded.exited(3, stderr: " \n\n"))
        XCTAssertEqual(c.outcome, .silentExit)
        XCTAssertEqual(c.exitCode, 3)
        XCTAssertNil(c.firstDiagnostic)
    }

    /// `go run` echoing the program's exit code adds nothing: still silent.
    func testExitStatusEchoAloneIsSilentExit() {
        var o = Recorded.exited(1, stderr: "exit status 3\n")
        o.processes = [Recorded.process("app", pid: 20, exe: "/w/go-build9/b001/exe/app", exited: true)]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .silentExit)
        XCTAssertEqual(c.failingProcess, "app")
    }

    // MARK: hang

    /// Catalog row 13: frozen tasks show S; cgroup.events says frozen.
    func testFrozenCgroupIsFrozenHangAlthoughStatesAreSleeping() {
        var o = RunObservation(
            termination: .killedByHarness(reason: .timeout), durationMs: 5000, stdout: "", stderr: "")
        o.processes = [Recorded.process("go", pid: 10), Recorded.process("compile", pid: 11, ppid: 10)]
        o.cgroup = CgroupObservation(
            path: "/sys/fs/cgroup/unified/ghostrun/x", frozenSeen: true,
            events: [CgroupEvent(timeMs: 300, event: "frozen")])
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .hang)
        XCTAssertEqual(c.hangKind, .frozen)
    }

    /// The v1 freezer does not report events we can rely on; the wait channel still tells.
    func testFreezerWaitChannelIsFrozenWithoutCgroupEvents() {
        var o = RunObservation(
            termination: .killedByHarness(reason: .noProgress), durationMs: 5000, stdout: "", stderr: "")
        o.hangSnapshots = [
            HangSnapshot(pid: 10, comm: "go", state: "S", wchan: "do_freezer_trap", syscall: "202", stack: nil)
        ]
        XCTAssertEqual(Classifier.classify(o).hangKind, .frozen)
        o.hangSnapshots = []
        o.processes = [Recorded.process("go", pid: 10, wchan: "__refrigerator")]
        XCTAssertEqual(Classifier.classify(o).hangKind, .frozen)
    }

    /// Frozen, thawed, then hung for another reason: not a frozen hang.
    func testThawedCgroupIsNotFrozen() {
        var o = RunObservation(
            termination: .killedByHarness(reason: .timeout), durationMs: 5000, stdout: "", stderr: "")
        o.cgroup = CgroupObservation(
            path: "/cg", frozenSeen: true,
            events: [
                CgroupEvent(timeMs: 300, event: "frozen"), CgroupEvent(timeMs: 900, event: "thawed"),
            ])
        o.processes = [Recorded.process("go", pid: 10, wchan: "futex_wait_queue")]
        XCTAssertEqual(Classifier.classify(o).hangKind, .blocked)
    }

    func testAllStoppedIsStopped() {
        var o = RunObservation(
            termination: .killedByHarness(reason: .timeout), durationMs: 5000, stdout: "", stderr: "")
        o.processes = [
            Recorded.process("go", pid: 10, state: "T"), Recorded.process("compile", pid: 11, state: "t"),
            Recorded.process("asm", pid: 12, state: "S", exited: true),
        ]
        o.cpuMovingAtEnd = false
        XCTAssertEqual(Classifier.classify(o).hangKind, .stopped)
        o.processes[1] = Recorded.process("compile", pid: 11, state: "S", wchan: "pipe_read")
        XCTAssertEqual(Classifier.classify(o).hangKind, .blocked)
    }

    func testMovingCpuIsSpinning() {
        var o = RunObservation(
            termination: .killedByHarness(reason: .noProgress), durationMs: 5000, stdout: "", stderr: "")
        o.processes = [
            Recorded.process("go", pid: 10, cpuTicks: 5), Recorded.process("loop", pid: 11, state: "R", cpuTicks: 900),
        ]
        o.cpuMovingAtEnd = true
        let c = Classifier.classify(o)
        XCTAssertEqual(c.hangKind, .spinning)
        XCTAssertEqual(c.failingProcess, "loop")
    }

    func testOtherwiseBlockedNamesTheWaiter() {
        var o = RunObservation(
            termination: .killedByHarness(reason: .timeout), durationMs: 5000, stdout: "", stderr: "")
        o.hangSnapshots = [
            HangSnapshot(pid: 10, comm: "go", state: "S", wchan: "do_wait", syscall: "61", stack: nil),
            HangSnapshot(pid: 11, comm: "compile", state: "S", wchan: "futex_wait_queue", syscall: "202", stack: nil),
        ]
        let c = Classifier.classify(o)
        XCTAssertEqual(c.outcome, .hang)
        XCTAssertEqual(c.hangKind, .blocked)
        XCTAssertEqual(c.failingProcess, "compile")
        XCTAssertTrue(c.summary.contains("futex_wait_queue"), c.summary)
    }

    // MARK: diagnostics

    func testFirstDiagnosticSkipsChatterAndDumps() {
        XCTAssertEqual(
            StderrReading.firstDiagnostic(in: "\n\ngo: downloading x v1\n\tfoo.go:1\nreal problem\n"), "real problem")
        XCTAssertEqual(StderrReading.firstDiagnostic(in: "# example.com/x\n"), "# example.com/x")
        XCTAssertEqual(StderrReading.firstDiagnostic(in: "rax    0x0\nr10    0x8\nerror 0x5\n"), "error 0x5")
        let quitDump =
            "SIGQUIT: quit\nPC=0x1 m=0\n\ngoroutine 1 [running]:\n"
            + "runtime.gopark(0x0?, 0x0?, 0x0?)\nmain.main()\n"
        XCTAssertNil(StderrReading.firstDiagnostic(in: quitDump))
    }
}
