import Foundation
import Yams

/// Builds `Scenario` values from one file's YAML tree, checking every key and name against the contract
/// (docs scenario-format.md).
struct ScenarioParser {
    typealias Reader = ScenarioNodeReader

    let reader: ScenarioNodeReader
    /// Absolute directory of the scenario file; `fixture` is resolved against it.
    let directory: String
    /// `--allow-host-fixtures`: a fixture may be any host directory, not only one in the scenario's tree.
    var allowHostFixtures = false
    /// The directory given on the command line that holds the file (symlinks resolved), if one was: fixtures may
    /// come from anywhere inside it.
    var fixtureTree: String? = nil

    static let topLevelKeys = [
        "name", "description", "tags", "go", "run", "files", "fixture", "workdir", "env", "env_clear", "paths",
        "sandbox", "faults", "seed", "trace", "success", "timeout", "hang_after", "expect",
    ]
    static let namePattern = "[a-z0-9][a-z0-9._-]*"

    // MARK: Document

    /// One scenario, or the `scenarios:` list; scenarios that have errors are left out (the errors are recorded).
    func scenarios(from root: Node) -> [Scenario] {
        if case .mapping(let mapping) = root, mapping.keys.contains(where: { $0.string == "scenarios" }) {
            guard mapping.count == 1 else {
                for (key, _) in mapping where key.string != "scenarios" {
                    reader.report(
                        reader.error(
                            key, key.string ?? "", "no other top-level key may sit beside `scenarios:`",
                            hint: "move `\(key.string ?? "")` into each scenario of the list"))
                }
                return []
            }
            let list = mapping.first(where: { $0.key.string == "scenarios" })!.value
            guard
                let items = reader.attempt({
                    try reader.sequence(
                        list, "scenarios",
                        hint: "write `scenarios:` "
                            + "followed by `- name: ...` items")
                })
            else { return [] }
            if items.isEmpty { reader.report(reader.error(list, "scenarios", "the list of scenarios is empty")) }
            return items.enumerated().compactMap { index, item in scenario(item, path: Reader.item("scenarios", index))
            }
        }
        return [scenario(root, path: "")].compactMap { $0 }
    }

    // MARK: Scenario

    func scenario(_ node: Node, path: String) -> Scenario? {
        let before = reader.errors.count
        guard let entries = reader.attempt({ try reader.mapping(node, path, allowed: Self.topLevelKeys) }) else {
            return nil
        }
        reader.attempt { try reader.require("name", in: entries, of: node, path, hint: "add `name: my-scenario`") }
        reader.attempt {
            try reader.require("run", in: entries, of: node, path, hint: "add the argv, e.g. `run: [go, build, .]`")
        }
        let nameLine = entries.first(where: { $0.key == "name" })?.keyNode.mark?.line ?? node.mark?.line ?? 1
        var result = Scenario(
            name: "", run: [], location: SourceLocation(file: reader.file, line: nameLine),
            scenarioDirectory: directory)
        for entry in entries {
            reader.attempt { try read(entry, into: &result) }
        }
        return reader.errors.count == before ? result : nil
    }

    private func read(_ entry: Reader.Entry, into result: inout Scenario) throws {
        let value = entry.value
        let path = entry.path
        switch entry.key {
        case "name":
            let name = try reader.string(value, path)
            guard name.range(of: "^\(Self.namePattern)$", options: .regularExpression) != nil else {
                let suggested = name.lowercased().replacingOccurrences(
                    of: "[^a-z0-9._-]+", with: "-", options: .regularExpression)
                throw reader.error(
                    value, path, "`\(name)` is not a valid scenario name",
                    hint: "names match \(Self.namePattern), e.g. `\(suggested)`")
            }
            result.name = name
        case "description":
            result.description = try reader.string(value, path)
        case "tags":
            result.tags = try reader.stringList(value, path).map(\.0)
        case "go":
            let text = try reader.string(value, path)
            do {
                result.goConstraint = try VersionConstraint(parsing: text)
            } catch let problem as VersionConstraint.Problem {
                throw reader.error(
                    value, path, "`\(text)` is not a Go version constraint: \(problem)",
                    hint: "e.g. \">=1.21\", \"<1.23\", \"==1.22\", \"1.21 - 1.23\" or \"<1.20 || >=1.23\" (quote it)")
            }
        case "run":
            let argv = try reader.stringList(value, path)
            guard !argv.isEmpty else {
                throw reader.error(value, path, "`run` is empty", hint: "give the argv, e.g. `[go, build, .]`")
            }
            if argv[0].0.isEmpty {
                throw reader.error(argv[0].1, path, "argv[0] is empty", hint: "`go` runs the toolchain under test")
            }
            result.run = argv.map(\.0)
        case "files":
            result.files = try files(value, path)
        case "fixture":
            result.fixture = try fixture(value, path)
        case "workdir":
            var text = try reader.nonEmptyString(value, path)
            // `$WORK` and `$WORK/x` name the same directories as `.` and `x`.
            if text == "$WORK" { text = "." } else if text.hasPrefix("$WORK/") { text = String(text.dropFirst(6)) }
            try checkRelative(text, value, path, what: "workdir", base: "$WORK")
            result.workdir = text
        case "env":
            result.env = try environment(value, path)
        case "env_clear":
            result.envClear = try reader.bool(value, path)
        case "paths":
            result.paths = try pathSteps(value, path)
        case "sandbox":
            result.sandbox = try sandbox(value, path)
        case "faults":
            result.faults = try reader.sequence(value, path).enumerated().compactMap { index, item in
                reader.attempt { try fault(item, Reader.item(path, index)) }
            }
        case "seed":
            let seed = try reader.integer(value, path)
            guard seed >= 0 else { throw reader.error(value, path, "must not be negative") }
            result.seed = UInt64(seed)
        case "trace":
            result.trace = try trace(value, path)
        case "success":
            result.success = try success(value, path)
        case "timeout":
            result.timeout = try reader.duration(value, path)
        case "hang_after":
            result.hangAfter = try reader.duration(value, path)
        case "expect":
            result.expect = try expectation(value, path)
        default:
            // `mapping(_:_:allowed:)` already rejected keys outside topLevelKeys; reaching here means the two lists
            // disagree, which is a bug in this file rather than in the scenario.
            throw reader.error(entry.keyNode, path, "key is accepted but not read (ghostrun bug)")
        }
    }

