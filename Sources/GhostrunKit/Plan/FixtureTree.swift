import Foundation

/// A fixture directory as ghostrun copies it: regular files, directories and symlinks that stay inside the fixture.
/// A FIFO would block the copy forever, a device or socket has no content to copy, and a symlink leaving the tree
/// would let a stranger's scenario read (and hand to `sandbox.user`) any host file; all are bad input.
public enum FixtureTree {
    /// The first entry ghostrun refuses to copy, as a sentence, or nil when the tree is copyable.
    public static func problem(in root: String) -> String? {
        problem(in: root, relative: "")
    }

    private static func problem(in root: String, relative: String) -> String? {
        let directory = relative.isEmpty ? root : root + "/" + relative
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            return "cannot list `\(directory)`"
        }
        for entry in entries.sorted() {
            let path = relative.isEmpty ? entry : relative + "/" + entry
            var info = stat()
            guard lstat(root + "/" + path, &info) == 0 else { return "cannot stat `\(path)`: \(Errno.current)" }
            switch info.st_mode & S_IFMT {
            case S_IFREG: continue
            case S_IFDIR:
                if let problem = problem(in: root, relative: path) { return problem }
            case S_IFLNK:
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + path),
                    staysInside(link: path, target: target)
                else { return "the symlink `\(path)` leads out of the fixture" }
            case S_IFIFO: return "`\(path)` is a FIFO"
            case S_IFSOCK: return "`\(path)` is a socket"
            default: return "`\(path)` is a device"
            }
        }
        return nil
    }

    /// Whether a relative symlink at `link` (relative to the fixture root) names a path inside the root, lexically.
    /// Absolute targets are refused: in the copy they would point back into the host.
    static func staysInside(link: String, target: String) -> Bool {
        guard !target.hasPrefix("/") else { return false }
        var stack = link.split(separator: "/").dropLast().map(String.init)
        for component in target.split(separator: "/") {
            switch component {
            case ".": continue
            case "..":
                if stack.isEmpty { return false }
                stack.removeLast()
            default: stack.append(String(component))
            }
        }
        return true
    }

    /// Copies the tree at `source` into `destination` (a descriptor of `$WORK`): content and mode bits only,
    /// owned by root. Sources are opened with O_NOFOLLOW|O_NONBLOCK and checked again by fstat, so a tree changed
    /// after parsing cannot block the copy or slip a FIFO, device or outside file in; the source is only read.
    /// Returns the relative paths of files whose source others could not read: they stay root's in `$WORK`.
    static func copy(from source: String, into work: borrowing ConfinedDirectory) throws -> Set<String> {
        if let problem = problem(in: source) {
            throw HarnessError(
                step: "fixture", path: source, "the fixture cannot be copied: \(problem)",
                hint: "fixtures hold regular files, directories and symlinks inside the fixture only")
        }
        var restricted: Set<String> = []
        try copyEntries(source: source, relative: "", work: work, restricted: &restricted)
        return restricted
    }

    private static func copyEntries(
        source: String, relative: String, work: borrowing ConfinedDirectory, restricted: inout Set<String>
    ) throws {
        let directory = relative.isEmpty ? source : source + "/" + relative
        let entries = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        for entry in entries {
            if Interruption.isRequested {
                throw HarnessError(step: "fixture", path: source, "the fixture copy was interrupted")
            }
            let path = relative.isEmpty ? entry : relative + "/" + entry
            var info = stat()
            guard lstat(source + "/" + path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                let fd = try work.openDirectory(path, create: true)
                fchmod(fd, info.st_mode & 0o7777 | 0o700)
                System.close(fd)
                try copyEntries(source: source, relative: path, work: work, restricted: &restricted)
            case S_IFLNK:
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: source + "/" + path)
                guard staysInside(link: path, target: target) else {
                    throw HarnessError(
                        step: "fixture", path: source + "/" + path, "the symlink `\(path)` leads out of the fixture")
                }
                let parent = try work.openDirectory(ConfinedDirectory.parent(path), create: true)
                defer { System.close(parent) }
                unlinkat(parent, entry, 0)
                try nothingOrErrno { symlinkat(target, parent, entry) }.orThrow(
                    step: "fixture", syscall: "symlinkat", path: work.path + "/" + path, "cannot copy the symlink")
            case S_IFREG:
                try copyRegular(source + "/" + path, to: path, in: work)
                let fd = try work.openForAttributes(path)
                fchmod(fd, info.st_mode & 0o777)
                System.close(fd)
                if info.st_mode & S_IROTH == 0 { restricted.insert(path) }
            default:
                throw HarnessError(
                    step: "fixture", path: source + "/" + path, "`\(path)` is not a regular file, directory or symlink")
            }
        }
    }

    /// Streams one file into `$WORK` in 1 MiB chunks (a fixture file of any size costs no memory), and stops at a
    /// chunk boundary once ghostrun is interrupted, so SIGINT/SIGTERM during a large copy act within a second.
    private static func copyRegular(_ sourcePath: String, to relative: String, in work: borrowing ConfinedDirectory)
        throws
    {
        let fd = try System.open(sourcePath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
            .orThrow(step: "fixture", syscall: "open", path: sourcePath, "cannot read the fixture file")
        defer { System.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw HarnessError(step: "fixture", path: sourcePath, "the fixture entry is not a regular file")
        }
        let destination = work.path + "/" + relative
        try work.writeFile(relative) { file in
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                if Interruption.isRequested {
                    throw HarnessError(step: "fixture", path: sourcePath, "the fixture copy was interrupted")
                }
                let count = try buffer.withUnsafeMutableBytes { System.read(fd, into: $0) }
                    .orThrow(step: "fixture", syscall: "read", path: sourcePath, "cannot read the fixture file")
                if count == 0 { break }
                try buffer.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < count {
                        let written = try valueOrErrno {
                            Glibc.write(file, raw.baseAddress!.advanced(by: offset), count - offset)
                        }.orThrow(step: "fixture", syscall: "write", path: destination, "cannot copy the fixture file")
                        offset += written
                    }
                }
            }
        }
    }
}
