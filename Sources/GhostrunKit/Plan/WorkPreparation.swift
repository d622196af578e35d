import Foundation

/// The file-system step before spawn: the fixture and `files:` into `$WORK`, `$WORK` handed to `sandbox.user`,
/// then `paths:` in order, as root. Runs before `RunPlan.resolve`, which may read what it wrote (`go.mod`).
public enum WorkPreparation {
    public static func apply(_ scenario: Scenario, toolchain: Toolchain, to work: WorkDirectory) throws {
        let substitutions = Substitutions(work: work, scenario: scenario, toolchain: toolchain)
        if let fixture = scenario.fixture {
            let source = fixture.hasPrefix("/") ? fixture : scenario.scenarioDirectory + "/" + fixture
            try copyDirectory(from: source, to: work.work)
        }
        for (path, content) in scenario.files {
            let full = work.work + "/" + path
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(substitutions.expand(content).utf8).write(to: URL(fileURLWithPath: full))
        }
        if let user = scenario.sandbox.user { work.chown(uid: user.uid, gid: user.gid) }
        for step in scenario.paths {
            let path = substitutions.expand(step.path)
            if step.mkdir { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
            if let content = step.content {
                try FileManager.default.createDirectory(
                    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(substitutions.expand(content).utf8).write(to: URL(fileURLWithPath: path))
            }
            if let owner = step.owner, lchown(path, owner.uid, owner.gid) != 0 {
                throw RunSetupError(description: "paths: chown \(path): \(Errno.current)")
            }
            if let mode = step.mode, chmod(path, mode_t(mode)) != 0 {
                throw RunSetupError(description: "paths: chmod \(path): \(Errno.current)")
            }
        }
    }
}
