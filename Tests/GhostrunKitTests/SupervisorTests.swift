import CGhostrun
import Foundation
import XCTest

@testable import GhostrunKit

final class FaultSpecTests: XCTestCase {
    func testShortSyntax() throws {
        let fault = try FaultSpec.parse("openat:EACCES:path=/x/**:process=compile:nth=3")
        XCTAssertEqual(fault.syscall, "openat")
        XCTAssertEqual(fault.errno, EACCES)
        XCTAssertEqual(fault.path, "/x/**")
        XCTAssertEqual(fault.process, "compile")
        XCTAssertEqual(fault.when, .nth(3))
        let delayed = try FaultSpec.parse("read:delay=5ms")
        XCTAssertEqual(delayed.delay, .milliseconds(5))
        XCTAssertNil(delayed.errno)
        XCTAssertEqual(delayed.when, .every)
        XCTAssertEqual(try FaultSpec.parse("write:EBADF:probability=0.25").when, .probability(0.25))
    }

    func testBadSpecsSayWhatIsWrong() {
        for (spec, words) in [("opnat:EACCES", "unknown syscall"), ("openat:EWHAT", "not an errno"),
                              ("openat", "errno"), ("openat:EIO:nth=0", "nth"), ("openat:EIO:colour=red", "unknown key"),
                              ("openat:EIO:probability=2", "between 0 and 1")] {
            XCTAssertThrowsError(try FaultSpec.parse(spec), spec) { error in
                XCTAssertTrue("\(error)".contains(words), "\(spec): \(error)")
            }
        }
    }

    func testGlobs() throws {
        func matches(_ glob: String, _ path: String) throws -> Bool {
            let regex = try NSRegularExpression(pattern: FaultMatcher.regex(forGlob: glob))
            return regex.firstMatch(in: path, range: NSRange(path.startIndex..., in: path)) != nil
        }
        XCTAssertTrue(try matches("/w/cache/**", "/w/cache/ab/cd-a"))
        XCTAssertFalse(try matches("/w/cache/**", "/w/other/x"))
        XCTAssertTrue(try matches("**/*.go", "/src/fmt/print.go"))
        XCTAssertFalse(try matches("/src/*.go", "/src/fmt/print.go"), "* stops at /")
        XCTAssertTrue(try matches("/a/b?.txt", "/a/b1.txt"))
        XCTAssertTrue(try matches("/a+b/(x)", "/a+b/(x)"), "regex characters are literal")
    }

    func testProbabilityDrawsDependOnlyOnSeedFaultAndCount() {
        func injected(seed: UInt64) -> [UInt64] {
            let fault = CompiledFault(index: 0, fault: Fault(syscall: "read", errno: EIO, when: .probability(0.3)),
                                      pathGlob: nil)
            return (1...200).compactMap { _ in fault.decide(seed: seed, process: "compile -p fmt", path: nil) }
        }
        XCTAssertEqual(injected(seed: 42), injected(seed: 42))
        XCTAssertNotEqual(injected(seed: 42), injected(seed: 43))
        let count = injected(seed: 42).count
        XCTAssertTrue((30...90).contains(count), "about 30% of 200, got \(count)")
        let nth = CompiledFault(index: 0, fault: Fault(syscall: "read", errno: EIO, when: .nth(3)), pathGlob: nil)
        XCTAssertEqual((1...6).map { _ in nth.decide(seed: 0, process: "link", path: nil) != nil },
                       [false, false, true, false, false, false])
    }

