import Foundation
import Yams

/// Reads scenario files (YAML, or JSON with the same structure) into checked `Scenario` values.
///
/// Every problem is a `ScenarioError` naming file, line and dotted key. Loading does not stop at the first problem:
/// a single problem is thrown as `ScenarioError`, several as `ScenarioLoadErrors` (use `Error.scenarioErrors` to
/// handle both alike).
public enum ScenarioLoader {
    /// File extensions picked up when a directory is given.
    public static let scenarioExtensions: Set<String> = ["yaml", "yml", "json"]

    /// Loads files and directories; directories are searched recursively for `*.yaml`, `*.yml` and `*.json` (hidden
    /// entries skipped), each directory's files sorted by path. Scenario names must be unique across everything
    /// loaded, because results are keyed by name.
    ///
    /// A directory given here is a tree the fixtures of the scenarios found in it may come from, besides each
    /// scenario's own repository or directory: so a catalog copied without its `.git` (a release archive, an image)
    /// loads as it does in its checkout.
    public static func load(paths: [String], allowHostFixtures: Bool = false) throws -> [Scenario] {
        var errors: [ScenarioError] = []
        var files: [(file: String, tree: String?)] = []
        var seenFiles: Set<String> = []
        for path in paths {
            do {
                var isDirectory: ObjCBool = false
                let tree = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
                    && isDirectory.boolValue ? URL(fileURLWithPath: path).resolvingSymlinksInPath().path : nil
                for file in try scenarioFiles(at: path) {
                    // The same file reached twice (`dir dir/a.yaml`) is one scenario, not a duplicate name.
                    let key = URL(fileURLWithPath: file).standardizedFileURL.resolvingSymlinksInPath().path
                    if seenFiles.insert(key).inserted { files.append((file, tree)) }
                }
            } catch {
                errors += error.scenarioErrors
            }
        }
        var scenarios: [Scenario] = []
        for (file, tree) in files {
            do {
                scenarios += try load(file: file, allowHostFixtures: allowHostFixtures, fixtureTree: tree)
            } catch {
                errors += error.scenarioErrors
            }
        }
        errors += duplicateNames(in: scenarios)
        try ScenarioLoadErrors.throwIfAny(errors)
        return scenarios
    }

    /// Loads one file, whatever its extension. `fixtureTree`: the directory given on the command line that holds it.
    public static func load(file: String, allowHostFixtures: Bool = false, fixtureTree: String? = nil) throws
        -> [Scenario]
    {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw ScenarioError(file: file, line: nil, key: nil, message: "cannot read the file: \(reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ScenarioError(file: file, line: nil, key: nil, message: "the file is not UTF-8 text")
        }
        return try parse(text: text, file: file, allowHostFixtures: allowHostFixtures, fixtureTree: fixtureTree)
    }

    /// Parses the text of one scenario file; `file` names it in errors and locates relative `fixture`s.
    public static func parse(text: String, file: String, allowHostFixtures: Bool = false,
                             fixtureTree: String? = nil) throws -> [Scenario] {
        try YAMLLimits.checkText(text, file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw syntaxError(error, file: file)
        } catch {
            throw ScenarioError(file: file, line: nil, key: nil, message: "cannot parse: \(error)")
        }
        if let root { try YAMLLimits.checkExpansion(root, file: file) }
        guard let root, root.scalar?.resolvedTagName != .null else {
            throw ScenarioError(
                file: file, line: nil, key: nil, message: "the file holds no scenario",
                hint: "a scenario needs at least `name:` and `run:`")
        }
        let directory = URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent().path
        let reader = ScenarioNodeReader(file: file)
        let scenarios = ScenarioParser(reader: reader, directory: directory, allowHostFixtures: allowHostFixtures,
                                       fixtureTree: fixtureTree)
            .scenarios(from: root)
        let errors = reader.errors + (reader.errors.isEmpty ? duplicateNames(in: scenarios) : [])
        try ScenarioLoadErrors.throwIfAny(errors.sorted { ($0.line ?? 0) < ($1.line ?? 0) })
        return scenarios
    }

    // MARK: Helpers

    private static func scenarioFiles(at path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ScenarioError(file: path, line: nil, key: nil, message: "no such file or directory")
        }
        guard isDirectory.boolValue else { return [path] }
        let root = URL(fileURLWithPath: path)
        guard
            let walker = FileManager.default.enumerator(
                at: root, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles])
        else {
            throw ScenarioError(file: path, line: nil, key: nil, message: "cannot list the directory")
        }
        var found: [String] = []
        for case let url as URL in walker where scenarioExtensions.contains(url.pathExtension.lowercased()) {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            // Seccomp profiles the scenarios reference (scenarios/profiles/docker/*.json) live beside them.
            if isSeccompProfile(url) { continue }
            // Keep the user's spelling of the directory so that error messages show paths they recognise.
            let relative = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count))
            found.append((path.hasSuffix("/") ? String(path.dropLast()) : path) + relative)
        }
        guard !found.isEmpty else {
            throw ScenarioError(
                file: path, line: nil, key: nil, message: "no scenario files in this directory",
                hint: "scenario files end in .yaml, .yml or .json")
        }
        return found.sorted()
    }

    /// A JSON file whose top level has `defaultAction` and no `run` is a seccomp profile, not a scenario.
    static func isSeccompProfile(_ url: URL) -> Bool {
        guard url.pathExtension.lowercased() == "json", let data = try? Data(contentsOf: url),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return false }
        return object["defaultAction"] != nil && object["run"] == nil
    }

    /// Later scenarios with an earlier one's name, each reported at its own `name:` line.
    private static func duplicateNames(in scenarios: [Scenario]) -> [ScenarioError] {
        var first: [String: SourceLocation] = [:]
        var errors: [ScenarioError] = []
        for scenario in scenarios {
            if let earlier = first[scenario.name] {
                errors.append(
                    ScenarioError(
                        file: scenario.location.file, line: scenario.location.line, key: "name",
                        message: "scenario name `\(scenario.name)` is already used at \(earlier)",
                        hint: "names identify results, so each must be unique in a run"))
            } else {
                first[scenario.name] = scenario.location
            }
        }
        return errors
    }

    /// Malformed YAML keeps the line libyaml reported, so the user is sent to the right place.
    private static func syntaxError(_ error: YamlError, file: String) -> ScenarioError {
        func message(_ problem: String, _ context: YamlError.Context?) -> String {
            guard let context, !context.text.isEmpty else { return "malformed YAML: \(problem)" }
            return "malformed YAML: \(problem) (\(context.text) at line \(context.mark.line))"
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return ScenarioError(
                file: file, line: mark.line, key: nil, message: message(problem, context),
                hint: "check indentation, quoting and brackets on this line and the one above")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.map { "`\($0)`" }.joined(separator: ", ")
            return ScenarioError(
                file: file, line: context.mark.line, key: duplicates.first,
                message: "key \(names) appears more than once in the same mapping",
                hint: "keep one; YAML would otherwise let the last one win silently")
        case .reader(let problem, let offset, _, let yaml):
            let line = offset.map { yaml.utf8.prefix($0).filter { $0 == UInt8(ascii: "\n") }.count + 1 }
            return ScenarioError(file: file, line: line, key: nil, message: "unreadable text: \(problem)")
        default:
            return ScenarioError(file: file, line: nil, key: nil, message: "malformed YAML: \(error)")
        }
    }
}
