import CGhostrun
import Foundation
import XCTest

@testable import GhostrunKit

/// Profile parsing and resolution on the real profile files (built-ins and the historic Docker profiles of the
/// catalog), checked against what moby and runc do with them.
final class ProfileTests: XCTestCase {
    let linux618 = KernelRelease(major: 6, minor: 18)

    func context(
        _ capabilities: CapabilitySet = CapabilityPreset.dockerDefault.capabilities,
        architecture: NativeArchitecture = .x86_64, kernel: KernelRelease? = nil,
        runtime: SeccompRuntime = .runc
    ) -> ProfileResolutionContext {
        ProfileResolutionContext(
            architecture: architecture, capabilities: capabilities, kernel: kernel ?? linux618, runtime: runtime)
    }

    func historic(_ version: String) throws -> SeccompProfileDocument {
        try SeccompProfileParser.load(
            file: repositoryRoot + "/scenarios/profiles/docker/docker-\(version).json", label: "docker-\(version)")
    }

    // MARK: Syscall tables

    func testSyscallTablesHoldNamesNewerThanLibseccomp() {
        XCTAssertEqual(SyscallTable.x86_64.number(of: "clone3"), 435)
        XCTAssertEqual(SyscallTable.x86_64.number(of: "mseal"), 462)
        XCTAssertEqual(SyscallTable.x86_64.number(of: "listmount"), 458)
        XCTAssertEqual(SyscallTable.x86_64.name(of: 470), "listns")
        XCTAssertEqual(SyscallTable.x86_64.number(of: "arch_prctl"), 158)
        XCTAssertNil(SyscallTable.x86_64.number(of: "chown32"))
        // arm64 builds the generic table with the renameat, rlimit and memfd_secret ABIs.
        XCTAssertEqual(SyscallTable.aarch64.number(of: "openat"), 56)
        XCTAssertEqual(SyscallTable.aarch64.number(of: "renameat"), 38)
        XCTAssertEqual(SyscallTable.aarch64.number(of: "getrlimit"), 163)
        XCTAssertEqual(SyscallTable.aarch64.number(of: "mseal"), 462)
        XCTAssertNil(SyscallTable.aarch64.number(of: "open"))
        XCTAssertNil(SyscallTable.aarch64.number(of: "fstat64"))
        // libseccomp 2.5.4 does not know mseal; ghostrun resolves it anyway.
        XCTAssertEqual(SyscallName.number(of: "mseal"), SyscallTable.native.number(of: "mseal"))
        XCTAssertTrue(SyscallTable.existsOnOtherArchitecture("chown32"))
        XCTAssertTrue(SyscallTable.existsOnOtherArchitecture("socketcall"))
        XCTAssertFalse(SyscallTable.existsOnOtherArchitecture("no_such_call"))
    }

    /// libseccomp compiles rules by number, also for numbers its own tables lack (mseal on 2.5.4).
    func testCompilerAcceptsSyscallsLibseccompDoesNotKnow() throws {
        let policy = SeccompPolicy(defaultAction: .allow, rules: [SeccompRule(syscalls: ["mseal"], action: .errno(1))])
        let filter = try SeccompCompiler.compile(policy)
        let number = try XCTUnwrap(SyscallName.number(of: "mseal"))
        XCTAssertTrue(filter.instructions.contains { $0.k == UInt32(number) }, "no comparison with \(number)")
    }

    // MARK: Resolution of the real profiles

    func testDockerDefaultWithDockersCapabilities() throws {
        let resolved = SeccompProfileResolver.resolve(
            try BuiltInProfiles.document(named: "docker-default"),
            context: context())
        XCTAssertEqual(resolved.defaultAction, .errno(1))
        // clone3: ENOSYS without CAP_SYS_ADMIN (the clone3 fix), from its own entry.
        let clone3 = resolved.decision(for: "clone3")
        XCTAssertEqual(clone3.action, "errno:ENOSYS")
        XCTAssertEqual(clone3.origin, "docker-default syscalls[20]")
        // masked_eq with valueTwo: clone allowed only without namespace flags (value is the mask).
        let clone = resolved.rules.filter { $0.syscall == "clone" }
        XCTAssertEqual(clone.count, 1)
        XCTAssertEqual(
            clone.first?.conditions,
            [SeccompArgCondition(index: 0, op: .masked_eq, value: 0, mask: 0x7E02_0000)])
        XCTAssertEqual(clone.first?.origin, "docker-default syscalls[18]")
        // Three socket entries on the same argument stay three rules (OR), as runc adds them.
        XCTAssertEqual(resolved.rules.filter { $0.syscall == "socket" }.map(\.conditions.first?.op), [.lt, .eq, .gt])
        // Arch includes: arch_prctl on amd64; arm's calls left out.
        XCTAssertEqual(resolved.decision(for: "arch_prctl").origin, "docker-default syscalls[12]")
        XCTAssertTrue(resolved.excluded.contains { $0.origin == "docker-default syscalls[11]" })
        // Caps includes: CAP_SYS_ADMIN's entry left out, with the reason.
        let admin = try XCTUnwrap(resolved.excluded.first { $0.origin == "docker-default syscalls[17]" })
        XCTAssertEqual(admin.reason, "includes.caps: the go command lacks CAP_SYS_ADMIN")
        XCTAssertEqual(resolved.decision(for: "mount").action, "errno:EPERM")
        // Names of other architectures skipped; new names applied by number.
        XCTAssertEqual(resolved.skipped.first { $0.name == "chown32" }?.reason, "not a syscall of x86_64")
        XCTAssertEqual(resolved.decision(for: "mseal").action, "allow")
        // runc's stub sits above the highest named syscall.
        XCTAssertEqual(resolved.enosysAbove, SyscallTable.x86_64.number(of: "removexattrat"))
    }

