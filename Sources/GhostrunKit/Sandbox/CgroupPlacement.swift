import CGhostrun
import Foundation
import Synchronization

/// Where ghostrun makes its cgroup v2 run cgroups, decided from the host's layout.
///
/// systemd owns the cgroup v2 tree it manages; another cgroup manager may only write inside a cgroup systemd
/// delegated to it, a scope or service with `Delegate=yes` (systemd marks those with the `trusted.delegate`
/// xattr since v252). So:
/// - `standalone`: no systemd manages the v2 hierarchy (PID 1 is not systemd, or the hierarchy's root has none of
///   its units): runs go into `<v2>/ghostrun/`. This project's hosts (v2 at /sys/fs/cgroup/unified, no systemd).
/// - `delegated`: ghostrun's own cgroup is delegated to it. ghostrun moves itself into `<own>/supervisor` (a
///   cgroup whose children get controllers may hold no process itself) and makes its runs beside it, `<own>/r…`.
/// - `undelegated`: systemd manages v2 and ghostrun's cgroup is not delegated (a login session, a plain service):
///   the commands that run things re-exec inside `systemd-run --scope -p Delegate=yes` (`CgroupDelegation`).
///   Without that (GHOSTRUN_CGROUP_SCOPE=never, or no systemd-run), runs fall back to `<v2>/ghostrun/`.
public struct CgroupPlacement: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case standalone, delegated, undelegated
    }

    public var kind: Kind
    /// The cgroup run cgroups are made in.
    public var runParent: String
    /// `delegated`: the leaf ghostrun's own processes live in.
    public var supervisorLeaf: String?
    /// ghostrun's own v2 cgroup (a path under the mount), nil when /proc/self/cgroup names none under it.
    public var ownCgroup: String?
    /// Why, in one sentence (doctor, errors).
    public var reason: String

    /// Name of the leaf a delegated ghostrun moves into.
    public static let supervisorLeafName = "supervisor"

    /// The cgroup whose `cgroup.controllers` say which controllers runs can get: the hierarchy's root for runs under
    /// `<v2>/ghostrun`, the delegated cgroup itself otherwise.
    public var controllerSource: String {
        kind == .delegated ? runParent : (runParent as NSString).deletingLastPathComponent
    }

    /// Decides from recorded host data (pure: unit-tested on the mountinfo and /proc/self/cgroup of each layout).
    /// nil when no cgroup2 is mounted.
    public static func decide(_ facts: CgroupHostFacts) -> CgroupPlacement? {
        guard let mount = v2Mount(mountinfo: facts.mountinfo) else { return nil }
        let standaloneParent = mount.point + "/" + CgroupParentName.name
        let own = ownCgroup(selfCgroup: facts.selfCgroup, mountRoot: mount.root, mountPoint: mount.point)
        let pid1 = facts.pid1Command.trimmingCharacters(in: .whitespacesAndNewlines)
        let systemdUnits = facts.v2RootEntries.filter { ["init.scope", "system.slice", "user.slice"].contains($0) }
        guard pid1 == "systemd", !systemdUnits.isEmpty else {
            let why = pid1 == "systemd"
                ? "systemd is PID 1 but does not manage the v2 hierarchy at \(mount.point) (no init.scope or slices)"
                : "no systemd manages the v2 hierarchy at \(mount.point) (PID 1 is \(pid1.isEmpty ? "unknown" : pid1))"
            return CgroupPlacement(
                kind: .standalone, runParent: standaloneParent, supervisorLeaf: nil, ownCgroup: own,
                reason: why + "; runs go into \(standaloneParent)")
        }
        guard let own, own != mount.point else {
            return CgroupPlacement(
                kind: .undelegated, runParent: standaloneParent, supervisorLeaf: nil, ownCgroup: own,
                reason: "systemd manages cgroup v2 and ghostrun runs in \(own ?? "an unknown cgroup"), not in a "
                    + "cgroup delegated to it")
        }
        // A ghostrun that moved into its leaf (or its reaper, a child that started there) still owns the cgroup above.
        let base = (own as NSString).lastPathComponent == supervisorLeafName
            ? (own as NSString).deletingLastPathComponent : own
        let marked = facts.delegateMarks(base)
        if marked || facts.startedByDelegationReexec {
            let how = marked ? "marked by systemd with the delegate xattr" : "the scope ghostrun re-executed in"
            return CgroupPlacement(
                kind: .delegated, runParent: base, supervisorLeaf: base + "/" + supervisorLeafName, ownCgroup: own,
                reason: "ghostrun's cgroup \(base) is delegated to it (\(how)); ghostrun moves into "
                    + "\(supervisorLeafName)/ and makes runs beside it")
        }
        return CgroupPlacement(
            kind: .undelegated, runParent: standaloneParent, supervisorLeaf: nil, ownCgroup: own,
            reason: "systemd manages cgroup v2 and ghostrun's cgroup \(own) is not delegated (no Delegate=yes)")
    }

    /// The cgroup2 mount: its mount point and the hierarchy path it shows (field 4; "/" unless bind-mounted).
    static func v2Mount(mountinfo: String) -> (point: String, root: String)? {
        for line in mountinfo.split(separator: "\n") {
            guard let dash = line.range(of: " - ") else { continue }
            let before = line[..<dash.lowerBound].split(separator: " ")
            let after = line[dash.upperBound...].split(separator: " ")
            guard before.count >= 5, after.first == "cgroup2" else { continue }
            return (CgroupHierarchies.unescapeMountPath(String(before[4])),
                    CgroupHierarchies.unescapeMountPath(String(before[3])))
        }
        return nil
    }

    /// The `0::PATH` line of /proc/self/cgroup as a path under the mount point.
    static func ownCgroup(selfCgroup: String, mountRoot: String, mountPoint: String) -> String? {
        guard let line = selfCgroup.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        var path = String(line.dropFirst(3))
        if path.hasSuffix(" (deleted)") { return nil }
        if mountRoot != "/" {
            guard path == mountRoot || path.hasPrefix(mountRoot + "/") else { return nil }
            path = String(path.dropFirst(mountRoot.count))
        }
        if path.isEmpty || path == "/" { return mountPoint }
        return mountPoint + path
    }

    /// This process's placement (read once; moving into the supervisor leaf does not change it).
    public static let current: CgroupPlacement? = decide(.current())

    private static let preparation = Mutex<Result<Void, HarnessError>?>(nil)

    /// `delegated`: moves this process (all its threads) into the supervisor leaf, made if missing, unless it
    /// is there already, so the delegated cgroup holds no process and its children can get controllers. Runs once;
    /// a later call returns the first one's outcome. Nothing to do for the other kinds.
    public func prepare() throws {
        guard kind == .delegated, let leaf = supervisorLeaf else { return }
        let outcome = CgroupPlacement.preparation.withLock { done -> Result<Void, HarnessError> in
            if let done { return done }
            let result: Result<Void, HarnessError>
            do {
                let mine = CgroupPlacement.ownCgroup(
                    selfCgroup: (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "",
                    mountRoot: "/", mountPoint: "")
                if mine.map({ ($0 as NSString).lastPathComponent }) != CgroupPlacement.supervisorLeafName {
                    switch System.mkdir(leaf) {
                    case .success, .failure(.exists): break
                    case .failure(let error):
                        throw HarnessError(step: "cgroup", syscall: "mkdir", path: leaf, errno: error,
                                           "cannot create the supervisor leaf \(leaf)")
                    }
                    try RunCgroup.write(String(getpid()), to: leaf + "/cgroup.procs")
                }
                result = .success(())
            } catch let error as HarnessError {
                result = .failure(error)
            } catch {
                result = .failure(HarnessError(step: "cgroup", "\(error)"))
            }
            done = result
            return result
        }
        try outcome.get()
    }
}

