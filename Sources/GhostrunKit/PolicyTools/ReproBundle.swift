import Foundation

/// A txtar archive (Go's format for testscript and issue reproductions, golang.org/x/tools/txtar): a free-text
/// comment, then files, each introduced by a line `-- NAME --`. Text only, so a bundle pastes into an issue.
public struct Txtar: Equatable, Sendable {
    public struct File: Equatable, Sendable {
        public var name: String
        public var content: String
    }

    public var comment: String
    public var files: [File]

    public init(comment: String, files: [File]) {
        self.comment = comment
        self.files = files
    }

    /// The marker line's name, or nil when `line` is not a marker (`-- NAME --`, NAME non-empty after trimming).
    static func markerName<S: StringProtocol>(_ line: S) -> String? {
        guard line.hasPrefix("-- "), line.hasSuffix(" --"), line.count >= 7 else { return nil }
        let name = line.dropFirst(3).dropLast(3).trimmingCharacters(in: .whitespaces)
        return name.isEmpty ? nil : name
    }

    /// The archive's text. A comment or file whose lines would read as a marker cannot be written (the format has
    /// no escaping); every section ends with a newline.
    public func format() throws -> String {
        func section(_ text: String, _ what: String) throws -> String {
            if let line = text.split(separator: "\n", omittingEmptySubsequences: false).first(where: {
                Txtar.markerName($0) != nil
            }) {
                throw BundleError("\(what) has a line `\(line)` that reads as a txtar file marker")
            }
            return text.isEmpty || text.hasSuffix("\n") ? text : text + "\n"
        }
        var out = try section(comment, "the comment")
        for file in files {
            out += "-- \(file.name) --\n" + (try section(file.content, "`\(file.name)`"))
        }
        return out
    }

    /// Parses an archive; `file` names it in errors. Duplicate names are refused (one would hide the other).
    public static func parse(_ text: String, file: String) throws -> Txtar {
        var comment: [Substring] = []
        var files: [File] = []
        var current: (name: String, line: Int, lines: [Substring])?
        var seen: [String: Int] = [:]
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            if let name = markerName(line) {
                if let current { files.append(File(name: current.name, content: joined(current.lines))) }
                if let earlier = seen[name] {
                    throw BundleError("\(file):\(index + 1): `\(name)` appears again (first at line \(earlier))",
                                      hint: "each file may appear once in a bundle")
                }
                seen[name] = index + 1
                current = (name, index + 1, [])
            } else if current != nil {
                current!.lines.append(line)
            } else {
                comment.append(line)
            }
        }
        if let current { files.append(File(name: current.name, content: joined(current.lines))) }
        return Txtar(comment: joined(comment), files: files)
    }

    /// Lines back into text; the split's trailing empty piece is the final newline.
    private static func joined(_ lines: [Substring]) -> String {
        guard !lines.isEmpty else { return "" }
        var text = lines.joined(separator: "\n")
        if lines.last != "" { text += "\n" }
        return text
    }
}

/// A bundle that cannot be written or read: the message names the archive (and line) and says what to do.
public struct BundleError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var hint: String?
    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }
    public var description: String { message + (hint.map { " (hint: \($0))" } ?? "") }
}

/// `ghostrun bundle`: one txtar file with the scenarios, their fixtures and profile files, the results per
/// toolchain and the host facts; `ghostrun run bug.txtar` extracts it into a private directory and runs it there.
public enum ReproBundle {
    /// The archive's own files, under a directory scenario trees never use.
    public static let resultsName = ".ghostrun/results.json"
    public static let manifestName = ".ghostrun/scenarios"
    /// The marker `ScenarioParser.scenarioTree` treats as a tree's root: fixtures may come from anywhere in the
    /// extracted bundle, nowhere outside it.
    public static let rootMarker = ".ghostrun-bundle"
    /// Bounds for an archive from a stranger (`run bug.txtar`): size, file count, name length.
    public static let maxBytes = 16 << 20
    public static let maxFiles = 2000
    public static let maxNameLength = 1024