    /// The issue-18 bug: the draw used one counter for the whole tree, so the order in which concurrent compile
    /// processes' calls arrived decided which calls were injected. Now each process's own calls decide.
    func testSeededDecisionsDoNotDependOnHowProcessesInterleave() {
        let processes = (0..<6).map { "compile -p example.com/p\($0)" }
        let calls = processes.flatMap { process in (0..<80).map { (process, "/w/src/f\($0 % 7).go") } }
        func injected(_ order: [(String, String)], when: Fault.When) -> Set<String> {
            let fault = CompiledFault(index: 1, fault: Fault(syscall: "openat", errno: EIO, when: when),
                                      pathGlob: nil)
            var result = Set<String>()
            for (process, path) in order {
                if let match = fault.decide(seed: 7, process: process, path: path) {
                    result.insert("\(process)|\(path)|\(match)")
                }
            }
            return result
        }
        var generator = SplitMix(state: 99)
        for when in [Fault.When.probability(0.05), .nth(5)] {
            let inOrder = injected(calls, when: when)
            XCTAssertFalse(inOrder.isEmpty)
            for _ in 0..<20 {
                // Another interleaving of the processes, each keeping its own call order.
                var queues = Dictionary(grouping: calls, by: \.0)
                var shuffled: [(String, String)] = []
                while !queues.isEmpty {
                    let keys = queues.keys.sorted()
                    let key = keys[Int(generator.next() % UInt64(keys.count))]
                    shuffled.append(queues[key]!.removeFirst())
                    if queues[key]!.isEmpty { queues[key] = nil }
                }
                XCTAssertEqual(injected(shuffled, when: when), inOrder, "\(when)")
            }
        }
    }

    func testProcessIdentityNamesTheRunsPathsAndCountsRepeats() {
        var names = ProcessIdentity(workRoot: "/tmp/ghostrun-4242-abc", goroot: "/opt/go")
        let compile = ["/opt/go/pkg/tool/linux_amd64/compile", "-o", "/tmp/ghostrun-4242-abc/tmp/go-build3141592/b011/_pkg_.a",
                       "-p", "fmt"]
        XCTAssertEqual(names.name(arguments: compile, exe: "/opt/go/pkg/tool/linux_amd64/compile"), "compile -p fmt")
        XCTAssertEqual(names.name(arguments: compile, exe: "/opt/go/pkg/tool/linux_amd64/compile"),
                       "compile -p fmt #2")
        let link = ["/opt/go/pkg/tool/linux_amd64/link", "-o", "/tmp/ghostrun-4242-abc/tmp/go-build99/b001/exe/a.out"]
        XCTAssertEqual(names.name(arguments: link, exe: nil), "link -o $WORK/tmp/go-build*/b001/exe/a.out")
        let long = names.name(arguments: ["vet"] + Array(repeating: "/opt/go/src/x.go", count: 40), exe: nil)
        XCTAssertTrue(long.hasPrefix("vet $GOROOT/src/x.go") && long.contains("… #"), long)
        XCTAssertLessThan(long.count, 200)
        XCTAssertEqual(ProcessIdentity.replaceBuildDirectories("a/go-build/x go-build12 go-build"),
                       "a/go-build/x go-build* go-build")
    }

    func testNotifyFilterCompiles() throws {
        let policy = SeccompPolicy(rules: [
            SeccompRule(syscalls: ["pidfd_open"], action: .trap),
            SeccompRule(syscalls: ["eventfd2"], action: .errno(EPERM)),
        ])
        let all = try SeccompCompiler.compile(policy, notify: NotifyPlan(traceAll: true, traced: [], faulted: [],
                                                                         handOverDescriptor: 1000))
        XCTAssertGreaterThan(all.instructions.count, 4)
        let some = try SeccompCompiler.compile(policy, notify: NotifyPlan(traceAll: false, traced: ["openat"],
                                                                          faulted: ["write"], handOverDescriptor: 1000))
        XCTAssertGreaterThan(some.instructions.count, 4)
        XCTAssertEqual(SeccompCompiler.policyAction(for: "eventfd2", in: policy), .errno(EPERM))
        XCTAssertEqual(SeccompCompiler.policyAction(for: "openat", in: policy), .allow)
    }
}

