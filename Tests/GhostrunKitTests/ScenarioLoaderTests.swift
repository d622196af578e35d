import Foundation
import XCTest

@testable import GhostrunKit

final class ScenarioLoaderTests: XCTestCase {
    /// The example of docs/scenario-format.md, verbatim except `profile:` (a profile needs a file the runner loads).
    static let contractExample = """
        name: gocache-readonly            # required; [a-z0-9][a-z0-9._-]*; unique in a run
        description: GOCACHE is read-only; go build must fail and say why
        tags: [seed, cache]
        go: ">=1.21"                      # optional version constraint: ==, >=, <=, >, <, ranges "1.21 - 1.23"
        run: [go, build, -o, out/app, .]  # required argv; argv[0] "go" = the toolchain under test
        files:                            # written into the scenario's own work dir ($WORK) first
          go.mod: |
            module example.com/hello
            go 1.19
          main.go: |
            package main
            import "fmt"
            func main() { fmt.Println("alive") }
        fixture: fixtures/hello           # alternative/addition: a directory copied into $WORK
        workdir: .                        # relative to $WORK
        env:                              # on top of the base environment; null unsets
          GOCACHE: $WORK/cache
          HOME: null
        env_clear: false                  # true: start from PATH only (plus `env`)
        paths:                            # prepared in order, before the run, as root
          - {path: $WORK/cache, mkdir: true, mode: "0555", owner: "65534:65534"}
        sandbox:
          user: "65534:65534"             # uid:gid for the go command (root needed to switch)
          no_new_privs: true
          capabilities:                   # applied in order: drop, then add; names CAP_X or X, or ALL
            drop: [ALL]
            add: [CAP_DAC_OVERRIDE]
            ambient: []
          seccomp:
            default: allow                # allow | errno:NAME|NUMBER | trap | kill-process | kill-thread | log
            rules:                        # later rules override earlier ones for the same syscall
              - syscalls: [pidfd_open, pidfd_send_signal]
                action: trap              # allow | errno | trap | kill-process | kill-thread | log
              - syscalls: [eventfd2]
                action: errno
                errno: EPERM              # name or number
              - syscalls: [socket]
                action: errno
                errno: EACCES
                args: [{index: 0, op: eq, value: 40}]   # ops: eq ne lt le gt ge masked_eq (+ mask)
          rlimits:                        # as, nofile, nproc, memlock, data, stack, fsize, core, cpu
            nofile: 64                    # one number sets soft=hard; or {soft: 64, hard: 128}
            as: 512MiB                    # sizes accept KiB MiB GiB
          cgroup:
            pids_max: 16
            memory_max: 256MiB
            freeze:
              after: 300ms                # or on_process: compile  (freeze when such a process appears)
              hold: 2s                    # then thaw; omit to stay frozen until the timeout
        faults:                           # syscall fault injection, decided per call by the supervisor
          - syscall: openat
            errno: EACCES
            path: "$WORK/cache/**"        # glob on the syscall's path argument
            process: compile              # only in processes with this comm or exe basename
            nth: 3                        # the 3rd matching call; or `every: true`; or `probability: 0.2`
            delay: 50ms                   # optional latency before answering
        seed: 42                          # makes probability-based faults reproducible
        trace: true                       # record syscalls of the whole tree (or a list of syscall names)
        success:                          # what a correct run produces; exiting 0 without it is a silent-exit
          artifact: out/app               # inferred for `go build -o PATH` and `go install` when omitted
          stdout: "alive"                 # regular expression, searched
        timeout: 60s                      # wall limit; the whole cgroup is killed after it
        hang_after: 10s                   # no progress for this long (CPU, syscalls, output) → hang
        expect:                           # optional; the run passes when every given key holds
          outcome: clear-error            # see outcomes below; a list means any of them
          exit: 1
          signal: SIGSYS
          stderr: "permission denied"     # regular expression, searched
          stdout: "alive"
          artifact: out/app               # must exist after the run
          hang_kind: frozen

        """

    static let minimal = "name: t\nrun: [go, version]\n"

    private var temporaryDirectories: [URL] = []

    override func tearDown() {
        for directory in temporaryDirectories { try? FileManager.default.removeItem(at: directory) }
        temporaryDirectories = []
        super.tearDown()
    }