    /// The archive for `scenarios` (as loaded) and their `results`. Every path is stored relative to the deepest
    /// directory holding all the files, so the scenarios' relative fixture and profile references still work.
    public static func create(scenarios: [Scenario], results: [RunResult], host: HostFacts, ghostrunVersion: String)
        throws -> Txtar
    {
        var paths: [String] = []
        var scenarioFiles: [String] = []
        for scenario in scenarios {
            let file = URL(fileURLWithPath: scenario.location.file).standardizedFileURL.path
            if !scenarioFiles.contains(file) { scenarioFiles.append(file) }
            if let fixture = scenario.fixture { paths += try regularFiles(under: fixture) }
            if let profile = scenario.sandbox.seccomp?.profile, !BuiltInProfiles.isName(profile) {
                paths.append(URL(fileURLWithPath: profile, relativeTo: URL(fileURLWithPath: scenario.scenarioDirectory,
                                                                           isDirectory: true)).standardizedFileURL.path)
            }
        }
        paths = scenarioFiles + paths.filter { !scenarioFiles.contains($0) }
        var unique: [String] = []
        for path in paths where !unique.contains(path) { unique.append(path) }
        let root = commonDirectory(unique)
        func relative(_ path: String) -> String { String(path.dropFirst(root == "/" ? 1 : root.count + 1)) }

        var files: [Txtar.File] = []
        for path in unique {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BundleError("cannot read \(path)")
            }
            guard let text = String(data: data, encoding: .utf8), !text.contains("\0") else {
                throw BundleError("\(path) is not UTF-8 text: a bundle holds text files only",
                                  hint: "generate binary fixture files in the scenario (`files:`, `paths:`)")
            }
            files.append(Txtar.File(name: relative(path), content: text))
        }
        files.append(
            Txtar.File(name: manifestName, content: scenarioFiles.map(relative).joined(separator: "\n") + "\n"))
        // The recorded results, without their bulky evidence: what `run bug.txtar` compares outcomes with.
        let recorded = results.map { result -> RunResult in
            var slim = result
            slim.evidence = Evidence()
            slim.stdoutTail = String(result.stdoutTail.suffix(2048))
            slim.stderrTail = String(result.stderrTail.suffix(2048))
            slim.workDir = nil
            slim.outputFiles = nil
            return slim
        }
        let runFile = RunFile(ghostrun: ghostrunVersion, host: host, results: recorded)
        files.append(Txtar.File(name: resultsName,
                                content: String(decoding: try JSONReport.encode(runFile), as: UTF8.self)))

