import CGhostrun

/// runc's ENOSYS stub (libcontainer/seccomp/patchbpf): a few BPF instructions put before the profile's filter
/// that answer ENOSYS for native syscalls numbered above the highest syscall the profile names. A profile written
/// before the kernel gained a syscall (clone3 for Docker 20.10.9) then makes the new call fail as "not
/// implemented", and libc falls back to the old call, instead of failing it with the profile's default EPERM.
///
/// Like runc's stub for x86_64/aarch64: the architecture is checked first (other ABIs fall through to the
/// filter, which has libseccomp's bad-architecture action for them), and on x86_64 x32 calls (bit 30 set) fall
/// through too. runc also stubs the profile's other architectures (i386, x32); ghostrun runs native 64-bit
/// toolchains and stubs the native architecture only.
public enum EnosysStub {
    static let loadWord: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS
    static let jumpEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
    static let jumpGreater: UInt16 = 0x25  // BPF_JMP | BPF_JGT | BPF_K
    static let jumpBitsSet: UInt16 = 0x45  // BPF_JMP | BPF_JSET | BPF_K
    static let returnConstant: UInt16 = 0x06  // BPF_RET | BPF_K
    /// SECCOMP_RET_ERRNO | ENOSYS.
    public static let enosysAction: UInt32 = 0x0005_0000 | 38

    /// The stub's instructions, to run before the filter: above `threshold` it returns `action` (ENOSYS, or
    /// NOTIFY when a supervisor answers ENOSYS itself and records the call); otherwise it falls through.
    public static func instructions(
        threshold: Int32, architecture: NativeArchitecture = .current,
        action: UInt32 = enosysAction
    ) -> [ghostrun_bpf_insn] {
        func insn(_ code: UInt16, _ jt: UInt8, _ jf: UInt8, _ k: UInt32) -> ghostrun_bpf_insn {
            ghostrun_bpf_insn(code: code, jt: jt, jf: jf, k: k)
        }
        let x32Check = architecture == .x86_64
        // 0: ld arch; 1: jeq native ? next : filter; 2: ld nr; [3: jset x32 ? filter : next];
        // then jgt threshold ? ret : filter; ret action; filter...
        var program: [ghostrun_bpf_insn] = []
        let afterArchCheck: UInt8 = x32Check ? 4 : 3  // instructions from 2 up to and including the ret
        program.append(insn(loadWord, 0, 0, 4))  // seccomp_data.arch
        program.append(insn(jumpEqual, 0, afterArchCheck, architecture.auditArch))
        program.append(insn(loadWord, 0, 0, 0))  // seccomp_data.nr
        if x32Check { program.append(insn(jumpBitsSet, 2, 0, 0x4000_0000)) }
        program.append(insn(jumpGreater, 0, 1, UInt32(bitPattern: threshold)))
        program.append(insn(returnConstant, 0, 0, action))
        return program
    }

    /// What the stub decides for a native call: ENOSYS above the threshold, nil (the filter decides) otherwise.
    public static func decides(_ number: Int32, threshold: Int32?) -> Bool {
        guard let threshold else { return false }
        return number > threshold
    }
}