/// The supervisor on the real go and on real kernels' user notification.
final class SupervisorIntegrationTests: XCTestCase {
    let runner = ScenarioRunner()

    override func setUpWithError() throws {
        try requireRoot()
    }

    private func go() throws -> Toolchain { try TestToolchains.require(TestToolchains.static123, "go >= 1.23") }

    func testTraceAttributesCallsToToolchainComponents() throws {
        let result = runner.run(try scenario("""
            name: trace-build
            run: [go, build, -o, out/app, .]
            fixture: ../fixtures/hello
            trace: true
            """), toolchain: try go())
        XCTAssertEqual(result.outcome, .ok, result.summary)
        let trace = try XCTUnwrap(result.evidence.trace)
        XCTAssertEqual(trace.notified, ["all"])
        for role in ["go", "compile", "link"] {
            XCTAssertGreaterThan(trace.byRole[role]?.reduce(0) { $0 + $1.calls } ?? 0, 0, "no calls for \(role)")
        }
        let sum = trace.byRole.values.flatMap { $0 }.reduce(0) { $0 + $1.calls }
        XCTAssertEqual(sum, trace.totalCalls)
        XCTAssertEqual(trace.byProcess.reduce(0) { $0 + $1.calls }, trace.totalCalls)
        XCTAssertTrue(trace.byRole["compile"]?.contains { $0.syscall == "openat" } ?? false)
        XCTAssertGreaterThan(trace.supervisorMicrosecondsPerCall, 0)
    }

    func testNthFaultInjectsExactlyOnceWithPathAndRole() throws {
        let result = runner.run(try scenario("""
            name: nth-link
            run: [go, build, -o, out/app, .]
            fixture: ../fixtures/hello
            faults:
              - {syscall: openat, errno: EIO, process: link, path: "**/*.a", nth: 1}
            """), toolchain: try go())
        XCTAssertEqual(result.outcome, .clearError, result.summary)
        let injected = result.evidence.denials.filter { $0.action == "injected" }
        XCTAssertEqual(injected.count, 1)
        XCTAssertEqual(injected.first?.role, "link")
        XCTAssertEqual(injected.first?.errno, "EIO")
        XCTAssertTrue(injected.first?.path?.hasSuffix(".a") ?? false, "\(injected)")
        XCTAssertEqual(result.failingProcess, "link")
    }

    func testSameSeedInjectsTheSameCalls() throws {
        let yaml = """
            name: seeded
            run: [go, env, GOROOT]
            seed: 42
            faults:
              - {syscall: openat, errno: ENOENT, probability: 0.3}
            """
        let runs = try (0..<2).map { _ in runner.run(try scenario(yaml), toolchain: try go()) }
        let calls = runs.map { $0.evidence.denials.filter { $0.action == "injected" }.map { "\($0.syscall) \($0.path ?? "")" } }
        XCTAssertFalse(calls[0].isEmpty, "the seed should inject something")
        XCTAssertEqual(calls[0], calls[1])
    }

    func testErrnoRulesAreAnsweredAndRecordedByTheSupervisorWhileTracing() throws {
        let result = runner.run(try scenario("""
            name: errno-traced
            run: [go, build, -o, out/app, .]
            fixture: ../fixtures/hello
            trace: [openat, pidfd_open]
            sandbox:
              seccomp:
                rules:
                  - {syscalls: [pidfd_open], action: errno, errno: EPERM}
            """), toolchain: try go())
        XCTAssertEqual(result.outcome, .ok, result.summary)
        let denial = try XCTUnwrap(result.evidence.firstDenial)
        XCTAssertEqual(denial.syscall, "pidfd_open")
        XCTAssertEqual(denial.action, "errno")
        XCTAssertEqual(denial.errno, "EPERM")
        XCTAssertEqual(denial.source, "supervisor")
        XCTAssertEqual(result.evidence.trace?.notified, ["openat", "pidfd_open"])
    }