        let table = results.map { "  \($0.name)@\($0.goVersion): \($0.outcome.rawValue) — \($0.summary)" }
        let comment = """
            ghostrun repro bundle (ghostrun \(ghostrunVersion))
            Host: Linux \(host.kernel), libseccomp \(host.libseccomp), cgroup \(host.cgroup)
            Recorded results:
            \(table.joined(separator: "\n"))

            Re-run anywhere with ghostrun installed (as root):
              ghostrun run THIS-FILE.txtar --go-version all
            It extracts the files below into a private directory, runs the scenarios there and reports every outcome
            that differs from the recorded one.

            """
        return Txtar(comment: comment, files: files)
    }

    /// Writes the archive's files beneath `directory` (a fresh, private directory): names must be relative, without
    /// `.`/`..` components or NUL, within the size and count bounds; each file is created with
    /// `openat2(RESOLVE_BENEATH)` so nothing can land outside. Returns the scenario files to load and the recorded
    /// run file.
    public static func extract(_ archive: Txtar, file: String, into directory: String) throws
        -> (scenarios: [String], recorded: RunFile?)
    {
        guard archive.files.count <= maxFiles else {
            throw BundleError("\(file): \(archive.files.count) files, more than the limit of \(maxFiles)")
        }
        let total = archive.files.reduce(0) { $0 + $1.content.utf8.count }
        guard total <= maxBytes else {
            throw BundleError("\(file): \(total) bytes of files, more than the limit of \(maxBytes)")
        }
        for entry in archive.files {
            try checkName(entry.name, file: file)
        }
        guard let manifest = archive.files.first(where: { $0.name == manifestName }) else {
            throw BundleError("\(file): no `\(manifestName)` section: not a bundle written by `ghostrun bundle`",
                              hint: "write bundles with `ghostrun bundle SCENARIO... -o FILE.txtar`")
        }
        let scenarioNames = manifest.content.split(separator: "\n").map(String.init)
        for name in scenarioNames where !archive.files.contains(where: { $0.name == name }) {
            throw BundleError("\(file): the manifest names `\(name)`, which the bundle does not hold")
        }
        let confined = try ConfinedDirectory(path: directory)
        for entry in archive.files {
            try confined.writeFile(entry.name, Array(entry.content.utf8))
        }
        try confined.writeFile(rootMarker, Array("extracted from \(file) by ghostrun\n".utf8))
        var recorded: RunFile?
        if let results = archive.files.first(where: { $0.name == resultsName }) {
            do {
                recorded = try JSONReport.decode(Data(results.content.utf8))
            } catch {
                throw BundleError("\(file): `\(resultsName)` is not a run file: \(error)")
            }
        }
        return (scenarioNames.map { directory + "/" + $0 }, recorded)
    }

    static func checkName(_ name: String, file: String) throws {
        let hint = "names in a bundle are relative paths inside it"
        guard !name.hasPrefix("/") else { throw BundleError("\(file): `\(name)` is an absolute path", hint: hint) }
        guard name.utf8.count <= maxNameLength, !name.contains("\0"), !name.contains("\\") else {
            throw BundleError("\(file): `\(name.prefix(80))` is not a usable file name", hint: hint)
        }
        let components = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw BundleError("\(file): `\(name)` has an empty, `.` or `..` component", hint: hint)
        }
        guard name != rootMarker else { throw BundleError("\(file): `\(name)` is reserved", hint: hint) }
    }

    /// The regular files under a fixture, sorted; a symlink cannot be represented in txtar.
    static func regularFiles(under root: String) throws -> [String] {
        var result: [String] = []
        guard let enumerator = FileManager.default.enumerator(atPath: root) else {
            throw BundleError("cannot list the fixture \(root)")
        }
        for case let relative as String in enumerator {
            let path = root + "/" + relative
            var info = stat()
            guard lstat(path, &info) == 0 else { throw BundleError("cannot stat \(path)") }
            switch info.st_mode & S_IFMT {
            case S_IFREG: result.append(URL(fileURLWithPath: path).standardizedFileURL.path)
            case S_IFDIR: continue
            case S_IFLNK:
                throw BundleError("\(path) is a symlink: a txtar bundle holds regular files only",
                                  hint: "replace the link with the file it names")
            default: throw BundleError("\(path) is not a regular file")
            }
        }
        return result.sorted()
    }

    /// The deepest directory that contains every path.
    static func commonDirectory(_ paths: [String]) -> String {
        guard let first = paths.first else { return "/" }
        var common = first.split(separator: "/").dropLast().map(String.init)
        for path in paths.dropFirst() {
            let parts = path.split(separator: "/").dropLast().map(String.init)
            var n = 0
            while n < min(common.count, parts.count) && common[n] == parts[n] { n += 1 }
            common = Array(common.prefix(n))
        }
        return "/" + common.joined(separator: "/")
    }
}

/// A bundle extracted for `ghostrun run bug.txtar`: its scenario files, what it recorded, and the private directory
/// they live in (a run work tree, so the sweep removes it if ghostrun is killed).
public final class OpenedBundle: Sendable {
    public let source: String
    public let scenarioFiles: [String]
    public let recorded: RunFile?
    let directory: WorkDirectory

    init(source: String, scenarioFiles: [String], recorded: RunFile?, directory: WorkDirectory) {
        self.source = source
        self.scenarioFiles = scenarioFiles
        self.recorded = recorded
        self.directory = directory
    }

    /// Removes the extracted files.
    public func remove() { directory.remove() }
}

extension ReproBundle {
    /// Reads, checks and extracts the bundle at `path`; bad input throws `BundleError` and leaves nothing behind.
    public static func open(_ path: String) throws -> OpenedBundle {
        var info = stat()
        guard stat(path, &info) == 0 else { throw BundleError("\(path): \(Errno.current)") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw BundleError("\(path) is not a regular file") }
        guard Int(info.st_size) <= maxBytes * 2 else {
            throw BundleError("\(path) is \(info.st_size) bytes, more than the limit of \(maxBytes * 2)")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else { throw BundleError("\(path) is not UTF-8 text", hint: "a txtar bundle is a text file") }
        let archive = try Txtar.parse(text, file: path)
        let directory = try WorkDirectory.create(sequence: ScenarioRunner.takeSequence())
        do {
            let (scenarios, recorded) = try extract(archive, file: path, into: directory.work)
            return OpenedBundle(source: path, scenarioFiles: scenarios, recorded: recorded, directory: directory)
        } catch {
            directory.remove()
            throw error
        }
    }
}
