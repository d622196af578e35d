import Foundation

/// A run's private temporary tree: `/tmp/ghostrun-<owner pid>-<seq>-XXXXXX/work` is `$WORK`, with the private
/// HOME, GOCACHE, GOPATH and GOTMPDIR under `$WORK/.ghostrun/` (dot directories are invisible to `./...`).
public struct WorkDirectory: Sendable {
    public let root: String
    public var work: String { root + "/work" }
    public var home: String { work + "/.ghostrun/home" }
    public var gocache: String { work + "/.ghostrun/cache" }
    public var gopath: String { work + "/.ghostrun/gopath" }
    public var gotmpdir: String { work + "/.ghostrun/tmp" }

    public static let prefix = "ghostrun-"

    public static var base: String {
        let tmp = ProcessInfo.processInfo.environment["GHOSTRUN_TMPDIR"] ?? "/tmp"
        return tmp.hasSuffix("/") ? String(tmp.dropLast()) : tmp
    }

    /// The marker in the root that proves ownership to a later sweep: `<pid> <start time in clock ticks>` of the
    /// ghostrun process that created the tree. A directory without it is never removed.
    public static let markerName = ".ghostrun-owner"

    public static func create(sequence: Int) throws -> WorkDirectory {
        var template = Array("\(base)/\(prefix)\(getpid())-\(sequence)-XXXXXX".utf8CString)
        guard let pointer = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CgroupError(message: "cannot create a temporary directory in \(base): \(Errno.current)")
        }
        let root = String(cString: pointer)
        // Other users (sandbox.user) must be able to reach $WORK.
        chmod(root, 0o755)
        let directory = WorkDirectory(root: root)
        let marker = "\(getpid()) \(GhostrunProcess.startTime(getpid()) ?? 0)\n"
        let fd = try System.open(root + "/" + markerName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
            .orThrow(step: "work directory", syscall: "open", path: root + "/" + markerName, "cannot write the marker")
        defer { System.close(fd) }
        try System.writeAll(fd, Array(marker.utf8)).orThrow(
            step: "work directory", syscall: "write", path: root + "/" + markerName, "cannot write the marker")
        for path in [directory.work, directory.home, directory.gocache, directory.gopath, directory.gotmpdir] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        return directory
    }

    /// Removes the tree even where Go's module cache made it read-only, by descriptor, never following a link.
    public func remove() { WorkDirectory.removeTree(root) }

    /// The marker `--keep-work` leaves in the root: sweeps (the watchdog's, the next run's) leave a kept tree alone.
    public static let keepMarker = ".ghostrun-keep"

    /// Marks the tree as kept for the user: no sweep removes it once its ghostrun is gone.
    public func keep() {
        FileManager.default.createFile(
            atPath: root + "/" + WorkDirectory.keepMarker,
            contents: Data("kept by ghostrun run --keep-work; remove this directory when done\n".utf8))
    }

    /// Whether `--keep-work` kept the tree at `root`.
    public static func isKept(_ root: String) -> Bool {
        FileManager.default.fileExists(atPath: root + "/" + keepMarker)
    }

    public static func removeTree(_ path: String) {
        let parentPath = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        guard case .success(let parent) = System.open(parentPath, O_RDONLY | O_DIRECTORY) else { return }
        defer { System.close(parent) }
        removeEntry(parent, name)
    }

    /// Removes `name` in the directory `parent`: a directory is opened with O_NOFOLLOW, made writable through its
    /// descriptor (fchmod), emptied and removed; anything else, a symlink included, is unlinked itself.
    static func removeEntry(_ parent: Int32, _ name: String) {
        var info = stat()
        guard fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            unlinkat(parent, name, 0)
            return
        }
        guard
            case .success(let fd) = valueOrErrno({
                openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            })
        else { return }
        fchmod(fd, 0o700)
        var names: [String] = []
        if let stream = fdopendir(dup(fd)) {
            while let entry = readdir(stream) {
                let child = withUnsafeBytes(of: entry.pointee.d_name) {
                    String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
                }
                if child != "." && child != ".." { names.append(child) }
            }
            closedir(stream)
        }
        for child in names { removeEntry(fd, child) }
        System.close(fd)
        unlinkat(parent, name, AT_REMOVEDIR)
    }

    /// Removes temporary trees whose ghostrun process is gone. Only a tree this user (root) owns, that lstat shows
    /// is a directory (not a link), and whose marker names a process that no longer runs with the recorded start
    /// time is removed: a planted directory or link, or a live renamed ghostrun's tree, is left alone.
    @discardableResult
    public static func sweep(ownerFilter: ((Int32) -> Bool)? = nil) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        var removed: [String] = []
        for entry in entries.sorted() where entry.hasPrefix(prefix) {
            guard let (owner, started) = ownerMarker(base + "/" + entry) else { continue }
            let gone = ownerFilter?(owner) ?? !GhostrunProcess.isAlive(owner, startTime: started)
            if gone, !isKept(base + "/" + entry) {
                removeTree(base + "/" + entry)
                removed.append(base + "/" + entry)
            }
        }
        return removed
    }

    /// The owner recorded in a tree's marker, if the tree is provably one of ours.
    static func ownerMarker(_ path: String) -> (Int32, UInt64)? {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid() else { return nil }
        guard case .success(let directory) = System.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) else { return nil }
        defer { System.close(directory) }
        guard
            case .success(let fd) = valueOrErrno({
                openat(directory, markerName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            })
        else { return nil }
        defer { System.close(fd) }
        var markerInfo = stat()
        guard fstat(fd, &markerInfo) == 0, markerInfo.st_mode & S_IFMT == S_IFREG, markerInfo.st_uid == geteuid()
        else { return nil }
        var buffer = [UInt8](repeating: 0, count: 64)
        guard case .success(let count) = buffer.withUnsafeMutableBytes({ System.read(fd, into: $0) }) else {
            return nil
        }
        let fields = String(decoding: buffer[..<count], as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let pid = Int32(fields[0]), let started = UInt64(fields[1]) else { return nil }
        return (pid, started)
    }
}