    func testLatencyFaultSlowsButKeepsTheBuildOk() throws {
        let result = runner.run(try scenario("""
            name: slow
            run: [go, version]
            faults:
              - {syscall: openat, delay: 20ms, every: true}
            """), toolchain: try go())
        XCTAssertEqual(result.outcome, .ok, result.summary)
        let openats = result.evidence.trace?.byRole["go"]?.first { $0.syscall == "openat" }?.calls ?? 0
        XCTAssertGreaterThan(openats, 0)
        // The delays of concurrent threads overlap, so compare with an undelayed run rather than multiply.
        let baseline = runner.run(try scenario("name: fast\nrun: [go, version]\n"), toolchain: try go())
        XCTAssertGreaterThan(result.durationMs, baseline.durationMs + 150,
                             "\(openats) openat calls delayed 20 ms each: \(result.durationMs) ms vs \(baseline.durationMs) ms")
    }

    /// A busy build with every syscall notified, twice: no deadlock, no livelock, no lost record.
    func testBusyBuildWithEverySyscallTracedRepeatedly() throws {
        for round in 1...2 {
            let result = runner.run(try scenario("""
                name: busy-\(round)
                run: [go, build, -a, -o, out/app, .]
                fixture: ../fixtures/multi
                trace: true
                timeout: 5m
                """), toolchain: try go())
            XCTAssertEqual(result.outcome, .ok, "round \(round): \(result.summary)")
            let trace = try XCTUnwrap(result.evidence.trace)
            XCTAssertGreaterThan(trace.totalCalls, 50_000, "round \(round)")
            XCTAssertEqual(trace.byProcess.reduce(0) { $0 + $1.calls }, trace.totalCalls)
        }
    }

    /// If the supervisor goes away, notified syscalls fail with ENOSYS instead of hanging the target.
    func testClosedListenerMakesNotifiedCallsFailWithENOSYS() throws {
        var pair: [Int32] = [-1, -1]
        XCTAssertEqual(ghostrun_socketpair(&pair), 0)
        let sockets = pair
        let target: Int32 = 900
        var plan = SpawnPlan(executable: "/bin/cat", arguments: ["cat", "/etc/hostname"], environment: [])
        let policy = SeccompPolicy()
        plan.filter = try SeccompCompiler.compile(
            policy, notify: NotifyPlan(traceAll: false, traced: ["openat"], faulted: [], handOverDescriptor: target))
        plan.seccompFlags = UInt32(GHOSTRUN_SECCOMP_FILTER_FLAG_NEW_LISTENER) | UInt32(GHOSTRUN_SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
        plan.noNewPrivs = true
        plan.listenerSocket = sockets[1]
        plan.listenerSocketTarget = target
        let errorPipe = Pipe()
        plan.stderr = errorPipe.fileHandleForWriting.fileDescriptor
        // Receive the listener and close it at once: the supervisor "died" before answering anything.
        let received = DispatchSemaphore(value: 0)
        Thread {
            let fd = ghostrun_receive_fd(sockets[0], 10_000)
            if fd >= 0 { close(fd) }
            received.signal()
        }.start()
        let pid = try Spawner.spawn(plan)
        close(sockets[1])
        received.wait()
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(10)
        var reaped = false
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid {
                reaped = true
                break
            }
            usleep(20_000)
        }
        if !reaped { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
        close(sockets[0])
        XCTAssertTrue(reaped, "the target hung after the supervisor went away")
        try errorPipe.fileHandleForWriting.close()
        let message = String(decoding: errorPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual((status >> 8) & 0xff, 0)
        // ld.so prints "Error 38", libc's strerror "Function not implemented": ENOSYS either way.
        XCTAssertTrue(message.contains("Function not implemented") || message.contains("Error 38"), message)
    }
}

/// A small seeded generator for test interleavings.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        return FaultMatcher.splitmix64(state)
    }
}