    // MARK: Work directory

    /// Paths inside `$WORK` must stay inside it: an absolute path or `..` would write outside the scenario's own
    /// directory, and nothing a scenario does may be left behind.
    private func checkRelative(_ text: String, _ node: Node, _ path: String, what: String, base: String) throws {
        if text.hasPrefix("/") {
            throw reader.error(
                node, path, "\(what) `\(text)` is absolute; it must be relative to \(base)",
                hint: "write it relative to \(base), e.g. `\(text.drop(while: { $0 == "/" }))`")
        }
        if text.split(separator: "/").contains("..") {
            throw reader.error(
                node, path, "\(what) `\(text)` leaves \(base) through `..`",
                hint: "keep it inside \(base)")
        }
    }

    private func files(_ node: Node, _ path: String) throws -> [(path: String, content: String)] {
        guard case .mapping(let mapping) = node else {
            throw reader.error(
                node, path, "expected a mapping of file path to content, found \(Reader.describe(node))",
                hint: "write `main.go: |` followed by the content, indented")
        }
        var result: [(path: String, content: String)] = []
        for (keyNode, valueNode) in mapping {
            let name = try reader.nonEmptyString(keyNode, path)
            let filePath = Reader.child(path, name)
            try checkRelative(name, keyNode, filePath, what: "file path", base: "$WORK")
            guard case .scalar(let scalar) = valueNode, scalar.resolvedTagName != .null else {
                throw reader.error(
                    valueNode, filePath,
                    "expected the file's content as a string, found "
                        + Reader.describe(valueNode), hint: "for an empty file write `\"\"`")
            }
            result.append((name, scalar.string))
        }
        return result
    }