    func testCapabilitiesAndArchitectureChangeTheResolution() throws {
        let document = try BuiltInProfiles.document(named: "docker-default")
        let admin = SeccompProfileResolver.resolve(document, context: context(.all))
        XCTAssertEqual(admin.decision(for: "clone3").action, "allow")
        XCTAssertEqual(admin.decision(for: "clone").action, "allow")
        XCTAssertEqual(admin.decision(for: "mount").action, "allow")
        XCTAssertTrue(
            admin.excluded.contains {
                $0.origin == "docker-default syscalls[20]" && $0.reason.contains("excludes.caps")
            })
        let arm = SeccompProfileResolver.resolve(document, context: context(architecture: .aarch64))
        XCTAssertTrue(arm.excluded.contains { $0.origin == "docker-default syscalls[12]" })
        XCTAssertFalse(arm.excluded.contains { $0.origin == "docker-default syscalls[11]" })
        XCTAssertTrue(arm.skipped.contains { $0.name == "open" })
        XCTAssertEqual(arm.enosysAbove, 466)
    }

    func testMinKernel() throws {
        let document = try BuiltInProfiles.document(named: "docker-default")
        let old = SeccompProfileResolver.resolve(document, context: context(kernel: KernelRelease(major: 4, minor: 7)))
        XCTAssertEqual(old.decision(for: "ptrace").action, "errno:EPERM")
        XCTAssertEqual(
            old.excluded.first { $0.origin == "docker-default syscalls[1]" }?.reason,
            "includes.minKernel 4.8: the kernel is 4.7")
        let new = SeccompProfileResolver.resolve(document, context: context(kernel: KernelRelease(major: 4, minor: 8)))
        XCTAssertEqual(new.decision(for: "ptrace").origin, "docker-default syscalls[1]")
        XCTAssertEqual(KernelRelease(release: "6.18.44-fc-v657"), linux618)
        XCTAssertEqual(KernelRelease(release: "3.12-1-amd64"), KernelRelease(major: 3, minor: 12))
    }

    /// moby/moby#42680: Docker 20.10.9 names syscalls up to epoll_pwait2 (441) but not clone3 (435), so runc's
    /// stub does not cover clone3 and it gets the default EPERM; 19.03 stops at io_pgetevents (333), so clone3 is
    /// stubbed to ENOSYS under runc; crun has no stub.
    func testHistoricDockerProfilesAndTheStubRange() throws {
        let docker19 = SeccompProfileResolver.resolve(try historic("v19.03.15"), context: context())
        XCTAssertEqual(docker19.enosysAbove, 333)
        XCTAssertEqual(docker19.decision(for: "clone3").action, "errno:ENOSYS")
        XCTAssertTrue(docker19.decision(for: "clone3").origin.hasPrefix("runc ENOSYS stub"))
        XCTAssertEqual(docker19.decision(for: "io_pgetevents").action, "allow")
        let docker19crun = SeccompProfileResolver.resolve(try historic("v19.03.15"), context: context(runtime: .crun))
        XCTAssertNil(docker19crun.enosysAbove)
        XCTAssertEqual(docker19crun.decision(for: "clone3").action, "errno:EPERM")
        let docker2009 = SeccompProfileResolver.resolve(try historic("v20.10.9"), context: context())
        XCTAssertEqual(docker2009.enosysAbove, 441)
        XCTAssertEqual(docker2009.decision(for: "clone3").action, "errno:EPERM")
        XCTAssertEqual(docker2009.decision(for: "clone3").origin, "docker-v20.10.9 defaultAction")
        let docker2010 = SeccompProfileResolver.resolve(try historic("v20.10.10"), context: context())
        XCTAssertEqual(docker2010.decision(for: "clone3").action, "errno:ENOSYS")
        XCTAssertEqual(docker2010.decision(for: "clone3").origin, "docker-v20.10.10 syscalls[16]")
        // A scenario rule above the profile's highest syscall raises the threshold, as if written in the profile.
        let withRule = SeccompProfileResolver.resolve(
            try historic("v19.03.15"), context: context(), extraNames: ["pidfd_open"])
        XCTAssertEqual(withRule.enosysAbove, 434)
        // An allow default gets no stub (runc's isAllowAction).
        let allowDefault = SeccompProfileResolver.resolve(
            try historic("v19.03.15"), context: context(), defaultOverride: .allow)
        XCTAssertNil(allowDefault.enosysAbove)
    }