    private func makeTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ghostrun-loader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        temporaryDirectories.append(url)
        return url
    }

    private func write(_ text: String, to relative: String, in directory: URL) throws -> String {
        let url = directory.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// 1-based line of the first line containing `fragment`.
    private func line(of fragment: String, in text: String) -> Int {
        let lines = text.components(separatedBy: "\n")
        return (lines.firstIndex(where: { $0.contains(fragment) }) ?? -1) + 1
    }

    /// The errors a text produces; fails the test when it parses.
    private func errors(
        _ text: String, file: String = "/nonexistent/s.yaml", caller: StaticString = #filePath,
        callerLine: UInt = #line
    ) -> [ScenarioError] {
        do {
            _ = try ScenarioLoader.parse(text: text, file: file)
            XCTFail("expected a scenario error", file: caller, line: callerLine)
            return []
        } catch {
            let found = error.scenarioErrors
            XCTAssertFalse(found.isEmpty, "not a scenario error: \(error)", file: caller, line: callerLine)
            return found
        }
    }

    /// Asserts that `text` fails with exactly one error at `line` and `key`, whose message and hint say what is given.
    private func assertError(
        _ text: String, line: Int?, key: String?, message: String, hint: String? = nil,
        file: String = "/nonexistent/s.yaml", caller: StaticString = #filePath, callerLine: UInt = #line
    ) {
        let found = errors(text, file: file, caller: caller, callerLine: callerLine)
        guard found.count == 1, let error = found.first else {
            XCTFail(
                "expected one error, got \(found.count):\n\(found.map(\.description).joined(separator: "\n"))",
                file: caller, line: callerLine)
            return
        }
        XCTAssertEqual(error.file, file, file: caller, line: callerLine)
        XCTAssertEqual(error.line, line, "\(error)", file: caller, line: callerLine)
        XCTAssertEqual(error.key, key, "\(error)", file: caller, line: callerLine)
        XCTAssertTrue(error.message.contains(message), "message: \(error.message)", file: caller, line: callerLine)
        if let hint {
            XCTAssertTrue(
                error.hint?.contains(hint) == true, "hint: \(error.hint ?? "nil")", file: caller,
                line: callerLine)
        }
    }

    // MARK: Valid scenarios

    func testContractExampleParsesToEveryValue() throws {
        let directory = try makeTemporaryDirectory()
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("fixtures/hello"),
            withIntermediateDirectories: true)
        let file = try write(Self.contractExample, to: "readonly.yaml", in: directory)
        let scenarios = try ScenarioLoader.load(file: file)
        XCTAssertEqual(scenarios.count, 1)
        let s = try XCTUnwrap(scenarios.first)
        let text = Self.contractExample

        XCTAssertEqual(s.name, "gocache-readonly")
        XCTAssertEqual(s.description, "GOCACHE is read-only; go build must fail and say why")
        XCTAssertEqual(s.tags, ["seed", "cache"])
        XCTAssertEqual(s.goConstraint?.text, ">=1.21")
        XCTAssertEqual(s.goConstraint?.allows(GoVersion(major: 1, minor: 21)), true)
        XCTAssertEqual(s.goConstraint?.allows(GoVersion(major: 1, minor: 20, patch: 9)), false)
        XCTAssertEqual(s.run, ["go", "build", "-o", "out/app", "."])
        XCTAssertEqual(s.files.map(\.path), ["go.mod", "main.go"])
        XCTAssertEqual(s.files[0].content, "module example.com/hello\ngo 1.19\n")
        XCTAssertEqual(s.files[1].content, "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"alive\") }\n")
        let realDirectory = directory.standardizedFileURL.path
        XCTAssertEqual(s.fixture, realDirectory + "/fixtures/hello")
        XCTAssertEqual(s.scenarioDirectory, realDirectory)
        XCTAssertEqual(s.workdir, ".")
        XCTAssertEqual(s.env.map(\.name), ["GOCACHE", "HOME"])
        XCTAssertEqual(s.env[0].value, "$WORK/cache")
        XCTAssertNil(s.env[1].value)
        XCTAssertFalse(s.envClear)
        XCTAssertEqual(s.paths, [PathStep(path: "$WORK/cache", mkdir: true, mode: 0o555, owner: (65534, 65534))])

        XCTAssertEqual(s.sandbox.user?.uid, 65534)
        XCTAssertEqual(s.sandbox.user?.gid, 65534)
        XCTAssertTrue(s.sandbox.noNewPrivs)
        XCTAssertEqual(s.sandbox.capabilities?.drop, CapabilitySet.all)
        XCTAssertEqual(s.sandbox.capabilities?.add, CapabilitySet(numbers: [1]))  // CAP_DAC_OVERRIDE
        XCTAssertEqual(s.sandbox.capabilities?.ambient, [])

        let seccomp = try XCTUnwrap(s.sandbox.seccomp)
        XCTAssertNil(seccomp.profile)
        XCTAssertEqual(seccomp.defaultAction, .allow)
        XCTAssertEqual(seccomp.rules.count, 3)
        XCTAssertEqual(seccomp.rules[0].syscalls, ["pidfd_open", "pidfd_send_signal"])
        XCTAssertEqual(seccomp.rules[0].action, .trap)
        XCTAssertEqual(seccomp.rules[0].location, SourceLocation(file: file, line: line(of: "[pidfd_open", in: text)))
        XCTAssertEqual(seccomp.rules[1].syscalls, ["eventfd2"])
        XCTAssertEqual(seccomp.rules[1].action, .errno(ErrnoName.value(of: "EPERM")!))
        XCTAssertEqual(seccomp.rules[2].action, .errno(ErrnoName.value(of: "EACCES")!))
        XCTAssertEqual(seccomp.rules[2].args, [SeccompArgCondition(index: 0, op: .eq, value: 40)])
        XCTAssertEqual(seccomp.rules[2].location?.line, line(of: "syscalls: [socket]", in: text))

        XCTAssertEqual(
            s.sandbox.rlimits,
            [
                ResourceLimit(name: "nofile", resource: 7, soft: 64, hard: 64),
                ResourceLimit(name: "as", resource: 9, soft: 512 << 20, hard: 512 << 20),
            ])
        XCTAssertEqual(s.sandbox.cgroup.pidsMax, 16)
        XCTAssertEqual(s.sandbox.cgroup.memoryMax, 256 << 20)
        XCTAssertEqual(s.sandbox.cgroup.freeze, [FreezeStep(trigger: .after(.milliseconds(300)), hold: .seconds(2))])

        XCTAssertEqual(s.faults.count, 1)
        let fault = try XCTUnwrap(s.faults.first)
        XCTAssertEqual(fault.syscall, "openat")
        XCTAssertEqual(fault.errno, ErrnoName.value(of: "EACCES"))
        XCTAssertEqual(fault.path, "$WORK/cache/**")
        XCTAssertEqual(fault.process, "compile")
        XCTAssertEqual(fault.when, .nth(3))
        XCTAssertEqual(fault.delay, .milliseconds(50))
        XCTAssertEqual(fault.location, SourceLocation(file: file, line: line(of: "- syscall: openat", in: text)))
        XCTAssertEqual(s.seed, 42)
        XCTAssertEqual(s.trace, .all)
        XCTAssertEqual(s.success, SuccessCriteria(artifact: "out/app", stdout: "alive"))
        XCTAssertEqual(s.timeout, .seconds(60))
        XCTAssertEqual(s.hangAfter, .seconds(10))

        let expect = try XCTUnwrap(s.expect)
        XCTAssertEqual(expect.outcomes, [.clearError])
        XCTAssertEqual(expect.exit, 1)
        XCTAssertEqual(expect.signal, "SIGSYS")
        XCTAssertEqual(expect.stderr, "permission denied")
        XCTAssertEqual(expect.stdout, "alive")
        XCTAssertEqual(expect.artifact, "out/app")
        XCTAssertEqual(expect.hangKind, .frozen)
        XCTAssertEqual(s.location, SourceLocation(file: file, line: 1))
    }

    func testProfileIsReadWhenTheScenarioIsLoaded() throws {
        let text = Self.minimal + "sandbox:\n  seccomp:\n    profile: docker-default\n    runtime: crun\n"
        let policy = try XCTUnwrap(ScenarioLoader.parse(text: text, file: "p.yaml").first?.sandbox.seccomp)
        XCTAssertEqual(policy.profile, "docker-default")
        XCTAssertEqual(policy.runtime, .crun)
        XCTAssertEqual(policy.profileDocument?.defaultAction, ProfileAction(kind: .errno, errnoRet: 1))
        XCTAssertFalse(policy.defaultGiven)
        // As in the contract's example, `default:` beside a profile replaces the profile's defaultAction.
        let both = try XCTUnwrap(
            ScenarioLoader.parse(
                text: Self.minimal + "sandbox:\n  seccomp:\n    profile: docker-default\n    default: allow\n",
                file: "p.yaml"
            ).first?.sandbox.seccomp)
        XCTAssertTrue(both.defaultGiven)
        XCTAssertEqual(both.defaultAction, .allow)
    }

    func testDefaultsMatchTheContract() throws {
        let s = try XCTUnwrap(ScenarioLoader.parse(text: Self.minimal, file: "d/min.yaml").first)
        XCTAssertEqual(s.timeout, .seconds(60))
        XCTAssertEqual(s.hangAfter, .seconds(10))
        XCTAssertEqual(s.workdir, ".")
        XCTAssertEqual(s.trace, .off)
        XCTAssertNil(s.expect)
        XCTAssertNil(s.sandbox.seccomp)
        XCTAssertNil(s.sandbox.capabilities)
        XCTAssertEqual(s.location, SourceLocation(file: "d/min.yaml", line: 1))
        XCTAssertEqual(
            s.scenarioDirectory,
            URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("d")
                .standardizedFileURL.path)
    }

    func testScenariosListFormGivesEachItsLocation() throws {
        let text = """
            scenarios:
              - name: first
                run: [go, version]
              - name: second
                run: [go, env]
                timeout: 2m
            """
        let scenarios = try ScenarioLoader.parse(text: text, file: "list.yaml")
        XCTAssertEqual(scenarios.map(\.name), ["first", "second"])
        XCTAssertEqual(scenarios.map(\.location.line), [2, 4])
        XCTAssertEqual(scenarios[1].timeout, .seconds(120))
        XCTAssertEqual(scenarios[1].run, ["go", "env"])
    }

    func testJSONFormParsesLikeYAML() throws {
        let directory = try makeTemporaryDirectory()
        let json = """
            {
              "name": "json-form",
              "run": ["go", "build", "./..."],
              "env": {"CGO_ENABLED": 0, "GOFLAGS": "-mod=mod", "HOME": null},
              "paths": [{"path": "$WORK/ro", "mkdir": true, "mode": "0500", "owner": "1000"}],
              "sandbox": {
                "seccomp": {"default": "allow",
                            "rules": [{"syscalls": ["openat"], "action": "errno", "errno": 13,
                                       "args": [{"index": 2, "op": "masked_eq", "value": 1, "mask": 3}]}]},
                "rlimits": {"nofile": {"soft": 64, "hard": 128}, "core": "unlimited"}
              },
              "expect": {"outcome": ["clear-error", "crash"], "signal": "sys"}
            }
            """
        let file = try write(json, to: "sub/scenario.json", in: directory)
        let s = try XCTUnwrap(ScenarioLoader.load(file: file).first)
        XCTAssertEqual(s.name, "json-form")
        XCTAssertEqual(s.run, ["go", "build", "./..."])
        XCTAssertEqual(s.env.map(\.name), ["CGO_ENABLED", "GOFLAGS", "HOME"])
        XCTAssertEqual(s.env.map(\.value), ["0", "-mod=mod", nil])
        XCTAssertEqual(s.paths, [PathStep(path: "$WORK/ro", mkdir: true, mode: 0o500, owner: (1000, 1000))])
        let rule = try XCTUnwrap(s.sandbox.seccomp?.rules.first)
        XCTAssertEqual(rule.action, .errno(13))
        XCTAssertEqual(rule.args, [SeccompArgCondition(index: 2, op: .masked_eq, value: 1, mask: 3)])
        XCTAssertEqual(rule.location?.line, 8)
        XCTAssertEqual(
            s.sandbox.rlimits,
            [
                ResourceLimit(name: "nofile", resource: 7, soft: 64, hard: 128),
                ResourceLimit(name: "core", resource: 4, soft: .max, hard: .max),
            ])
        XCTAssertEqual(s.expect?.outcomes, [.clearError, .crash])
        XCTAssertEqual(s.expect?.signal, "SIGSYS")
        XCTAssertEqual(s.location.line, 2)
    }

    func testAlternativeFormsOfFreezeFaultsTraceAndActions() throws {
        let text =
            Self.minimal + """
                sandbox:
                  capabilities: {drop: [net_raw, CAP_SYS_ADMIN], ambient: [chown]}
                  seccomp:
                    default: kill
                    rules:
                      - {syscalls: [clone3], action: errno:ENOSYS}
                      - {syscalls: [ptrace], action: kill-thread}
                      - {syscalls: [socket], action: errno, errno: EAFNOSUPPORT, args: [{index: 1, op: ge, value: -1}]}
                  cgroup:
                    freeze:
                      - {on_process: compile}
                      - {after: 0ms, hold: 1.5s}
                faults:
                  - {syscall: write, delay: 5ms, every: true}
                  - {syscall: read, errno: 5, probability: 1}
                trace: [openat, execve]
                seed: 7
                """
        let s = try XCTUnwrap(ScenarioLoader.parse(text: text, file: "alt.yaml").first)
        XCTAssertEqual(s.sandbox.capabilities?.drop, CapabilitySet(numbers: [13, 21]))
        XCTAssertEqual(s.sandbox.capabilities?.ambient, CapabilitySet(numbers: [0]))
        XCTAssertEqual(s.sandbox.seccomp?.defaultAction, .killProcess)
        XCTAssertEqual(
            s.sandbox.seccomp?.rules.map(\.action),
            [.errno(ErrnoName.value(of: "ENOSYS")!), .killThread, .errno(ErrnoName.value(of: "EAFNOSUPPORT")!)])
        XCTAssertEqual(s.sandbox.seccomp?.rules[2].args.first?.value, UInt64.max)
        XCTAssertEqual(
            s.sandbox.cgroup.freeze,
            [
                FreezeStep(trigger: .onProcess("compile"), hold: nil),
                FreezeStep(trigger: .after(.zero), hold: .milliseconds(1500)),
            ])
        XCTAssertEqual(s.faults.map(\.when), [.every, .probability(1)])
        XCTAssertEqual(s.faults[0].errno, nil)
        XCTAssertEqual(s.faults[1].errno, 5)
        XCTAssertEqual(s.trace, .syscalls(["openat", "execve"]))
        XCTAssertEqual(s.seed, 7)
    }

    func testModeAndOwnerForms() throws {
        let text =
            Self.minimal + """
                paths:
                  - {path: a, mode: 0755}
                  - {path: $WORK/b, mode: 420, owner: 0:0}
                  - {path: $WORK, mode: "0o1777", content: "x"}
                """
        let s = try XCTUnwrap(ScenarioLoader.parse(text: text, file: "m.yaml").first)
        XCTAssertEqual(s.paths.map(\.mode), [0o755, 0o644, 0o1777])
        XCTAssertEqual(s.paths[1].owner?.uid, 0)
        XCTAssertEqual(s.paths[2].content, "x")
    }

    // MARK: Error description

    func testErrorDescriptionNamesFileLineKeyAndHint() {
        let error = ScenarioError(file: "a.yaml", line: 3, key: "sandbox.user", message: "bad", hint: "fix it")
        XCTAssertEqual(error.description, "a.yaml:3: sandbox.user: bad (hint: fix it)")
        XCTAssertEqual(
            ScenarioError(file: "a.yaml", line: nil, key: nil, message: "empty").description, "a.yaml: empty")
    }

    // MARK: Structure errors

    func testUnknownTopLevelKeySuggestsTheRightOne() {
        assertError(
            Self.minimal + "timout: 5s\n", line: 3, key: "timout", message: "unknown key `timout`",
            hint: "did you mean `timeout`?")
    }

    func testUnknownNestedKeyNamesTheDottedPath() {
        let text = Self.minimal + "sandbox:\n  seccomp:\n    defualt: errno:EPERM\n"
        assertError(
            text, line: 5, key: "sandbox.seccomp.defualt", message: "unknown key `defualt` in `sandbox.seccomp`",
            hint: "`default`")
    }

    func testUnknownKeyInsideAListItem() {
        let text =
            Self.minimal + "sandbox:\n  seccomp:\n    rules:\n      - syscalls: [read]\n        action: log\n"
            + "        arg: []\n"
        assertError(text, line: 8, key: "sandbox.seccomp.rules[0].arg", message: "unknown key", hint: "`args`")
    }

    func testEveryUnknownKeyIsReported() {
        let found = errors(Self.minimal + "tmeout: 1s\nsandbox:\n  no_new_priv: true\n")
        XCTAssertEqual(found.map(\.key), ["tmeout", "sandbox.no_new_priv"])
        XCTAssertEqual(found.map(\.line), [3, 5])
    }

    // MARK: Strict values (each was accepted, skipped or trapped before)

    func testGoConstraintIsParsedStrictly() {
        for text in ["1.21+", "go1.21", "1.2x", ">=1.21rc1", "~1.21", ">=", "1.21 ||", "1.23 - 1.21"] {
            assertError(
                Self.minimal + "go: \"\(text)\"\n", line: 3, key: "go", message: "is not a Go version constraint",
                hint: "\">=1.21\"")
        }
        assertError(
            Self.minimal + "go: \"go1.21\"\n", line: 3, key: "go", message: "without `go`: `1.21`")
    }

    func testGoConstraintAcceptsSpacesRangesAndAlternatives() throws {
        func allows(_ constraint: String, _ version: String) throws -> Bool {
            try VersionConstraint(parsing: constraint).allows(GoVersion(version)!)
        }
        XCTAssertTrue(try allows(">= 1.21", "1.21.13"))
        XCTAssertFalse(try allows(">= 1.21", "1.19.8"))
        XCTAssertTrue(try allows(">=1.21, <1.24", "1.23.4"))
        XCTAssertFalse(try allows(">=1.21 <1.23", "1.23.4"))
        XCTAssertTrue(try allows("<1.20 || >=1.23", "1.19.8"))
        XCTAssertTrue(try allows("<1.20 || >= 1.23", "1.27.3"))
        XCTAssertFalse(try allows("<1.20 || >=1.23", "1.21.13"))
        XCTAssertTrue(try allows("1.21 - 1.23", "1.23.4"))
        XCTAssertTrue(try allows("1.22", "1.22.10"))
        XCTAssertFalse(try allows("1.22.1", "1.22.10"))
    }

    func testDurationsAreRangeChecked() {
        assertError(
            Self.minimal + "timeout: 9300000000000000000ms\n", line: 3, key: "timeout",
            message: "longer than the limit of 7 days")
        assertError(Self.minimal + "hang_after: 169h\n", line: 3, key: "hang_after", message: "longer than the limit")
        assertError(Self.minimal + "timeout: infs\n", line: 3, key: "timeout", message: "is not a duration")
        assertError(Self.minimal + "timeout: 1e3s\n", line: 3, key: "timeout", message: "is not a duration")
        XCTAssertEqual(parseDuration("168h"), .seconds(7 * 24 * 3600))
    }

    func testLimitsTheKernelRefusesAreBadInput() {
        assertError(
            Self.minimal + "sandbox:\n  cgroup:\n    pids_max: 5000000\n", line: 5, key: "sandbox.cgroup.pids_max",
            message: "above the kernel's limit 4194304")
        assertError(
            Self.minimal + "sandbox:\n  cgroup:\n    memory_max: 100\n", line: 5, key: "sandbox.cgroup.memory_max",
            message: "below one page")
    }

    func testErrnoNumbersMustBeErrnos() {
        let rule = "sandbox:\n  seccomp:\n    rules:\n      - syscalls: [openat]\n        action: errno\n"
        assertError(
            Self.minimal + rule + "        errno: 4095\n", line: 8, key: "sandbox.seccomp.rules[0].errno",
            message: "unknown errno `4095`", hint: "errno number 1-")
        assertError(
            Self.minimal + "faults:\n  - syscall: openat\n    errno: 0\n", line: 5, key: "faults[0].errno",
            message: "unknown errno `0`")
        XCTAssertEqual(ErrnoName.value(of: "13"), 13)
    }

    func testStringWhereListExpected() {
        assertError(
            "name: t\nrun: go build\n", line: 2, key: "run", message: "expected a list, found the string `go build`")
        assertError(Self.minimal + "tags: seed\n", line: 3, key: "tags", message: "expected a list")
        assertError(Self.minimal + "sandbox: [user]\n", line: 3, key: "sandbox", message: "expected a mapping")
        assertError(Self.minimal + "env_clear: \"yes\"\n", line: 3, key: "env_clear", message: "expected true or false")
        assertError(Self.minimal + "seed: \"42\"\n", line: 3, key: "seed", message: "expected an integer")
        assertError(Self.minimal + "env:\n  A: [1]\n", line: 4, key: "env.A", message: "expected a string or null")
    }

    func testMalformedYAMLKeepsTheLine() {
        let found = errors("name: t\nrun: [go, version\ntimeout: 5s\n")
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found.first?.line, 3)
        XCTAssertNil(found.first?.key)
        XCTAssertTrue(found.first?.message.contains("malformed YAML") == true, "\(found)")
    }

    func testDuplicateKeyIsAnError() {
        assertError(Self.minimal + "timeout: 5s\ntimeout: 6s\n", line: 3, key: "timeout", message: "more than once")
    }

    func testMissingRequiredKeys() {
        assertError(
            "run: [go, version]\n", line: 1, key: "name", message: "missing required key `name`",
            hint: "name:")
        assertError(
            "description: x\nname: t\n", line: 1, key: "run", message: "missing required key `run`",
            hint: "run:")
    }

    func testEmptyRunAndEmptyFile() {
        assertError("name: t\nrun: []\n", line: 2, key: "run", message: "`run` is empty")
        assertError("# nothing\n", line: nil, key: nil, message: "holds no scenario")
    }

    func testBadNamePattern() {
        assertError(
            "name: My Scenario\nrun: [go]\n", line: 1, key: "name", message: "not a valid scenario name",
            hint: "`my-scenario`")
    }

    func testDuplicateNamesInOneFile() {
        let text = "scenarios:\n  - {name: a, run: [go]}\n  - {name: b, run: [go]}\n  - {name: a, run: [go]}\n"
        assertError(text, line: 4, key: "name", message: "`a` is already used at /nonexistent/s.yaml:2")
    }

    func testScenariosListAllowsNoOtherTopLevelKey() {
        assertError(
            "timeout: 1s\nscenarios:\n  - {name: a, run: [go]}\n", line: 1, key: "timeout",
            message: "beside `scenarios:`")
        assertError(
            "scenarios:\n  - name: a\n    run: [go]\n    timeot: 1s\n", line: 4, key: "scenarios[0].timeot",
            message: "unknown key", hint: "`timeout`")
    }

    // MARK: Values

    func testBadDurationsAreAllReported() {
        let text =
            Self.minimal + """
                timeout: 60
                hang_after: soon
                sandbox:
                  cgroup:
                    freeze: {after: 3 days, hold: -1s}
                faults:
                  - {syscall: read, delay: fast}
                """
        let found = errors(text)
        XCTAssertEqual(
            found.map(\.key),
            [
                "timeout", "hang_after", "sandbox.cgroup.freeze.after", "faults[0].delay",
            ])
        XCTAssertEqual(found.map(\.line), [3, 4, 7, 9])
        XCTAssertEqual(found.first?.hint?.contains("add a unit, e.g. 60s"), true)
        // A step stops at its first problem, so `hold` is reported once `after` is fixed.
        assertError(
            Self.minimal + "sandbox:\n  cgroup:\n    freeze: {after: 1s, hold: -1s}\n", line: 5,
            key: "sandbox.cgroup.freeze.hold", message: "is not a duration", hint: "300ms")
    }

    func testLoadErrorsDescriptionListsEach() {
        do {
            _ = try ScenarioLoader.parse(text: Self.minimal + "timeout: x\nhang_after: y\n", file: "f.yaml")
            XCTFail("expected errors")
        } catch let error as ScenarioLoadErrors {
            XCTAssertEqual(error.description.components(separatedBy: "\n").count, 2)
            XCTAssertTrue(error.description.hasPrefix("f.yaml:3: timeout: "), error.description)
            XCTAssertTrue(error.description.contains("\nf.yaml:4: hang_after: "), error.description)
        } catch {
            XCTFail("unexpected \(error)")
        }
    }

    func testBadSizes() {
        assertError(
            Self.minimal + "sandbox:\n  cgroup:\n    memory_max: 256 MB of RAM\n", line: 5,
            key: "sandbox.cgroup.memory_max", message: "is not a size", hint: "512MiB")
        assertError(
            Self.minimal + "sandbox:\n  rlimits:\n    as: 512MeB\n", line: 5, key: "sandbox.rlimits.as",
            message: "`512MeB` is not a size")
        assertError(
            Self.minimal + "sandbox:\n  rlimits:\n    nofile: {soft: 128, hard: 64}\n", line: 5,
            key: "sandbox.rlimits.nofile", message: "soft limit 128 is above hard limit 64")
    }

    func testUnknownSyscallSuggestsTheClosest() {
        let text =
            Self.minimal + "sandbox:\n  seccomp:\n    rules:\n      - syscalls: [read, pidfd_opn]\n"
            + "        action: trap\n"
        assertError(
            text, line: 6, key: "sandbox.seccomp.rules[0].syscalls", message: "unknown syscall `pidfd_opn`",
            hint: "did you mean `pidfd_open`")
        assertError(
            Self.minimal + "trace: [opnat]\n", line: 3, key: "trace", message: "unknown syscall",
            hint: "`openat`")
        assertError(
            Self.minimal + "faults:\n  - {syscall: opnat, errno: EIO}\n", line: 4, key: "faults[0].syscall",
            message: "unknown syscall `opnat`", hint: "`openat`")
    }

    func testUnknownErrnoCapabilityRlimitSignalOutcomeHangKind() {
        let rule = Self.minimal + "sandbox:\n  seccomp:\n    rules:\n      - syscalls: [read]\n        action: errno\n"
        assertError(
            rule + "        errno: EPRM\n", line: 8, key: "sandbox.seccomp.rules[0].errno",
            message: "unknown errno `EPRM`", hint: "`EPERM`")
        assertError(
            Self.minimal + "sandbox:\n  capabilities:\n    add: [CAP_SYS_ADMN]\n", line: 5,
            key: "sandbox.capabilities.add", message: "unknown capability `CAP_SYS_ADMN`",
            hint: "`CAP_SYS_ADMIN`")
        assertError(
            Self.minimal + "sandbox:\n  rlimits:\n    nofiles: 10\n", line: 5, key: "sandbox.rlimits.nofiles",
            message: "unknown key", hint: "`nofile`")
        assertError(
            Self.minimal + "expect:\n  signal: SIGSYSS\n", line: 4, key: "expect.signal",
            message: "unknown signal", hint: "`SIGSYS`")
        assertError(
            Self.minimal + "expect:\n  outcome: [crash, clear_error]\n", line: 4, key: "expect.outcome",
            message: "unknown outcome `clear_error`", hint: "`clear-error`")
        assertError(
            Self.minimal + "expect:\n  outcome: harness-error\n", line: 4, key: "expect.outcome",
            message: "never a scenario's outcome")
        assertError(
            Self.minimal + "expect:\n  hang_kind: froze\n", line: 4, key: "expect.hang_kind",
            message: "unknown hang kind", hint: "`frozen`")
        assertError(Self.minimal + "expect:\n  exit: 300\n", line: 4, key: "expect.exit", message: "outside 0-255")
    }

    func testBadSeccompActions() {
        let prefix = Self.minimal + "sandbox:\n  seccomp:\n"
        assertError(
            prefix + "    default: deny\n", line: 5, key: "sandbox.seccomp.default",
            message: "unknown seccomp action `deny`")
        assertError(
            prefix + "    default: kill-proces\n", line: 5, key: "sandbox.seccomp.default",
            message: "unknown seccomp action", hint: "`kill-process`")
        assertError(
            prefix + "    default: errno\n", line: 5, key: "sandbox.seccomp.default",
            message: "needs the errno", hint: "errno:EPERM")
        assertError(
            prefix + "    default: errno:ENOPE\n", line: 5, key: "sandbox.seccomp.default",
            message: "unknown errno `ENOPE`")
        let rules = prefix + "    rules:\n      - syscalls: [read]\n"
        assertError(
            rules + "        action: errno\n", line: 7, key: "sandbox.seccomp.rules[0].errno",
            message: "needs an `errno:` key", hint: "errno: EPERM")
        assertError(
            rules + "        action: allow\n        errno: EPERM\n", line: 8,
            key: "sandbox.seccomp.rules[0].errno", message: "no effect with `action: allow`")
        assertError(
            rules + "        action: errno:EIO\n        errno: EPERM\n", line: 8,
            key: "sandbox.seccomp.rules[0].errno", message: "given twice")
        assertError(
            prefix + "    rules:\n      - {syscalls: [read]}\n", line: 6, key: "sandbox.seccomp.rules[0].action",
            message: "missing required key `action`")
    }

    func testBadArgConditions() {
        let rule = Self.minimal + "sandbox:\n  seccomp:\n    rules:\n      - syscalls: [socket]\n        action: log\n"
        assertError(
            rule + "        args: [{index: 0, op: equals, value: 1}]\n", line: 8,
            key: "sandbox.seccomp.rules[0].args[0].op", message: "unknown comparison `equals`")
        assertError(
            rule + "        args: [{index: 0, op: masked_eq, value: 1}]\n", line: 8,
            key: "sandbox.seccomp.rules[0].args[0].mask", message: "needs a `mask`")
        assertError(
            rule + "        args: [{index: 0, op: eq, value: 1, mask: 3}]\n", line: 8,
            key: "sandbox.seccomp.rules[0].args[0].mask", message: "only applies to `op: masked_eq`")
        assertError(
            rule + "        args:\n          - index: 6\n            value: 1\n", line: 9,
            key: "sandbox.seccomp.rules[0].args[0].index", message: "index 6 is out of range",
            hint: "0 to 5")
    }

    func testBadGoConstraint() {
        assertError(
            Self.minimal + "go: newest\n", line: 3, key: "go", message: "not a Go version constraint",
            hint: ">=1.21")
    }

    func testBadModeOwnerAndUser() {
        assertError(
            Self.minimal + "paths:\n  - {path: a, mode: \"0999\"}\n", line: 4, key: "paths[0].mode",
            message: "`0999` is not a file mode", hint: "\"0755\"")
        assertError(
            Self.minimal + "paths:\n  - {path: a, owner: nobody}\n", line: 4, key: "paths[0].owner",
            message: "not a numeric uid:gid", hint: "65534:65534")
        assertError(
            Self.minimal + "sandbox:\n  user: \"1:2:3\"\n", line: 4, key: "sandbox.user",
            message: "not a numeric uid:gid")
        assertError(
            Self.minimal + "paths:\n  - {mkdir: true}\n", line: 4, key: "paths[0].path",
            message: "missing required key `path`")
        assertError(
            Self.minimal + "paths:\n  - {path: /etc/passwd, content: x}\n", line: 4, key: "paths[0].path",
            message: "is absolute")
        assertError(
            Self.minimal + "paths:\n  - {path: $GOROOT/bin}\n", line: 4, key: "paths[0].path",
            message: "outside $WORK")
    }

    func testFixtureMustExistRelativeToTheScenarioFile() throws {
        let directory = try makeTemporaryDirectory()
        let text = Self.minimal + "fixture: fixtures/missing\n"
        let file = try write(text, to: "s.yaml", in: directory)
        do {
            _ = try ScenarioLoader.load(file: file)
            XCTFail("expected an error")
        } catch let error as ScenarioError {
            XCTAssertEqual(error.line, 3)
            XCTAssertEqual(error.key, "fixture")
            XCTAssertTrue(
                error.message.contains(directory.standardizedFileURL.path + "/fixtures/missing"), error.message)
            XCTAssertTrue(error.message.contains("does not exist"))
        }
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("fixtures/missing"),
            withIntermediateDirectories: true)
        XCTAssertEqual(
            try ScenarioLoader.load(file: file).first?.fixture,
            directory.standardizedFileURL.path + "/fixtures/missing")
    }

    func testFaultSelectionErrors() {
        assertError(
            Self.minimal + "faults:\n  - {syscall: read, errno: EIO, nth: 0}\n", line: 4, key: "faults[0].nth",
            message: "at least 1")
        assertError(
            Self.minimal + "faults:\n  - {syscall: read, errno: EIO, probability: 1.5}\n", line: 4,
            key: "faults[0].probability", message: "from 0 to 1")
        assertError(
            Self.minimal + "faults:\n  - syscall: read\n    errno: EIO\n    nth: 2\n    every: true\n",
            line: 7, key: "faults[0].every", message: "`nth` and `every` both choose")
        assertError(
            Self.minimal + "faults:\n  - {syscall: read, nth: 2}\n", line: 4, key: "faults[0]",
            message: "needs an `errno` to return, a `delay`, or both")
        assertError(
            Self.minimal + "faults:\n  - {syscall: read, errno: EIO, every: false}\n", line: 4,
            key: "faults[0].every", message: "never inject")
    }

    func testFilesMustStayInsideWork() {
        assertError(
            Self.minimal + "files:\n  /etc/hosts: x\n", line: 4, key: "files./etc/hosts", message: "is absolute")
        assertError(Self.minimal + "files:\n  a/../../b: x\n", line: 4, key: "files.a/../../b", message: "through `..`")
        assertError(Self.minimal + "files:\n  a.txt:\n", line: 4, key: "files.a.txt", message: "content as a string")
        assertError(Self.minimal + "workdir: /tmp\n", line: 3, key: "workdir", message: "is absolute")
    }

    func testBadRegularExpressions() {
        assertError(
            Self.minimal + "expect:\n  stderr: \"(unclosed\"\n", line: 4, key: "expect.stderr",
            message: "not a valid regular expression")
        assertError(
            Self.minimal + "success:\n  stdout: \"[a-\"\n", line: 4, key: "success.stdout",
            message: "not a valid regular expression")
    }

    func testFreezeStepNeedsExactlyOneTrigger() {
        assertError(
            Self.minimal + "sandbox:\n  cgroup:\n    freeze:\n      - {after: 1s, on_process: link}\n", line: 6,
            key: "sandbox.cgroup.freeze[0].on_process", message: "not both")
        assertError(
            Self.minimal + "sandbox:\n  cgroup:\n    freeze: {hold: 1s}\n", line: 5,
            key: "sandbox.cgroup.freeze", message: "needs `after` or `on_process`")
        assertError(
            Self.minimal + "sandbox:\n  cgroup:\n    pids_max: 0\n", line: 5, key: "sandbox.cgroup.pids_max",
            message: "at least 1")
    }

    // MARK: Files and directories

    func testLoadPathsWalksDirectoriesSortedAndChecksNamesAcrossFiles() throws {
        let directory = try makeTemporaryDirectory()
        _ = try write("name: b\nrun: [go]\n", to: "z/b.yml", in: directory)
        _ = try write("name: a\nrun: [go]\n", to: "a.yaml", in: directory)
        _ = try write("{\"name\": \"c\", \"run\": [\"go\"]}", to: "m/c.json", in: directory)
        _ = try write("not: a scenario\n", to: "notes.txt", in: directory)
        _ = try write("broken: [\n", to: ".hidden/x.yaml", in: directory)
        let loaded = try ScenarioLoader.load(paths: [directory.path])
        XCTAssertEqual(loaded.map(\.name), ["a", "c", "b"])
        XCTAssertEqual(loaded.first?.location.file, directory.path + "/a.yaml")

        // The same file named twice is loaded once rather than clashing with itself.
        XCTAssertEqual(try ScenarioLoader.load(paths: [directory.path, directory.path + "/a.yaml"]).count, 3)

        let clash = try write("\n\nname: a\nrun: [go]\n", to: "z/clash.yaml", in: directory)
        do {
            _ = try ScenarioLoader.load(paths: [directory.path])
            XCTFail("expected a duplicate name")
        } catch let error as ScenarioError {
            XCTAssertEqual(error.file, clash)
            XCTAssertEqual(error.line, 3)
            XCTAssertEqual(error.key, "name")
            XCTAssertTrue(error.message.contains("already used at \(directory.path)/a.yaml:1"), error.message)
        }
    }

    func testLoadPathsCollectsErrorsFromEveryFile() throws {
        let directory = try makeTemporaryDirectory()
        _ = try write("name: a\nrun: [go]\ntimeot: 1s\n", to: "a.yaml", in: directory)
        _ = try write("name: b\nrun: go\n", to: "b.yaml", in: directory)
        do {
            _ = try ScenarioLoader.load(paths: [directory.path, directory.path + "/missing.yaml"])
            XCTFail("expected errors")
        } catch {
            let found = error.scenarioErrors
            XCTAssertEqual(
                found.map(\.file),
                [
                    directory.path + "/missing.yaml", directory.path + "/a.yaml",
                    directory.path + "/b.yaml",
                ])
            XCTAssertEqual(found.map(\.line), [nil, 3, 2])
            XCTAssertEqual(found.map(\.key), [nil, "timeot", "run"])
        }
    }

    func testEmptyDirectoryIsAnError() throws {
        let directory = try makeTemporaryDirectory()
        XCTAssertThrowsError(try ScenarioLoader.load(paths: [directory.path])) { error in
            XCTAssertEqual((error as? ScenarioError)?.message, "no scenario files in this directory")
        }
    }
}
