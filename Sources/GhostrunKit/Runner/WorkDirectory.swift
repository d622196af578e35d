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

    public static func create(sequence: Int) throws -> WorkDirectory {
        var template = Array("\(base)/\(prefix)\(getpid())-\(sequence)-XXXXXX".utf8CString)
        guard let pointer = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CgroupError(message: "cannot create a temporary directory in \(base): \(Errno.current)")
        }
        let root = String(cString: pointer)
        // Other users (sandbox.user) must be able to reach $WORK.
        chmod(root, 0o755)
        let directory = WorkDirectory(root: root)
        for path in [directory.work, directory.home, directory.gocache, directory.gopath, directory.gotmpdir] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        return directory
    }

    /// Removes the tree even where Go's module cache made it read-only.
    public func remove() { WorkDirectory.removeTree(root) }

    public static func removeTree(_ path: String) {
        if let enumerator = FileManager.default.enumerator(atPath: path) {
            for case let relative as String in enumerator {
                let full = path + "/" + relative
                var info = stat()
                if lstat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { chmod(full, 0o700) }
            }
        }
        chmod(path, 0o700)
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Removes temporary trees whose ghostrun process is gone.
    @discardableResult
    public static func sweep(ownerFilter: ((Int32) -> Bool)? = nil) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        var removed: [String] = []
        for entry in entries where entry.hasPrefix(prefix) {
            let rest = entry.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let owner = Int32(rest[..<dash]) else { continue }
            let gone = ownerFilter?(owner) ?? !GhostrunProcess.isAlive(owner)
            if gone {
                removeTree(base + "/" + entry)
                removed.append(base + "/" + entry)
            }
        }
        return removed
    }

    /// chown -R, so `sandbox.user` owns $WORK.
    public func chown(uid: UInt32, gid: UInt32) {
        Glibc.chown(work, uid, gid)
        if let enumerator = FileManager.default.enumerator(atPath: work) {
            for case let relative as String in enumerator {
                lchown(work + "/" + relative, uid, gid)
            }
        }
    }
}

/// Copies a fixture directory into $WORK (cp -a semantics without following symlinks).
func copyDirectory(from source: String, to destination: String) throws {
    let manager = FileManager.default
    for entry in try manager.contentsOfDirectory(atPath: source) {
        let from = source + "/" + entry, to = destination + "/" + entry
        if manager.fileExists(atPath: to) { try manager.removeItem(atPath: to) }
        try manager.copyItem(atPath: from, toPath: to)
    }
}