    /// The decision table the filter and the supervisor use names the same decision and rule as `profile show`.
    func testDecisionTableNamesProfileRulesAndTheStub() throws {
        func decided(_ profile: ResolvedProfile, _ syscall: String) throws -> SeccompDecision {
            let table = try SeccompDecisionTable(profile.policy(scenarioRules: []))
            guard case .unconditional(let decision) = table.decision(syscall: syscall) else {
                XCTFail("\(syscall) has argument rules")
                return SeccompDecision(action: .allow, origin: .policyDefault)
            }
            return decision
        }
        let docker19 = SeccompProfileResolver.resolve(try historic("v19.03.15"), context: context())
        XCTAssertEqual(try decided(docker19, "clone3").action, .errno(ENOSYS))
        XCTAssertEqual(try decided(docker19, "clone3").origin.description, "docker-v19.03.15 runc ENOSYS stub (above 333)")
        let docker2010 = SeccompProfileResolver.resolve(try historic("v20.10.10"), context: context())
        XCTAssertEqual(try decided(docker2010, "clone3").action, .errno(ENOSYS))
        XCTAssertEqual(try decided(docker2010, "clone3").origin.description, docker2010.decision(for: "clone3").origin)
        let docker2009 = SeccompProfileResolver.resolve(try historic("v20.10.9"), context: context())
        XCTAssertEqual(try decided(docker2009, "clone3").action, .errno(EPERM))
        XCTAssertEqual(try decided(docker2009, "clone3").origin, .policyDefault)
    }

    func testPodmanAndContainerdDefaults() throws {
        let podman = SeccompProfileResolver.resolve(
            try BuiltInProfiles.document(named: "podman-default"),
            context: context(CapabilityPreset.podmanDefault.capabilities))
        // defaultErrnoRet 38 and containers-common's defaultErrno "ENOSYS" agree.
        XCTAssertEqual(podman.defaultAction, .errno(38))
        XCTAssertEqual(podman.decision(for: "clone3").action, "allow")
        let containerd = SeccompProfileResolver.resolve(
            try BuiltInProfiles.document(named: "containerd-default"), context: context())
        XCTAssertEqual(containerd.decision(for: "clone3").action, "errno:ENOSYS")
        XCTAssertEqual(containerd.decision(for: "arch_prctl").action, "allow")
        XCTAssertEqual(containerd.rules.filter { $0.syscall == "socket" }.count, 3)
        XCTAssertEqual(CapabilityPreset.dockerDefault.capabilities.numbers.count, 14)
        XCTAssertEqual(CapabilityPreset.podmanDefault.capabilities.numbers.count, 11)
    }

    func testArgumentsSharingAnIndexSplitLikeRunc() throws {
        let json = """
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
              {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
               "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 19, "op": "SCMP_CMP_EQ"}]},
              {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
               "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 3, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
              {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
            ]}
            """
        let document = try SeccompProfileParser.parse(data: Data(json.utf8), label: "t.json")
        let resolved = SeccompProfileResolver.resolve(document, context: context())
        XCTAssertEqual(resolved.rules.filter { $0.syscall == "kill" }.map(\.conditions.count), [1, 1])
        let socket = try XCTUnwrap(resolved.rules.first { $0.syscall == "socket" })
        XCTAssertEqual(
            socket.conditions,
            [
                SeccompArgCondition(index: 0, op: .eq, value: 40),
                SeccompArgCondition(index: 1, op: .masked_eq, value: 1, mask: 3),
            ])
        XCTAssertEqual(socket.action, .errno(13))
        XCTAssertTrue(try XCTUnwrap(resolved.rules.first { $0.syscall == "getpid" }).redundant)
        XCTAssertNil(resolved.enosysAbove, "an allow default gets no stub")
        // Scenario rules replace the profile's rules for their syscalls.
        let policy = resolved.policy(scenarioRules: [SeccompRule(syscalls: ["kill"], action: .trap)])
        XCTAssertEqual(policy.rules.filter { $0.syscalls == ["kill"] }.map(\.action), [.trap])
    }