/// What `CgroupPlacement.decide` reads from the host, as values so tests can give recorded ones.
public struct CgroupHostFacts: Sendable {
    /// /proc/self/mountinfo.
    public var mountinfo: String
    /// /proc/self/cgroup.
    public var selfCgroup: String
    /// /proc/1/comm.
    public var pid1Command: String
    /// Names in the v2 hierarchy's root directory.
    public var v2RootEntries: [String]
    /// Whether systemd marked the cgroup at this path as delegated (`trusted.delegate` or `user.delegate` is "1").
    public var delegateMarks: @Sendable (String) -> Bool
    /// This process is the one `CgroupDelegation` re-executed in a `Delegate=yes` scope (systemd < 252 sets no
    /// xattr).
    public var startedByDelegationReexec: Bool

    public init(mountinfo: String, selfCgroup: String, pid1Command: String, v2RootEntries: [String],
                delegateMarks: @escaping @Sendable (String) -> Bool = { _ in false },
                startedByDelegationReexec: Bool = false) {
        self.mountinfo = mountinfo
        self.selfCgroup = selfCgroup
        self.pid1Command = pid1Command
        self.v2RootEntries = v2RootEntries
        self.delegateMarks = delegateMarks
        self.startedByDelegationReexec = startedByDelegationReexec
    }

    public static func current() -> CgroupHostFacts {
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        let mountinfo = read("/proc/self/mountinfo")
        let entries = CgroupPlacement.v2Mount(mountinfo: mountinfo).flatMap {
            try? FileManager.default.contentsOfDirectory(atPath: $0.point)
        } ?? []
        let marker = ProcessInfo.processInfo.environment[CgroupDelegation.markerVariable]
        return CgroupHostFacts(
            mountinfo: mountinfo, selfCgroup: read("/proc/self/cgroup"), pid1Command: read("/proc/1/comm"),
            v2RootEntries: entries,
            delegateMarks: { path in
                ["trusted.delegate", "user.delegate"].contains { CgroupXattr.get(path, name: $0) == "1" }
            },
            startedByDelegationReexec: marker == String(getpid()))
    }
}