    private func fixture(_ node: Node, _ path: String) throws -> String {
        var text = try reader.nonEmptyString(node, path)
        if text.hasPrefix("$SCENARIO_DIR/") { text = String(text.dropFirst("$SCENARIO_DIR/".count)) }
        let resolved = text.hasPrefix("/") ? text : URL(fileURLWithPath: directory).appendingPathComponent(text).path
        let standardized = URL(fileURLWithPath: resolved).standardized.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: standardized, isDirectory: &isDirectory) else {
            throw reader.error(
                node, path, "fixture directory `\(standardized)` does not exist",
                hint: "relative fixtures are resolved against the scenario file's directory")
        }
        guard isDirectory.boolValue else {
            throw reader.error(
                node, path, "fixture `\(standardized)` is not a directory",
                hint: "to add a single file use `files:` or `paths:` with `content:`")
        }
        if !allowHostFixtures {
            let tree = Self.scenarioTree(of: directory)
            let trees = [tree] + (fixtureTree.map { [$0] } ?? [])
            let real = URL(fileURLWithPath: standardized).resolvingSymlinksInPath().path
            guard trees.contains(where: { real == $0 || real.hasPrefix($0 == "/" ? "/" : $0 + "/") }) else {
                let given = fixtureTree.map { " or the directory given on the command line `\($0)`" } ?? ""
                throw reader.error(
                    node, path, "fixture `\(standardized)` is outside the scenario's tree `\(tree)`\(given)",
                    hint: "keep fixtures inside the scenario's repository or the directory you pass to ghostrun "
                        + "(e.g. `ghostrun run scenarios/`), or pass --allow-host-fixtures")
            }
        }
        if let problem = FixtureTree.problem(in: standardized) {
            throw reader.error(
                node, path, "fixture `\(standardized)` cannot be copied: \(problem)",
                hint: "fixtures hold regular files, directories and relative symlinks that stay inside the fixture")
        }
        return standardized
    }

    /// The tree a scenario's fixtures must come from: the repository holding the scenario file (the nearest
    /// ancestor with a `.git` entry), or the file's own directory outside a repository. Symlinks resolved.
    static func scenarioTree(of directory: String) -> String {
        let real = URL(fileURLWithPath: directory).resolvingSymlinksInPath()
        var candidate = real
        while candidate.path != "/" {
            // An extracted repro bundle is a tree of its own (`ReproBundle.rootMarker`).
            if FileManager.default.fileExists(atPath: candidate.path + "/.git")
                || FileManager.default.fileExists(atPath: candidate.path + "/.ghostrun-bundle")
            {
                return candidate.path
            }
            candidate = candidate.deletingLastPathComponent()
        }
        return real.path
    }

    private func environment(_ node: Node, _ path: String) throws -> [(name: String, value: String?)] {
        guard case .mapping(let mapping) = node else {
            throw reader.error(
                node, path, "expected a mapping of variable to value, found \(Reader.describe(node))",
                hint: "write `GOFLAGS: -mod=mod`, or `HOME: null` to unset")
        }
        var result: [(name: String, value: String?)] = []
        for (keyNode, valueNode) in mapping {
            let name = try reader.nonEmptyString(keyNode, path)
            let variablePath = Reader.child(path, name)
            guard !name.contains("="), !name.contains("\0") else {
                throw reader.error(keyNode, variablePath, "`\(name)` is not a valid environment variable name")
            }
            guard case .scalar(let scalar) = valueNode else {
                throw reader.error(
                    valueNode, variablePath, "expected a string or null, found \(Reader.describe(valueNode))",
                    hint: "quote the whole value; a list or mapping has no single environment form")
            }
            // Numbers and booleans keep the spelling the user wrote (`GOAMD64: v3`, `CGO_ENABLED: 0`).
            result.append((name, scalar.resolvedTagName == .null ? nil : scalar.string))
        }
        return result
    }

    // MARK: paths:

    private func pathSteps(_ node: Node, _ path: String) throws -> [PathStep] {
        try reader.sequence(node, path, hint: "write a list of `{path: $WORK/x, mkdir: true, mode: \"0555\"}`")
            .enumerated().compactMap { index, item in reader.attempt { try pathStep(item, Reader.item(path, index)) } }
    }

    private func pathStep(_ node: Node, _ path: String) throws -> PathStep {
        let entries = try reader.mapping(node, path, allowed: ["path", "mkdir", "mode", "owner", "content"])
        try reader.require("path", in: entries, of: node, path, hint: "e.g. `path: $WORK/cache`")
        var step = PathStep(path: "")
        var contentNode: Node?
        for entry in entries {
            switch entry.key {
            case "path":
                let text = try reader.nonEmptyString(entry.value, entry.path)
                // Steps run as root before the sandbox exists, so they are confined to the work directory.
                let relative = text == "$WORK" ? "." : text.hasPrefix("$WORK/") ? String(text.dropFirst(6)) : text
                if text.hasPrefix("$") && relative == text {
                    throw reader.error(
                        entry.value, entry.path, "`\(text)` is outside $WORK",
                        hint: "paths are prepared as root, so they must start with $WORK/ or be "
                            + "relative to $WORK")
                }
                try checkRelative(relative, entry.value, entry.path, what: "path", base: "$WORK")
                step.path = text
            case "mkdir":
                step.mkdir = try reader.bool(entry.value, entry.path)
            case "mode":
                step.mode = try mode(entry.value, entry.path)
            case "owner":
                step.owner = try ids(entry.value, entry.path)
            case "content":
                step.content = try reader.string(entry.value, entry.path)
                contentNode = entry.value
            default:
                break
            }
        }
        if step.mkdir, step.content != nil {
            throw reader.error(
                contentNode, Reader.child(path, "content"), "a directory (`mkdir: true`) has no content",
                hint: "use two steps: one for the directory, one for a file inside it")
        }
        return step
    }

    /// `"0555"` / `0o555` / `0555` are octal as chmod reads them; a plain integer without a leading zero is the mode's
    /// numeric value.
    private func mode(_ node: Node, _ path: String) throws -> UInt32 {
        let hint = "write the octal mode as a string, e.g. mode: \"0755\""
        guard case .scalar(let scalar) = node, scalar.resolvedTagName == .str || scalar.resolvedTagName == .int else {
            throw reader.error(node, path, "expected a mode, found \(Reader.describe(node))", hint: hint)
        }
        var text = Substring(scalar.string)
        var radix = 8
        if text.hasPrefix("0o") {
            text = text.dropFirst(2)
        } else if scalar.resolvedTagName == .int, !text.hasPrefix("0") {
            radix = 10
        }
        guard !text.isEmpty, let value = UInt32(text, radix: radix), value <= 0o7777 else {
            throw reader.error(node, path, "`\(scalar.string)` is not a file mode", hint: hint)
        }
        return value
    }

    /// `"uid:gid"` or `"uid"` (gid = uid), numeric only: names would depend on the host's /etc/passwd.
    private func ids(_ node: Node, _ path: String) throws -> (uid: UInt32, gid: UInt32) {
        let hint = "numeric \"uid:gid\" or \"uid\", e.g. \"65534:65534\""
        guard case .scalar(let scalar) = node, scalar.resolvedTagName != .null else {
            throw reader.error(node, path, "expected \"uid:gid\", found \(Reader.describe(node))", hint: hint)
        }
        let parts = scalar.string.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let uid = UInt32(parts[0]), let gid = parts.count == 2 ? UInt32(parts[1]) : uid,
            uid != UInt32.max, gid != UInt32.max
        else {
            throw reader.error(node, path, "`\(scalar.string)` is not a numeric uid:gid", hint: hint)
        }
        return (uid, gid)
    }

    // MARK: sandbox:

    private func sandbox(_ node: Node, _ path: String) throws -> Sandbox {
        let keys = [
            "user", "no_new_privs", "capabilities", "seccomp", "rlimits", "cgroup", "mounts", "network", "landlock",
            "stall",
        ]
        var result = Sandbox()
        for entry in try reader.mapping(node, path, allowed: keys) {
            reader.attempt {
                switch entry.key {
                case "user": result.user = try ids(entry.value, entry.path)
                case "no_new_privs": result.noNewPrivs = try reader.bool(entry.value, entry.path)
                case "capabilities": result.capabilities = try capabilities(entry.value, entry.path)
                case "seccomp": result.seccomp = try seccomp(entry.value, entry.path)
                case "rlimits": result.rlimits = try rlimits(entry.value, entry.path)
                case "cgroup": result.cgroup = try cgroup(entry.value, entry.path)
                case "mounts": result.mounts = try mounts(entry.value, entry.path)
                case "network": result.network = try network(entry.value, entry.path)
                case "landlock": result.landlock = try landlock(entry.value, entry.path)
                case "stall": result.stall = try stall(entry.value, entry.path)
                default: break
                }
            }
        }
        if !result.stall.isEmpty && result.network != .loopback,
            let entry = try? reader.mapping(node, path, allowed: keys).first(where: { $0.key == "stall" })
        {
            reader.report(
                reader.error(entry.value, entry.path, "stall endpoints need `network: loopback`",
                             hint: "add `network: loopback`: the endpoints are served inside the run's namespace"))
        }
        return result
    }

    private func stall(_ node: Node, _ path: String) throws -> [StallEndpoint] {
        let items = try reader.stringList(node, path)
        guard items.count <= 16 else {
            throw reader.error(node, path, "\(items.count) endpoints", hint: "at most 16 stall endpoints")
        }
        return try items.map { text, item in
            guard let endpoint = StallEndpoint(text) else {
                throw reader.error(item, path, "`\(text)` is not a loopback ADDR:PORT",
                                   hint: "an IPv4 address in 127.0.0.0/8 and a port 1-65535, e.g. 127.0.0.1:8099")
            }
            return endpoint
        }
    }

    // MARK: mounts:, network:

    /// Sizes a tmpfs may have: a page up to 1 TiB (a typo like `64` bytes or `64TiB` is caught here, not by mount).
    static let tmpfsSizes: ClosedRange<UInt64> = 4096...(1 << 40)

    private func mounts(_ node: Node, _ path: String) throws -> [MountEntry] {
        let keys = ["path", "readonly", "tmpfs", "noexec", "nosuid", "nodev", "hide", "bind"]
        return try reader.sequence(node, path, hint: "write `- {path: /tmp, tmpfs: 64MiB, noexec: true}`")
            .enumerated().compactMap { index, item in
                reader.attempt { try mountEntry(item, Reader.item(path, index), keys: keys) }
            }
    }

    private func mountEntry(_ node: Node, _ path: String, keys: [String]) throws -> MountEntry {
        let entries = try reader.mapping(node, path, allowed: keys)
        guard let pathEntry = entries.first(where: { $0.key == "path" }) else {
            throw reader.error(node, path, "a mount entry needs `path`", hint: "an absolute path, or $WORK/...")
        }
        let target = try mountPath(pathEntry.value, pathEntry.path)
        var entry = MountEntry(path: target, kind: .flags)
        entry.location = SourceLocation(file: reader.file, line: (node.mark?.line ?? 0))
        var kinds: [String] = []
        for item in entries {
            switch item.key {
            case "readonly": entry.readonly = try reader.bool(item.value, item.path)
            case "noexec": entry.noexec = try reader.bool(item.value, item.path)
            case "nosuid": entry.nosuid = try reader.bool(item.value, item.path)
            case "nodev": entry.nodev = try reader.bool(item.value, item.path)
            case "tmpfs":
                let size = try reader.size(item.value, item.path)
                guard Self.tmpfsSizes.contains(size) else {
                    throw reader.error(item.value, item.path, "a tmpfs of \(size) bytes is out of range",
                                       hint: "between 4KiB and 1TiB, e.g. 64MiB")
                }
                entry.kind = .tmpfs(size: size)
                kinds.append("tmpfs")
            case "hide":
                guard try reader.bool(item.value, item.path) else { break }
                entry.kind = .hide
                kinds.append("hide")
            case "bind":
                let source = try mountPath(item.value, item.path)
                if source.hasPrefix("/") && !FileManager.default.fileExists(atPath: source) {
                    throw reader.error(item.value, item.path, "the bind source `\(source)` does not exist",
                                       hint: "an existing host path, or $WORK/... (created by files: or fixture:)")
                }
                entry.kind = .bind(source: source)
                kinds.append("bind")
            default: break
            }
        }
        guard kinds.count <= 1 else {
            throw reader.error(node, path, "`\(kinds.joined(separator: "` and `"))` in one entry",
                               hint: "one of tmpfs, hide, bind per entry; add another entry for the same path")
        }
        if entry.kind == .hide && (entry.readonly || entry.noexec || entry.nosuid || entry.nodev) {
            throw reader.error(node, path, "`hide` takes no flags",
                               hint: "a hidden path is empty and read-only already")
        }
        if entry.kind == .flags && !(entry.readonly || entry.noexec || entry.nosuid || entry.nodev) {
            throw reader.error(node, path, "the entry changes nothing at `\(target)`",
                               hint: "add readonly, noexec, nosuid, nodev, tmpfs, hide or bind")
        }
        // The target must exist: ghostrun never creates directories on the host to mount over them.
        if target.hasPrefix("/") && !FileManager.default.fileExists(atPath: target) {
            throw reader.error(pathEntry.value, pathEntry.path, "`\(target)` does not exist on this host",
                               hint: "mount targets must exist; use $WORK/... for a directory the scenario creates")
        }
        return entry
    }

    /// An absolute path or one under `$WORK`, without `..` (a mount entry must say plainly what it covers).
    private func mountPath(_ node: Node, _ path: String) throws -> String {
        let text = try reader.string(node, path)
        let hint = "an absolute path such as /tmp, or $WORK/... for the run's directory"
        guard !text.isEmpty else { throw reader.error(node, path, "must not be empty", hint: hint) }
        let underWork = text == "$WORK" || text.hasPrefix("$WORK/")
        guard text.hasPrefix("/") || underWork else {
            throw reader.error(node, path, "`\(text)` is a relative path", hint: hint)
        }
        guard !text.split(separator: "/").contains("..") else {
            throw reader.error(node, path, "`\(text)` contains `..`", hint: hint)
        }
        return text
    }

    private func landlock(_ node: Node, _ path: String) throws -> LandlockRequest {
        var result = LandlockRequest()
        result.location = SourceLocation(file: reader.file, line: node.mark?.line ?? 0)
        for entry in try reader.mapping(node, path, allowed: ["write", "read"]) {
            var paths: [String] = []
            for (index, item) in try reader.sequence(entry.value, entry.path).enumerated() {
                let itemPath = Reader.item(entry.path, index)
                let text = try reader.string(item, itemPath)
                let hint = "an absolute path of an existing tree, or $WORK/... or $GOROOT"
                guard !text.isEmpty else { throw reader.error(item, itemPath, "must not be empty", hint: hint) }
                guard text.hasPrefix("/") || text.hasPrefix("$WORK") || text.hasPrefix("$GOROOT") else {
                    throw reader.error(item, itemPath, "`\(text)` is a relative path", hint: hint)
                }
                if text.hasPrefix("/") && !FileManager.default.fileExists(atPath: text) {
                    throw reader.error(item, itemPath, "`\(text)` does not exist on this host", hint: hint)
                }
                paths.append(text)
            }
            if entry.key == "write" { result.write = paths } else { result.read = paths }
        }
        return result
    }

    private func network(_ node: Node, _ path: String) throws -> NetworkMode {
        let text = try reader.string(node, path)
        guard let mode = NetworkMode(rawValue: text) else {
            throw reader.error(node, path, "unknown network `\(text)`",
                               hint: "none (no interface up) or loopback (lo up); both have no route out")
        }
        return mode
    }

    private func capabilities(_ node: Node, _ path: String) throws -> CapabilityRequest {
        var result = CapabilityRequest()
        for entry in try reader.mapping(node, path, allowed: ["preset", "drop", "add", "ambient"]) {
            reader.attempt {
                if entry.key == "preset" {
                    let text = try reader.string(entry.value, entry.path)
                    guard let preset = CapabilityPreset(rawValue: text) else {
                        throw reader.error(
                            entry.value, entry.path, "unknown capability preset `\(text)`",
                            hint: Reader.suggestion(for: text, in: CapabilityPreset.allCases.map(\.rawValue))
                                ?? CapabilityPreset.allCases.map(\.rawValue).joined(separator: " or "))
                    }
                    result.preset = preset
                    return
                }
                let set = try capabilitySet(entry.value, entry.path)
                switch entry.key {
                case "drop": result.drop = set
                case "add": result.add = set
                case "ambient": result.ambient = set
                default: break
                }
            }
        }
        return result
    }

    private func capabilitySet(_ node: Node, _ path: String) throws -> CapabilitySet {
        var set = CapabilitySet()
        for (name, item) in try reader.stringList(node, path) {
            if name.uppercased() == "ALL" {
                set.formUnion(.all)
                continue
            }
            guard let number = CapabilityName.number(of: name) else {
                let canonical = name.uppercased().hasPrefix("CAP_") ? name.uppercased() : "CAP_" + name.uppercased()
                throw reader.error(
                    item, path, "unknown capability `\(name)`",
                    hint: Reader.suggestion(for: canonical, in: CapabilityName.allNames)
                        ?? "names are CAP_X or X as capabilities(7) lists them, or ALL")
            }
            set.insert(CapabilitySet(numbers: [number]))
        }
        return set
    }

    // MARK: seccomp:

    private func seccomp(_ node: Node, _ path: String) throws -> SeccompPolicy {
        var result = SeccompPolicy()
        let entries = try reader.mapping(node, path, allowed: ["profile", "runtime", "default", "rules"])
        for entry in entries {
            reader.attempt {
                switch entry.key {
                case "profile":
                    let reference = try reader.nonEmptyString(entry.value, entry.path)
                    do {
                        result.profileDocument = try BuiltInProfiles.load(reference, relativeTo: directory)
                    } catch let error as ProfileError {
                        throw reader.error(
                            entry.value, entry.path,
                            "\(error.profile): \(error.path.isEmpty ? "" : error.path + ": ")\(error.message)",
                            hint: error.hint)
                    }
                    result.profile = reference
                case "runtime":
                    let text = try reader.string(entry.value, entry.path)
                    guard let runtime = SeccompRuntime(rawValue: text) else {
                        throw reader.error(
                            entry.value, entry.path, "unknown runtime `\(text)`",
                            hint: "runc (ENOSYS above the profile's highest syscall) or crun (the profile as written)")
                    }
                    result.runtime = runtime
                case "default":
                    let text = try reader.string(entry.value, entry.path)
                    guard let action = try seccompAction(text, entry.value, entry.path) else {
                        throw reader.error(
                            entry.value, entry.path, "a default `errno` needs the errno to return",
                            hint: "write `errno:EPERM` (or another name or number)")
                    }
                    result.defaultAction = action
                    result.defaultGiven = true
                case "rules":
                    result.rules = try reader.sequence(entry.value, entry.path).enumerated().compactMap { index, item in
                        reader.attempt { try seccompRule(item, Reader.item(entry.path, index)) }
                    }
                default:
                    break
                }
            }
        }
        return result
    }

    static let actionWords = ["allow", "errno", "errno:NAME", "trap", "kill-process", "kill-thread", "kill", "log"]

    /// A seccomp action; nil for a bare `errno`, whose value comes from the rule's `errno:` key.
    private func seccompAction(_ text: String, _ node: Node, _ path: String) throws -> SeccompAction? {
        switch text {
        case "allow": return .allow
        case "errno": return nil
        case "trap": return .trap
        case "kill-process", "kill": return .killProcess
        case "kill-thread": return .killThread
        case "log": return .log
        default:
            if text.hasPrefix("errno:") {
                let name = String(text.dropFirst("errno:".count))
                return .errno(try errnoValue(name, node, path))
            }
            throw reader.error(
                node, path, "unknown seccomp action `\(text)`",
                hint: Reader.suggestion(for: text, in: Self.actionWords))
        }
    }

    private func errnoValue(_ name: String, _ node: Node, _ path: String) throws -> Int32 {
        guard let value = ErrnoName.value(of: name) else {
            throw reader.error(
                node, path, "unknown errno `\(name)`",
                hint: Reader.suggestion(for: name.uppercased(), in: ErrnoName.allNames)
                    ?? "a name such as EPERM or EACCES, or an errno number 1-\(ErrnoName.largestValue)")
        }
        return value
    }

    private func errno(_ node: Node, _ path: String) throws -> Int32 {
        try errnoValue(try reader.string(node, path), node, path)
    }

    private func syscall(_ name: String, _ node: Node, _ path: String) throws -> String {
        guard SyscallName.number(of: name) != nil else {
            // A call of other architectures (socketcall, chown32 on x86-64): a rule on it would match nothing.
            if SyscallTable.existsOnOtherArchitecture(name) {
                throw reader.error(
                    node, path, "syscall `\(name)` does not exist on \(NativeArchitecture.current.rawValue)",
                    hint: "use the native call, e.g. socket instead of socketcall, chown instead of chown32")
            }
            throw reader.error(
                node, path, "unknown syscall `\(name)`",
                hint: Reader.suggestion(for: name, in: ScenarioParser.syscallNames)
                    ?? "names as in syscalls(2), e.g. openat (tables of \(SyscallTable.source))")
        }
        return name
    }

    /// Every syscall name of the native architecture, for did-you-mean hints.
    static let syscallNames: [String] = SyscallTable.native.allNames

    private func syscallList(_ node: Node, _ path: String) throws -> [String] {
        try reader.stringList(node, path).map { try syscall($0.0, $0.1, path) }
    }

    private func seccompRule(_ node: Node, _ path: String) throws -> SeccompRule {
        let entries = try reader.mapping(node, path, allowed: ["syscalls", "action", "errno", "args"])
        try reader.require("syscalls", in: entries, of: node, path, hint: "e.g. `syscalls: [openat]`")
        try reader.require(
            "action", in: entries, of: node, path,
            hint: "one of allow, errno, trap, kill-process, kill-thread, log")
        var syscalls: [String] = []
        var action: SeccompAction?
        var actionEntry: Reader.Entry?
        var errnoEntry: Reader.Entry?
        var args: [SeccompArgCondition] = []
        for entry in entries {
            switch entry.key {
            case "syscalls":
                syscalls = try syscallList(entry.value, entry.path)
                if syscalls.isEmpty {
                    throw reader.error(entry.value, entry.path, "a rule needs at least one syscall")
                }
            case "action":
                action = try seccompAction(try reader.string(entry.value, entry.path), entry.value, entry.path)
                actionEntry = entry
            case "errno":
                errnoEntry = entry
            case "args":
                args = try reader.sequence(entry.value, entry.path).enumerated().map { index, item in
                    try argCondition(item, Reader.item(entry.path, index))
                }
            default:
                break
            }
        }
        // The errno key and the action must agree; a stray `errno:` next to `action: allow` would otherwise be
        // dropped, and the user would believe the call fails when it succeeds.
        switch (action, errnoEntry) {
        case (nil, nil):
            throw reader.error(
                actionEntry?.value, Reader.child(path, "errno"), "`action: errno` needs an `errno:` key",
                hint: "add `errno: EPERM` (name or number) to this rule")
        case (nil, let entry?):
            action = .errno(try errno(entry.value, entry.path))
        case (.errno?, let entry?):
            throw reader.error(
                entry.keyNode, entry.path, "the errno is given twice, in `action` and in `errno`",
                hint: "keep one: `action: errno` with `errno: NAME`, or `action: errno:NAME` alone")
        case (let other?, let entry?):
            throw reader.error(
                entry.keyNode, entry.path, "`errno` has no effect with `action: \(other)`",
                hint: "use `action: errno`, or remove `errno`")
        case (_?, nil):
            break
        }
        return SeccompRule(
            syscalls: syscalls, action: action!, args: args,
            location: SourceLocation(file: reader.file, line: node.mark?.line ?? 0))
    }

    private func argCondition(_ node: Node, _ path: String) throws -> SeccompArgCondition {
        let entries = try reader.mapping(node, path, allowed: ["index", "op", "value", "mask"])
        try reader.require("index", in: entries, of: node, path, hint: "the argument's position, 0 to 5")
        try reader.require("value", in: entries, of: node, path)
        var condition = SeccompArgCondition(index: 0, op: .eq, value: 0)
        var maskEntry: Reader.Entry?
        var opNode: Node?
        for entry in entries {
            switch entry.key {
            case "index":
                let index = try reader.integer(entry.value, entry.path)
                guard (0...5).contains(index) else {
                    throw reader.error(
                        entry.value, entry.path, "argument index \(index) is out of range",
                        hint: "a syscall has at most 6 arguments: index 0 to 5")
                }
                condition.index = UInt32(index)
            case "op":
                let text = try reader.string(entry.value, entry.path)
                guard let op = SeccompArgCondition.Op(rawValue: text) else {
                    throw reader.error(
                        entry.value, entry.path, "unknown comparison `\(text)`",
                        hint: Reader.suggestion(
                            for: text,
                            in: SeccompArgCondition.Op.allCases.map(\.rawValue)))
                }
                condition.op = op
                opNode = entry.value
            case "value":
                condition.value = try reader.bits64(entry.value, entry.path)
            case "mask":
                condition.mask = try reader.bits64(entry.value, entry.path)
                maskEntry = entry
            default:
                break
            }
        }
        if condition.op == .masked_eq, maskEntry == nil {
            throw reader.error(
                opNode, Reader.child(path, "mask"), "`op: masked_eq` needs a `mask`",
                hint: "the rule matches when (arg & mask) == value, e.g. `mask: 0x3`")
        }
        if let maskEntry, condition.op != .masked_eq {
            throw reader.error(
                maskEntry.keyNode, maskEntry.path, "`mask` only applies to `op: masked_eq`",
                hint: "use `op: masked_eq`, or remove `mask`")
        }
        return condition
    }

    // MARK: rlimits:

    private func rlimits(_ node: Node, _ path: String) throws -> [ResourceLimit] {
        try reader.mapping(node, path, allowed: ResourceLimitName.allNames).compactMap { entry in
            reader.attempt { () throws -> ResourceLimit in
                let resource = ResourceLimitName.resource(of: entry.key)!
                if case .mapping = entry.value {
                    let fields = try reader.mapping(entry.value, entry.path, allowed: ["soft", "hard"])
                    try reader.require("soft", in: fields, of: entry.value, entry.path)
                    try reader.require("hard", in: fields, of: entry.value, entry.path)
                    var soft: UInt64 = 0
                    var hard: UInt64 = 0
                    for field in fields {
                        let value = try limitValue(field.value, field.path)
                        if field.key == "soft" { soft = value } else { hard = value }
                    }
                    guard soft <= hard else {
                        throw reader.error(
                            entry.value, entry.path, "soft limit \(soft) is above hard limit \(hard)",
                            hint: "setrlimit(2) refuses soft > hard")
                    }
                    return ResourceLimit(name: entry.key, resource: resource, soft: soft, hard: hard)
                }
                let value = try limitValue(entry.value, entry.path)
                return ResourceLimit(name: entry.key, resource: resource, soft: value, hard: value)
            }
        }
    }

    /// A count or a size; `unlimited` is `UInt64.max`, which is RLIM_INFINITY.
    private func limitValue(_ node: Node, _ path: String) throws -> UInt64 {
        if case .scalar(let scalar) = node, ["unlimited", "infinity"].contains(scalar.string) { return .max }
        return try reader.size(node, path)
    }

    // MARK: cgroup:

    private func cgroup(_ node: Node, _ path: String) throws -> CgroupRequest {
        var result = CgroupRequest()
        for entry in try reader.mapping(node, path, allowed: ["pids_max", "memory_max", "cpu_max", "freeze"]) {
            reader.attempt {
                switch entry.key {
                case "pids_max":
                    let value = try reader.integer(entry.value, entry.path)
                    guard value >= 1 else {
                        throw reader.error(
                            entry.value, entry.path, "pids_max must be at least 1",
                            hint: "the go command itself is one process")
                    }
                    // The kernel refuses pids.max above PID_MAX_LIMIT (4194304 on 64-bit) with EINVAL.
                    guard value <= CgroupRequest.largestPidsMax else {
                        throw reader.error(
                            entry.value, entry.path,
                            "pids_max \(value) is above the kernel's limit \(CgroupRequest.largestPidsMax)",
                            hint: "omit pids_max for no limit")
                    }
                    result.pidsMax = value
                case "memory_max":
                    let value = try reader.size(entry.value, entry.path)
                    guard value >= CgroupRequest.smallestMemoryMax else {
                        throw reader.error(
                            entry.value, entry.path, "memory_max \(value) is below one page",
                            hint: "give at least 4KiB; a go build needs tens of MiB")
                    }
                    guard value <= CgroupRequest.largestMemoryMax else {
                        throw reader.error(
                            entry.value, entry.path, "memory_max \(value) is above the largest limit the kernel takes",
                            hint: "omit memory_max for no limit")
                    }
                    result.memoryMax = value
                case "cpu_max":
                    let hint = "CPUs as a decimal, e.g. 0.5 for half of one CPU, 2 for two"
                    guard case .scalar(let scalar) = entry.value,
                        scalar.resolvedTagName == .float || scalar.resolvedTagName == .int,
                        let value = Double(scalar.string), value.isFinite
                    else {
                        throw reader.error(entry.value, entry.path, "expected a number of CPUs", hint: hint)
                    }
                    guard value >= CgroupRequest.smallestCPUMax else {
                        throw reader.error(
                            entry.value, entry.path,
                            "cpu_max \(scalar.string) is below \(CgroupRequest.smallestCPUMax) CPU, the kernel's "
                                + "smallest quota (1 ms per 100 ms period)", hint: hint)
                    }
                    guard value <= CgroupRequest.largestCPUMax else {
                        throw reader.error(
                            entry.value, entry.path,
                            "cpu_max \(scalar.string) is above \(Int(CgroupRequest.largestCPUMax)) CPUs",
                            hint: "omit cpu_max for no limit")
                    }
                    result.cpuMax = value
                case "freeze":
                    if case .sequence = entry.value {
                        result.freeze = try reader.sequence(entry.value, entry.path).enumerated().map { index, item in
                            try freezeStep(item, Reader.item(entry.path, index))
                        }
                    } else {
                        result.freeze = [try freezeStep(entry.value, entry.path)]
                    }
                default:
                    break
                }
            }
        }
        return result
    }

    private func freezeStep(_ node: Node, _ path: String) throws -> FreezeStep {
        let entries = try reader.mapping(node, path, allowed: ["after", "on_process", "hold"])
        var trigger: FreezeStep.Trigger?
        var hold: Duration?
        for entry in entries {
            switch entry.key {
            case "after", "on_process":
                guard trigger == nil else {
                    throw reader.error(
                        entry.keyNode, entry.path, "give either `after` or `on_process`, not both",
                        hint: "use a list of freeze steps to freeze twice")
                }
                trigger =
                    entry.key == "after"
                    ? .after(try reader.duration(entry.value, entry.path, allowZero: true))
                    : .onProcess(try reader.nonEmptyString(entry.value, entry.path))
            case "hold":
                hold = try reader.duration(entry.value, entry.path)
            default:
                break
            }
        }
        guard let trigger else {
            throw reader.error(
                node, path, "a freeze step needs `after` or `on_process`",
                hint: "e.g. `after: 300ms` or `on_process: compile`")
        }
        return FreezeStep(trigger: trigger, hold: hold)
    }

    // MARK: faults:

    private func fault(_ node: Node, _ path: String) throws -> Fault {
        let keys = ["syscall", "errno", "path", "process", "nth", "every", "probability", "delay"]
        let entries = try reader.mapping(node, path, allowed: keys)
        try reader.require("syscall", in: entries, of: node, path, hint: "e.g. `syscall: openat`")
        var result = Fault(syscall: "", errno: nil)
        var whenKey: String?
        for entry in entries {
            switch entry.key {
            case "syscall":
                let name = try reader.string(entry.value, entry.path)
                result.syscall = try syscall(name, entry.value, entry.path)
            case "errno":
                result.errno = try errno(entry.value, entry.path)
            case "path":
                result.path = try reader.nonEmptyString(entry.value, entry.path)
            case "process":
                result.process = try reader.nonEmptyString(entry.value, entry.path)
            case "nth", "every", "probability":
                if let whenKey {
                    throw reader.error(
                        entry.keyNode, entry.path,
                        "`\(whenKey)` and `\(entry.key)` both choose which "
                            + "calls fail", hint: "keep one of nth, every, probability")
                }
                whenKey = entry.key
                result.when = try when(entry)
            case "delay":
                result.delay = try reader.duration(entry.value, entry.path)
            default:
                break
            }
        }
        if result.errno == nil, result.delay == nil {
            throw reader.error(
                node, path, "a fault needs an `errno` to return, a `delay`, or both",
                hint: "e.g. `errno: EACCES` or `delay: 50ms`")
        }
        result.location = SourceLocation(file: reader.file, line: node.mark?.line ?? 0)
        return result
    }

    private func when(_ entry: Reader.Entry) throws -> Fault.When {
        switch entry.key {
        case "nth":
            let nth = try reader.integer(entry.value, entry.path)
            guard nth >= 1 else {
                throw reader.error(entry.value, entry.path, "nth must be at least 1", hint: "calls are counted from 1")
            }
            return .nth(nth)
        case "every":
            guard try reader.bool(entry.value, entry.path) else {
                throw reader.error(
                    entry.value, entry.path, "`every: false` would never inject the fault",
                    hint: "remove the fault, or choose calls with `nth` or `probability`")
            }
            return .every
        default:
            guard case .scalar(let scalar) = entry.value, [.float, .int].contains(scalar.resolvedTagName),
                let probability = Double(scalar.string), (0...1).contains(probability)
            else {
                throw reader.error(
                    entry.value, entry.path,
                    "probability must be a number from 0 to 1, found "
                        + Reader.describe(entry.value), hint: "e.g. `probability: 0.2`")
            }
            return .probability(probability)
        }
    }

    // MARK: trace, success, expect

    private func trace(_ node: Node, _ path: String) throws -> TraceRequest {
        if case .sequence = node {
            let names = try syscallList(node, path)
            return names.isEmpty ? .off : .syscalls(names)
        }
        guard case .scalar(let scalar) = node, scalar.resolvedTagName == .bool else {
            throw reader.error(
                node, path, "expected true, false or a list of syscalls, found \(Reader.describe(node))",
                hint: "e.g. `trace: true` or `trace: [openat, execve]`")
        }
        return try reader.bool(node, path) ? .all : .off
    }

    private func regex(_ node: Node, _ path: String) throws -> String {
        let pattern = try reader.string(node, path)
        do {
            _ = try NSRegularExpression(pattern: pattern)
        } catch {
            throw reader.error(
                node, path, "`\(pattern)` is not a valid regular expression",
                hint: "escape special characters such as ( [ . * with a backslash")
        }
        return pattern
    }

    private func success(_ node: Node, _ path: String) throws -> SuccessCriteria {
        var result = SuccessCriteria()
        for entry in try reader.mapping(node, path, allowed: ["artifact", "stdout"]) {
            reader.attempt {
                switch entry.key {
                case "artifact": result.artifact = try reader.nonEmptyString(entry.value, entry.path)
                case "stdout": result.stdout = try regex(entry.value, entry.path)
                default: break
                }
            }
        }
        return result
    }

    private func expectation(_ node: Node, _ path: String) throws -> Expectation {
        let keys = ["outcome", "exit", "signal", "stderr", "stdout", "artifact", "hang_kind", "tests", "summary"]
        var result = Expectation()
        for entry in try reader.mapping(node, path, allowed: keys) {
            reader.attempt {
                switch entry.key {
                case "outcome":
                    let items: [(String, Node)]
                    if case .sequence = entry.value {
                        items = try reader.stringList(entry.value, entry.path)
                    } else {
                        items = [(try reader.string(entry.value, entry.path), entry.value)]
                    }
                    guard !items.isEmpty else {
                        throw reader.error(entry.value, entry.path, "the list of outcomes is empty")
                    }
                    result.outcomes = try items.map { try outcome($0.0, $0.1, entry.path) }
                case "exit":
                    let code = try reader.integer(entry.value, entry.path)
                    guard (0...255).contains(code) else {
                        throw reader.error(
                            entry.value, entry.path, "exit status \(code) is outside 0-255",
                            hint: "a process killed by a signal has no exit status; use `signal:`")
                    }
                    result.exit = Int32(code)
                case "signal":
                    result.signal = try signal(entry.value, entry.path)
                case "stderr":
                    result.stderr = try regex(entry.value, entry.path)
                case "stdout":
                    result.stdout = try regex(entry.value, entry.path)
                case "summary":
                    result.summary = try regex(entry.value, entry.path)
                case "artifact":
                    result.artifact = try reader.nonEmptyString(entry.value, entry.path)
                case "hang_kind":
                    let text = try reader.string(entry.value, entry.path)
                    guard let kind = HangKind(rawValue: text) else {
                        throw reader.error(
                            entry.value, entry.path, "unknown hang kind `\(text)`",
                            hint: Reader.suggestion(for: text, in: HangKind.allCases.map(\.rawValue)))
                    }
                    result.hangKind = kind
                case "tests":
                    result.tests = try testsExpectation(entry.value, entry.path)
                default:
                    break
                }
            }
        }
        return result
    }

    private func outcome(_ text: String, _ node: Node, _ path: String) throws -> Outcome {
        guard let outcome = Outcome(rawValue: text) else {
            throw reader.error(
                node, path, "unknown outcome `\(text)`",
                hint: Reader.suggestion(for: text, in: Outcome.allCases.map(\.rawValue)))
        }
        // A harness error is ghostrun's own failure, never the target's outcome, so expecting one can never pass.
        guard !outcome.isUnmeasured else {
            throw reader.error(
                node, path, "`\(outcome.rawValue)` is never a scenario's outcome",
                hint: "expect what the go command does: clear-error, crash, signaled, hang, ...")
        }
        return outcome
    }

    /// The canonical name (`SIGSYS`) for `SIGSYS`, `sys` or `31`.
    private func signal(_ node: Node, _ path: String) throws -> String {
        let text = try reader.string(node, path)
        let number = Int32(text).flatMap { (1...31).contains($0) ? $0 : nil } ?? SignalName.number(of: text)
        guard let number else {
            let canonical = text.uppercased().hasPrefix("SIG") ? text.uppercased() : "SIG" + text.uppercased()
            throw reader.error(
                node, path, "unknown signal `\(text)`",
                hint: Reader.suggestion(for: canonical, in: SignalName.allNames)
                    ?? "a name such as SIGSYS or SIGKILL")
        }
        return SignalName.name(of: number)
    }
}
