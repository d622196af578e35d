import CGhostrun
import Foundation

/// The file-system step before spawn: the fixture and `files:` into `$WORK`, `$WORK` handed to `sandbox.user`,
/// then `paths:` in order, as root. Runs before `RunPlan.resolve`, which may read what it wrote (`go.mod`).
///
/// Every path is resolved beneath `$WORK` by descriptor (`ConfinedDirectory`): relative paths are relative to
/// `$WORK`, and no symlink (from a fixture or an earlier step) can lead a root-run write, chmod or chown out of it.
public enum WorkPreparation {
    public static func apply(_ scenario: Scenario, toolchain: Toolchain, to work: WorkDirectory) throws {
        let substitutions = Substitutions(work: work, scenario: scenario, toolchain: toolchain)
        let directory = try ConfinedDirectory(path: work.work)
        var restricted: Set<String> = []
        if let fixture = scenario.fixture {
            let source = fixture.hasPrefix("/") ? fixture : scenario.scenarioDirectory + "/" + fixture
            restricted = try FixtureTree.copy(from: source, into: directory)
        }
        for (path, content) in scenario.files {
            try directory.writeFile(
                ConfinedDirectory.relative(path, work: work.work),
                Array(substitutions.expand(content).utf8))
        }
        if let user = scenario.sandbox.user {
            try chown(directory, uid: user.uid, gid: user.gid, except: restricted)
        }
        for step in scenario.paths {
            let path = ConfinedDirectory.relative(substitutions.expand(step.path), work: work.work)
            if step.mkdir { System.close(try directory.openDirectory(path, create: true)) }
            if let content = step.content { try directory.writeFile(path, Array(substitutions.expand(content).utf8)) }
            guard step.owner != nil || step.mode != nil else { continue }
            let fd = try directory.openForAttributes(path)
            defer { System.close(fd) }
            if let owner = step.owner {
                try nothingOrErrno { fchown(fd, owner.uid, owner.gid) }.orThrow(
                    step: "work preparation", syscall: "fchown", path: work.work + "/" + path, "paths: owner")
            }
            if let mode = step.mode {
                try nothingOrErrno { fchmod(fd, mode_t(mode)) }.orThrow(
                    step: "work preparation", syscall: "fchmod", path: work.work + "/" + path, "paths: mode")
            }
        }
        try checkWorkdir(scenario.workdir, substitutions: substitutions, in: directory)
    }

    /// The go command starts in `workdir`: it must not lead out of `$WORK` through a symlink. A missing workdir is
    /// left to the spawn, which reports it as the run's own failure, as before.
    static func checkWorkdir(_ workdir: String, substitutions: Substitutions, in directory: borrowing ConfinedDirectory)
        throws
    {
        let relative = ConfinedDirectory.relative(substitutions.expand(workdir), work: directory.path)
        switch directory.open(relative, GHOSTRUN_O_PATH | O_DIRECTORY) {
        case .success(let fd): System.close(fd)
        case .failure(let error) where error.rawValue == EXDEV || error.rawValue == ELOOP:
            throw ConfinedDirectory.error(error, "openat2", relative, workPath: directory.path)
        case .failure: break
        }
    }

    /// Hands `$WORK` to `sandbox.user` (chown -R without following links), except fixture copies of files that the
    /// host kept from other users: copying must not give the uid a file it could not read on the host.
    static func chown(_ directory: borrowing ConfinedDirectory, uid: UInt32, gid: UInt32, except: Set<String>)
        throws
    {
        var relatives = ["."]
        if let enumerator = FileManager.default.enumerator(atPath: directory.path) {
            for case let relative as String in enumerator where !except.contains(relative) {
                relatives.append(relative)
            }
        }
        for relative in relatives {
            guard case .success(let fd) = directory.open(relative, GHOSTRUN_O_PATH | O_NOFOLLOW) else { continue }
            defer { System.close(fd) }
            try nothingOrErrno { fchownat(fd, "", uid, gid, GHOSTRUN_AT_EMPTY_PATH) }.orThrow(
                step: "work preparation", syscall: "fchownat", path: directory.path + "/" + relative,
                "cannot hand $WORK to sandbox.user")
        }
    }
}
