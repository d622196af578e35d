/// Something ghostrun itself could not do (create a cgroup, fork, open the audit log): a harness error, never the
/// target's outcome.
///
/// It says which step of a run failed, which call on which path, the errno, and what to do about it, so that
/// `description` is a message a user can act on without reading the source.
public struct HarnessError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The step of the run, e.g. `cgroup`, `audit log`, or for spawning the step between fork and exec that
    /// failed (`chdir`, `execve`, ... as named by the C target).
    public var step: String
    /// The system call (or libc function) that failed, when one did.
    public var syscall: String?
    /// The file the call was about, when there is one.
    public var path: String?
    /// The error the call returned.
    public var code: Errno?
    /// What failed, in words ("cannot create /sys/fs/cgroup/ghostrun/r12-1-x").
    public var message: String
    /// What to do about it, when ghostrun knows.
    public var hint: String?

    public init(
        step: String, syscall: String? = nil, path: String? = nil, errno: Errno? = nil, _ message: String,
        hint: String? = nil
    ) {
        self.step = step
        self.syscall = syscall
        self.path = path
        self.code = errno
        self.message = message
        self.hint = hint
    }

    /// The errno as a number (nil when no call failed).
    public var errno: Int32? { code?.rawValue }

    /// `cannot create PATH: Permission denied (EACCES) (hint: ...)`.
    public var description: String {
        var text = message
        if let code {
            text += ": \(code.description) (\(code.name ?? "errno \(code.rawValue)"))"
        }
        if let hint { text += " (hint: \(hint))" }
        return text
    }
}

/// The errors of the spawn step (kept as a name: tests and callers read `step` and `errno` from it).
public typealias SpawnError = HarnessError

/// The errors of the cgroup step.
public typealias CgroupError = HarnessError

extension HarnessError {
    /// A step between fork and exec failed (the C target names the step and returns its errno).
    static func spawn(step: String, errno: Int32) -> HarnessError {
        HarnessError(step: step, syscall: step, errno: Errno(rawValue: errno), "spawn step \(step) failed")
    }

    /// The spawn step's error as the former `SpawnError(step:errno:)` made it; for call sites not converted yet.
    public init(step: String, errno: Int32) { self = .spawn(step: step, errno: errno) }

    /// A message-only error as the former `CgroupError(message:)` made it; for call sites not converted yet.
    public init(message: String) { self.init(step: "setup", message) }
}