/// Extended attributes on cgroup directories: systemd's delegation mark, and ghostrun's record of the controllers
/// it enabled outside its own subtree (so whoever removes the last run can undo it, in any ghostrun process).
enum CgroupXattr {
    static func get(_ path: String, name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let size = ghostrun_getxattr(path, name, &buffer, UInt(buffer.count))
        guard size >= 0 else { return nil }
        return String(decoding: buffer.prefix(size), as: UTF8.self)
    }

    @discardableResult
    static func set(_ path: String, name: String, value: String) -> Bool {
        let bytes = Array(value.utf8)
        return ghostrun_setxattr(path, name, bytes, UInt(bytes.count)) == 0
    }
}

/// `undelegated`: re-executes this ghostrun inside a transient systemd scope with `Delegate=yes`, so it works in a
/// cgroup systemd handed over instead of beside systemd's slices.
///
/// `systemd-run --scope` registers the scope with this very process and then execs the command in it: the pid,
/// the terminal, the environment, the working directory and the exit status stay ghostrun's. `--collect` lets
/// systemd remove the scope and everything under it once its last process (ghostrun's reaper) exits.
public enum CgroupDelegation {
    /// Set to the pid before the re-exec; the new image (same pid) reads it as "this scope is mine".
    public static let markerVariable = "GHOSTRUN_DELEGATED_SCOPE"
    /// `never` keeps ghostrun where it was started (runs then go into `<v2>/ghostrun/`, beside systemd's units).
    public static let choiceVariable = "GHOSTRUN_CGROUP_SCOPE"

    /// What the re-exec would be on this host: the `systemd-run` path, or why there is none.
    public static func plan(_ placement: CgroupPlacement?, environment: [String: String]) -> Result<String, HostUnsupported>
    {
        guard let placement, placement.kind == .undelegated else {
            return .failure(HostUnsupported(reason: "not needed: \(placement?.reason ?? "no cgroup v2")"))
        }
        if environment[choiceVariable] == "never" {
            return .failure(HostUnsupported(reason: "\(choiceVariable)=never"))
        }
        if environment[markerVariable] != nil {
            return .failure(HostUnsupported(reason: "already re-executed once and still not delegated"))
        }
        guard geteuid() == 0 else { return .failure(HostUnsupported(reason: "not root")) }
        let candidates = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { $0 + "/systemd-run" }
            + ["/usr/bin/systemd-run", "/bin/systemd-run"]
        guard let systemdRun = candidates.first(where: { access($0, X_OK) == 0 }) else {
            return .failure(HostUnsupported(reason: "no systemd-run on PATH"))
        }
        // systemd-run talks to PID 1 over its private socket as root; without it, it would fail after the exec.
        guard access("/run/systemd/private", F_OK) == 0 else {
            return .failure(HostUnsupported(reason: "systemd's socket /run/systemd/private is missing"))
        }
        return .success(systemdRun)
    }

    /// The arguments of the re-exec.
    public static func arguments(systemdRun: String, executable: String, arguments: [String]) -> [String] {
        [systemdRun, "--scope", "--quiet", "--collect", "-p", "Delegate=yes",
         "--description=ghostrun " + arguments.prefix(3).joined(separator: " "), "--", executable] + arguments
    }

    /// Re-executes inside a delegated scope when the placement needs one; returns (with a note on stderr) when it
    /// cannot, and runs then go into `<v2>/ghostrun/` as on a host without systemd.
    public static func enterDelegatedScopeIfNeeded(executable: String, arguments: [String]) {
        let environment = ProcessInfo.processInfo.environment
        let systemdRun: String
        switch plan(CgroupPlacement.current, environment: environment) {
        case .success(let path): systemdRun = path
        case .failure(let why):
            if CgroupPlacement.current?.kind == .undelegated, environment[choiceVariable] != "never" {
                FileHandle.standardError.write(Data(
                    ("ghostrun: \(CgroupPlacement.current!.reason); cannot re-exec in a delegated scope (\(why)): "
                        + "runs go into \(CgroupPlacement.current!.runParent), beside systemd's units\n").utf8))
            }
            return
        }
        setenv(markerVariable, String(getpid()), 1)
        let argv = CgroupDelegation.arguments(systemdRun: systemdRun, executable: executable, arguments: arguments)
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        execv(systemdRun, &cArguments)
        let error = Errno.current
        cArguments.forEach { free($0) }
        unsetenv(markerVariable)
        FileHandle.standardError.write(Data(
            "ghostrun: cannot exec \(systemdRun): \(error); runs go into \(CgroupPlacement.current!.runParent)\n".utf8))
    }
}
