import CGhostrun
import Glibc

/// A directory (`$WORK`) that paths from a scenario are resolved beneath, by descriptor: every open goes through
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from the directory's descriptor, the last component is opened
/// with `O_NOFOLLOW`, and mode and owner are changed on the opened descriptor. So a symlink planted in a fixture or
/// written by an earlier step cannot make a root-run step write, chmod or chown a host path, and no path string is
/// resolved twice.
struct ConfinedDirectory: ~Copyable {
    /// The directory's absolute path, for messages only; nothing is resolved through it after `init`.
    let path: String
    let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = try System.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            .orThrow(step: "work directory", syscall: "open", path: path, "cannot open the work directory")
    }

    deinit { System.close(fd) }

    /// `relative` as written in a scenario (`$WORK/x`, `$WORK`, `x`, `./x`) without the `$WORK` prefix.
    static func relative(_ text: String, work: String) -> String {
        var rest = text
        if rest == "$WORK" || rest == work { return "." }
        if rest.hasPrefix("$WORK/") {
            rest = String(rest.dropFirst(6))
        } else if rest.hasPrefix(work + "/") {
            rest = String(rest.dropFirst(work.count + 1))
        }
        let components = rest.split(separator: "/").filter { $0 != "." }
        return components.isEmpty ? "." : components.joined(separator: "/")
    }

    /// Opens `relative` beneath the directory; a step leaving it is EXDEV, a final symlink (with O_NOFOLLOW) ELOOP.
    func open(_ relative: String, _ flags: Int32, mode: mode_t = 0o644) -> Result<Int32, Errno> {
        valueOrErrno { ghostrun_openat_beneath(fd, relative, flags, UInt32(mode)) }
    }

    /// Opens the directory `relative`, creating missing components (mode 0755) when `create`.
    func openDirectory(_ relative: String, create: Bool) throws -> Int32 {
        let components = relative.split(separator: "/").map(String.init).filter { $0 != "." }
        var parent = try open(".", O_RDONLY | O_DIRECTORY).orThrow(
            step: "work directory", syscall: "openat2", path: path, "cannot open the work directory")
        var prefix = ""
        for component in components {
            prefix += (prefix.isEmpty ? "" : "/") + component
            var opened = open(prefix, O_RDONLY | O_DIRECTORY)
            if create, case .failure(.noSuchFile) = opened {
                let made = nothingOrErrno { mkdirat(parent, component, 0o755) }
                if case .failure(let error) = made, error != .exists {
                    System.close(parent)
                    throw Self.error(error, "mkdir", prefix, workPath: path)
                }
                opened = open(prefix, O_RDONLY | O_DIRECTORY)
            }
            System.close(parent)
            switch opened {
            case .success(let next): parent = next
            case .failure(let error): throw Self.error(error, "openat2", prefix, workPath: path)
            }
        }
        return parent
    }

    /// Writes `bytes` to the regular file `relative` (created 0644 or truncated), its directories created first.
    func writeFile(_ relative: String, _ bytes: [UInt8]) throws {
        try writeFile(relative) { file in
            try System.writeAll(file, bytes).orThrow(
                step: "work preparation", syscall: "write", path: path + "/" + relative, "cannot write")
        }
    }

    /// Creates (or truncates) the regular file `relative` beneath `$WORK` and hands its descriptor to `write`.
    func writeFile(_ relative: String, write: (Int32) throws -> Void) throws {
        let parentPath = Self.parent(relative)
        System.close(try openDirectory(parentPath, create: true))
        let file = try open(relative, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK)
            .get(orThrow: { Self.error($0, "openat2", relative, workPath: path) })
        defer { System.close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw HarnessError(
                step: "work preparation", path: path + "/" + relative, "`\(relative)` is not a regular file",
                hint: "files: and paths: content write regular files only")
        }
        try write(file)
    }

    /// Opens `relative` itself (never a symlink's target) for fchown/fchmod; O_NONBLOCK so a FIFO cannot block.
    func openForAttributes(_ relative: String) throws -> Int32 {
        try open(relative, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
            .get(orThrow: { Self.error($0, "openat2", relative, workPath: path) })
    }

    static func parent(_ relative: String) -> String {
        guard let slash = relative.lastIndex(of: "/") else { return "." }
        return String(relative[..<slash])
    }

    static func error(_ error: Errno, _ syscall: String, _ relative: String, workPath: String) -> HarnessError {
        let hint: String
        switch error.rawValue {
        case EXDEV: hint = "a symlink on the way leads out of $WORK; declarative keys stay inside $WORK"
        case ELOOP: hint = "`\(relative)` is a symlink; declarative keys never follow one"
        default: hint = "paths are resolved beneath $WORK"
        }
        return HarnessError(
            step: "work preparation", syscall: syscall, path: workPath + "/" + relative, errno: error,
            "cannot resolve `\(relative)` beneath $WORK", hint: hint)
    }
}

extension Result where Failure == Errno {
    /// The value, or the error `makeError` builds from the errno.
    func get(orThrow makeError: (Errno) -> HarnessError) throws -> Success {
        switch self {
        case .success(let value): return value
        case .failure(let error): throw makeError(error)
        }
    }
}