    // MARK: Bad input: the JSON path of the key

    func testInvalidProfilesNameTheKey() {
        func failure(_ json: String) -> ProfileError? {
            do {
                _ = try SeccompProfileParser.parse(data: Data(json.utf8), label: "p.json")
                return nil
            } catch { return error as? ProfileError }
        }
        let cases: [(String, String, String)] = [
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"}, {"names": ["b"], "action": "SCMP_ACT_ALOW"}]}"#,
                "syscalls[1].action", "unknown action"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}]}]}"#,
                "syscalls[0].args[0].op", "unknown operator"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_46"]}"#,
                "architectures[0]", "unknown architecture"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}]}"#,
                "archMap", "both `architectures` and `archMap`"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_NOTIFY"}]}"#,
                "syscalls[0].action", "SCMP_ACT_NOTIFY"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4"}}]}"#,
                "syscalls[0].includes.minKernel", "not a kernel version"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMN"]}}]}"#,
                "syscalls[0].includes.caps[0]", "unknown capability"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_EQ"}]}]}"#,
                "syscalls[0].args[0].valueTwo", "only applies to SCMP_CMP_MASKED_EQ"
            ),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscals": []}"#, "syscals", "unknown key"),
            (#"{"syscalls": []}"#, "defaultAction", "no defaultAction"),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "defaultErrno": "ENOSYS"}"#,
                "defaultErrno", "says ENOSYS"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
                "syscalls[0].name", "both `name` and `names`"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOGG"]}"#, "flags[0]",
                "unknown flag"
            ),
            (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [}"#, "", "not valid JSON"),
        ]
        for (json, path, message) in cases {
            guard let error = failure(json) else {
                XCTFail("accepted: \(json)")
                continue
            }
            XCTAssertEqual(error.path, path, json)
            XCTAssertTrue(error.message.contains(message), "\(error)")
            XCTAssertTrue(error.description.hasPrefix("p.json: "), error.description)
        }
    }

    func testBuiltInsAreTheShippedFilesAndParse() throws {
        for name in BuiltInProfiles.names {
            let file = try String(contentsOfFile: repositoryRoot + "/profiles/\(name).json", encoding: .utf8)
            XCTAssertEqual(
                BuiltInProfiles.json(named: name), file.trimmingCharacters(in: .newlines),
                "profiles/\(name).json changed: run scripts/gen-builtin-profiles.py")
            XCTAssertNoThrow(try BuiltInProfiles.document(named: name))
        }
        XCTAssertThrowsError(try BuiltInProfiles.load("docker-defualt", relativeTo: "/")) { error in
            XCTAssertTrue("\(error)".contains("docker-default, podman-default, containerd-default"), "\(error)")
        }
    }

    // MARK: The stub in BPF

    /// Runs the stub's instructions for one call: nil when it falls through to the filter, else its return value.
    private func runStub(_ program: [ghostrun_bpf_insn], arch: UInt32, nr: UInt32) -> UInt32? {
        var pc = 0
        var accumulator: UInt32 = 0
        while pc < program.count {
            let insn = program[pc]
            switch insn.code {
            case 0x20: accumulator = insn.k == 4 ? arch : (insn.k == 0 ? nr : 0)
            case 0x15: pc += Int(accumulator == insn.k ? insn.jt : insn.jf)
            case 0x25: pc += Int(accumulator > insn.k ? insn.jt : insn.jf)
            case 0x45: pc += Int(accumulator & insn.k != 0 ? insn.jt : insn.jf)
            case 0x06: return insn.k
            default: XCTFail("unexpected opcode \(insn.code)")
            }
            pc += 1
        }
        XCTAssertEqual(pc, program.count, "a jump past the filter's start")
        return nil
    }

    func testEnosysStubAnswersAboveTheThresholdOnly() {
        for architecture in NativeArchitecture.allCases {
            let stub = EnosysStub.instructions(threshold: 333, architecture: architecture)
            let native = architecture.auditArch
            XCTAssertEqual(runStub(stub, arch: native, nr: 435), EnosysStub.enosysAction)
            XCTAssertEqual(runStub(stub, arch: native, nr: 334), EnosysStub.enosysAction)
            XCTAssertNil(runStub(stub, arch: native, nr: 333))
            XCTAssertNil(runStub(stub, arch: native, nr: 0))
            XCTAssertNil(runStub(stub, arch: 0x4000_0003, nr: 435), "i386 falls through to the filter")
            if architecture == .x86_64 {
                XCTAssertNil(runStub(stub, arch: native, nr: 0x4000_0000 | 435), "x32 falls through")
            }
        }
    }
}
