import Foundation
import Synchronization

/// Where the host's cgroup hierarchies are, read from /proc/self/mountinfo (never hard-coded:
/// this project's machines mount v2 at /sys/fs/cgroup/unified, most hosts at /sys/fs/cgroup).
public struct CgroupHierarchies: Sendable, Equatable {
    /// Mount point of the cgroup2 hierarchy.
    public var v2: String?
    /// cgroup v1 controller name → mount point (freezer, pids, memory, ...).
    public var v1: [String: String]
    /// Where v2 run cgroups go (`discover()` decides it from the host; nil: `<v2>/ghostrun`, as on a host no
    /// systemd manages).
    public var placement: CgroupPlacement?

    public init(v2: String?, v1: [String: String], placement: CgroupPlacement? = nil) {
        self.v2 = v2
        self.v1 = v1
        self.placement = placement
    }

    /// The cgroup v2 run cgroups are made in.
    public var v2RunParent: String? {
        guard let v2 else { return nil }
        return placement?.runParent ?? v2 + "/" + CgroupParentName.name
    }

    /// The cgroup whose `cgroup.controllers` lists what runs can get from v2: the root, or the delegated cgroup.
    public var v2ControllerSource: String? {
        guard let v2 else { return nil }
        return placement?.controllerSource ?? v2
    }

    /// Parses mountinfo text: field 5 is the mount point; after " - " come fstype, source, super options.
    public static func parse(mountinfo: String) -> CgroupHierarchies {
        var v2: String?
        var v1: [String: String] = [:]
        for line in mountinfo.split(separator: "\n") {
            guard let dash = line.range(of: " - ") else { continue }
            let before = line[..<dash.lowerBound].split(separator: " ")
            let after = line[dash.upperBound...].split(separator: " ")
            guard before.count >= 5, after.count >= 3 else { continue }
            let mountPoint = unescapeMountPath(String(before[4]))
            switch after[0] {
            case "cgroup2":
                if v2 == nil { v2 = mountPoint }
            case "cgroup":
                for option in after[2].split(separator: ",") {
                    let name = String(option)
                    if ["freezer", "pids", "memory", "cpu", "cpuacct", "cpuset", "blkio", "devices"].contains(name) {
                        if v1[name] == nil { v1[name] = mountPoint }
                    }
                }
            default: continue
            }
        }
        return CgroupHierarchies(v2: v2, v1: v1)
    }

    static func unescapeMountPath(_ path: String) -> String {
        path.replacingOccurrences(of: "\\040", with: " ").replacingOccurrences(of: "\\011", with: "\t")
    }

    public static func discover() -> CgroupHierarchies {
        var hierarchies = parse(mountinfo: (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
        if let placement = CgroupPlacement.current, placement.runParent.hasPrefix(hierarchies.v2 ?? "\0") {
            hierarchies.placement = placement
        }
        return hierarchies
    }

    /// Controllers v2 offers ghostrun's runs (`cgroup.controllers` of the root, or of the delegated cgroup).
    public var v2Controllers: Set<String> {
        guard let source = v2ControllerSource,
            let text = try? String(contentsOfFile: source + "/cgroup.controllers", encoding: .utf8)
        else {
            return []
        }
        return Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }

    public var v2HasFreeze: Bool {
        guard let v2 else { return false }
        // cgroup.freeze exists on non-root cgroups only; look for the feature through any child.
        return FileManager.default.fileExists(atPath: v2 + "/" + CgroupParentName.name + "/cgroup.freeze")
            || CgroupHierarchies.kernelAtLeast(5, 2)
    }

    public var v2HasKill: Bool { v2 != nil && CgroupHierarchies.kernelAtLeast(5, 14) }

    static func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return false }
        return (parts[0], parts[1]) >= (major, minor)
    }

    /// One line for reports: "v2 at /sys/fs/cgroup/unified; v1 freezer, memory, pids".
    public var summary: String {
        var parts: [String] = []
        if let v2 { parts.append("v2 at \(v2)") }
        let v1Names = ["freezer", "pids", "memory"].filter { v1[$0] != nil }
        if !v1Names.isEmpty { parts.append("v1 " + v1Names.joined(separator: ", ")) }
        return parts.isEmpty ? "none" : parts.joined(separator: "; ")
    }
}

public enum CgroupParentName {
    /// Every run's cgroup lives under a child of each hierarchy's root with this name.
    public static let name = "ghostrun"
}

/// The host cannot give what the scenario asks for; the run is `skipped` with this reason.
public struct HostUnsupported: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// One run's cgroups: a v2 cgroup (membership, freeze, kill, events) plus v1 cgroups for the controllers
/// v2 does not offer on this host.
///
/// The paths and controllers are fixed at creation. The open `cgroup.procs` descriptors the child joins through
/// belong to this object alone: they are handed out only inside `withJoinDescriptors`, under the same lock
/// `destroy()` takes them with, so they are closed exactly once even when the signal teardown and the run
/// destroy the cgroup at the same time, and never while a spawn is using them.
public final class RunCgroup: Sendable {
    public let name: String
    public let v2Path: String?
    /// Controller → path of this run's cgroup in that v1 hierarchy.
    public let v1Paths: [String: String]
    public let pidsVia: String?
    public let memoryVia: String?
    public let freezeVia: String?
    /// "v2" (`cpu.max`) or "v1" (`cpu.cfs_quota_us`) when `cpu_max` is set.
    public let cpuVia: String?
    /// Open `cgroup.procs` descriptors; nil once `destroy()` closed them.
    private let procsFds: Mutex<[Int32]?>

    /// Creates the cgroups and applies limits. Throws `HostUnsupported` when a needed controller is missing.
    public init(name: String, hierarchies h: CgroupHierarchies, request: CgroupRequest) throws {
        self.name = name
        let controllers = h.v2Controllers
        func parent(_ root: String) throws -> String {
            let parent = root + "/" + CgroupParentName.name
            switch System.mkdir(parent) {
            case .success, .failure(.exists): return parent
            case .failure(let error):
                throw HarnessError(
                    step: "cgroup", syscall: "mkdir", path: parent, errno: error, "cannot create \(parent)")
            }
        }
        // v2: enable the controllers we need in the subtree, when the root offers them.
        var wantV2: [String] = []
        if request.pidsMax != nil && controllers.contains("pids") { wantV2.append("pids") }
        if request.memoryMax != nil && controllers.contains("memory") { wantV2.append("memory") }
        if request.cpuMax != nil && controllers.contains("cpu") { wantV2.append("cpu") }
        var v2Path: String?
        if let root = h.v2, let runParent = h.v2RunParent {
            // Delegated: everything below ghostrun's own cgroup is its own (once it left that cgroup for its leaf).
            // Otherwise only <root>/ghostrun is: a controller the root's children lack is enabled there, recorded
            // and disabled again when the last run is gone (`removeStandaloneParent`).
            let delegated = h.placement?.kind == .delegated
            if delegated { try h.placement!.prepare() }
            let path = runParent + "/" + name
            try CgroupLock.holding(delegated ? runParent : root) {
                if !delegated { _ = try parent(root) }
                for controller in wantV2 {
                    if !delegated { RunCgroup.enableInRoot(controller, root: root, parent: runParent) }
                    try? RunCgroup.write("+\(controller)", to: runParent + "/cgroup.subtree_control")
                }
                try RunCgroup.makeRunDirectory(path)
            }
            v2Path = path
        }
        let v2Enabled = Set(
            (v2Path.flatMap { try? String(contentsOfFile: $0 + "/cgroup.controllers", encoding: .utf8) } ?? "")
                .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))

        var v1Paths: [String: String] = [:]
        func v1Cgroup(_ controller: String) throws -> String? {
            guard let root = h.v1[controller] else { return nil }
            let path = try parent(root) + "/" + name
            try RunCgroup.makeRunDirectory(path)
            v1Paths[controller] = path
            return path
        }

        var pidsVia: String?, memoryVia: String?, freezeVia: String?, cpuVia: String?
        var fds: [Int32] = []
        do {
            if let pidsMax = request.pidsMax {
                if let v2Path, v2Enabled.contains("pids") {
                    try RunCgroup.write(String(pidsMax), to: v2Path + "/pids.max")
                    pidsVia = "v2"
                } else if let path = try v1Cgroup("pids") {
                    try RunCgroup.write(String(pidsMax), to: path + "/pids.max")
                    pidsVia = "v1"
                } else {
                    throw HostUnsupported(reason: "cgroup.pids_max needs the pids controller (neither cgroup v2 nor v1 offers it)")
                }
            }
            if let quota = request.cpuQuotaMicroseconds {
                let period = CgroupRequest.cpuPeriodMicroseconds
                if let v2Path, v2Enabled.contains("cpu") {
                    try RunCgroup.write("\(quota) \(period)", to: v2Path + "/cpu.max")
                    cpuVia = "v2"
                } else if let path = try v1Cgroup("cpu") {
                    // The period first: the kernel checks the quota against it.
                    try RunCgroup.write(String(period), to: path + "/cpu.cfs_period_us")
                    try RunCgroup.write(String(quota), to: path + "/cpu.cfs_quota_us")
                    cpuVia = "v1"
                } else {
                    throw HostUnsupported(
                        reason: "cgroup.cpu_max needs the cpu controller (neither cgroup v2 nor v1 offers it)")
                }
            }
            if let memoryMax = request.memoryMax {
                if let v2Path, v2Enabled.contains("memory") {
                    try RunCgroup.write(String(memoryMax), to: v2Path + "/memory.max")
                    try? RunCgroup.write("0", to: v2Path + "/memory.swap.max")
                    memoryVia = "v2"
                } else if let path = try v1Cgroup("memory") {
                    try RunCgroup.write(String(memoryMax), to: path + "/memory.limit_in_bytes")
                    try? RunCgroup.write(String(memoryMax), to: path + "/memory.memsw.limit_in_bytes")
                    memoryVia = "v1"
                } else {
                    throw HostUnsupported(reason: "cgroup.memory_max needs the memory controller (neither cgroup v2 nor v1 offers it)")
                }
            }
            if !request.freeze.isEmpty {
                if let v2Path, FileManager.default.fileExists(atPath: v2Path + "/cgroup.freeze") {
                    freezeVia = "v2"
                } else if try v1Cgroup("freezer") != nil {
                    freezeVia = "v1"
                } else {
                    throw HostUnsupported(reason: "cgroup.freeze needs cgroup v2's cgroup.freeze or the v1 freezer")
                }
            }
            if v2Path == nil && v1Paths.isEmpty {
                // Without any cgroup the run's processes could not be found or killed as a group.
                if let path = try v1Cgroup("pids") ?? v1Cgroup("freezer") ?? v1Cgroup("memory") {
                    _ = path
                } else {
                    throw HostUnsupported(reason: "no cgroup hierarchy is mounted (checked /proc/self/mountinfo)")
                }
            }
            for path in RunCgroup.allPaths(v2Path: v2Path, v1Paths: v1Paths) {
                let procs = path + "/cgroup.procs"
                fds.append(
                    try System.open(procs, O_WRONLY).orThrow(
                        step: "cgroup", syscall: "open", path: procs, "cannot open \(procs)"))
            }
        } catch {
            for fd in fds { System.close(fd) }
            RunCgroup.destroy(paths: RunCgroup.allPaths(v2Path: v2Path, v1Paths: v1Paths))
            throw error
        }
        self.v2Path = v2Path
        self.v1Paths = v1Paths
        self.pidsVia = pidsVia
        self.memoryVia = memoryVia
        self.freezeVia = freezeVia
        self.cpuVia = cpuVia
        self.procsFds = Mutex(fds)
    }

    /// The xattr on `<root>/ghostrun` that lists the controllers ghostrun enabled in the root's subtree_control.
    static let enabledControllersXattr = "trusted.ghostrun.enabled"
    /// The same record, for a cgroup file system that refused the xattr: parent path → controllers.
    private static let enabledInThisProcess = Mutex<[String: Set<String>]>([:])

    /// Enables `controller` in the root's `cgroup.subtree_control` when it is not enabled there yet, and records
    /// that ghostrun did, on `parent` (`<root>/ghostrun`): the root's setting is the host's, not ghostrun's.
    /// Called with the root's `CgroupLock` held.
    static func enableInRoot(_ controller: String, root: String, parent: String) {
        let control = root + "/cgroup.subtree_control"
        let enabled = ((try? read(control)) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard !enabled.contains(Substring(controller)) else { return }
        guard (try? write("+\(controller)", to: control)) != nil else { return }
        let recorded = enabledControllers(parent: parent).union([controller])
        if !CgroupXattr.set(parent, name: enabledControllersXattr, value: recorded.sorted().joined(separator: ",")) {
            _ = enabledInThisProcess.withLock { $0[parent, default: []].insert(controller) }
        }
    }

    /// Controllers ghostrun enabled in the root for `parent`'s sake.
    static func enabledControllers(parent: String) -> Set<String> {
        let recorded = CgroupXattr.get(parent, name: enabledControllersXattr).map {
            Set($0.split(separator: ",").map(String.init))
        } ?? []
        return recorded.union(enabledInThisProcess.withLock { $0[parent] ?? [] })
    }

    /// Removes `<root>/ghostrun` once it holds no run, and disables in the root what ghostrun enabled there, so
    /// the host's `cgroup.subtree_control` is as it was. Under the root's lock: no other ghostrun makes a run
    /// in between.
    static func removeStandaloneParent(_ parent: String) {
        let root = (parent as NSString).deletingLastPathComponent
        CgroupLock.holding(root) {
            let enabled = enabledControllers(parent: parent)
            guard case .success = System.rmdir(parent) else { return }
            enabledInThisProcess.withLock { _ = $0.removeValue(forKey: parent) }
            for controller in enabled.sorted() {
                // EBUSY: another of the root's children enabled it for its own children since; it stays theirs.
                try? write("-\(controller)", to: root + "/cgroup.subtree_control")
            }
        }
    }

    /// mkdir of a run's cgroup; when another run's teardown removed the empty parent in between, makes it again.
    static func makeRunDirectory(_ path: String) throws {
        var made = System.mkdir(path)
        if case .failure(.noSuchFile) = made {
            _ = System.mkdir((path as NSString).deletingLastPathComponent)
            made = System.mkdir(path)
        }
        try made.orThrow(step: "cgroup", syscall: "mkdir", path: path, "cannot create \(path)")
    }

    /// Runs `body` with the open `cgroup.procs` descriptors the child writes "0" to before exec (spawn inside
    /// `body`). `destroy()` waits for `body` to return, so the descriptors stay open and are not reused by another
    /// open while the child is being started. Throws when the cgroup was destroyed already: a child started
    /// without them would run outside its cgroup.
    public func withJoinDescriptors<Result>(_ body: ([Int32]) throws -> Result) throws -> Result {
        try procsFds.withLock { fds -> Result in
            guard let fds else {
                throw HarnessError(step: "cgroup", "the run's cgroup \(name) was torn down before its process started")
            }
            return try body(fds)
        }
    }

    /// The open `cgroup.procs` descriptors (empty once destroyed).
    ///
    /// Prefer `withJoinDescriptors`: a concurrent `destroy()` may close these numbers right after this returns.
    public var joinDescriptors: [Int32] { procsFds.withLock { $0 ?? [] } }

    /// The cgroup used to list and kill the run's processes.
    public var primaryPath: String { v2Path ?? v1Paths.values.sorted().first ?? "" }
    public var allPaths: [String] { RunCgroup.allPaths(v2Path: v2Path, v1Paths: v1Paths) }

    static func allPaths(v2Path: String?, v1Paths: [String: String]) -> [String] {
        [v2Path].compactMap { $0 } + v1Paths.keys.sorted().compactMap { v1Paths[$0] }
    }

    public func pids() -> [Int32] {
        guard let text = try? RunCgroup.read(primaryPath + "/cgroup.procs") else { return [] }
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    public func freeze() throws {
        switch freezeVia {
        case "v2": try RunCgroup.write("1", to: v2Path! + "/cgroup.freeze")
        case "v1": try RunCgroup.write("FROZEN", to: v1Paths["freezer"]! + "/freezer.state")
        default: throw HarnessError(step: "cgroup", "no freezer for this run")
        }
    }

    public func thaw() throws {
        switch freezeVia {
        case "v2": try RunCgroup.write("0", to: v2Path! + "/cgroup.freeze")
        case "v1": try RunCgroup.write("THAWED", to: v1Paths["freezer"]! + "/freezer.state")
        default: break
        }
    }

    /// Whether the kernel reports the cgroup as frozen right now (cgroup.events `frozen 1`, or v1 FROZEN).
    public func isFrozen() -> Bool {
        if freezeVia == "v1", let path = v1Paths["freezer"] {
            return (try? RunCgroup.read(path + "/freezer.state"))?.hasPrefix("FROZEN") ?? false
        }
        guard let v2Path, let events = try? RunCgroup.read(v2Path + "/cgroup.events") else { return false }
        return events.contains("frozen 1")
    }

    /// `pids.events` max counter: how often a fork was refused by pids.max.
    public func pidsMaxHits() -> Int? {
        let path = pidsVia == "v2" ? v2Path : pidsVia == "v1" ? v1Paths["pids"] : nil
        guard let path, let text = try? RunCgroup.read(path + "/pids.events") else { return nil }
        return RunCgroup.counter("max", in: text)
    }

    /// The CPU quota and how much the run was throttled by it (`cpu.stat`), nil without `cpu_max`.
    public func cpuThrottling() -> CPUThrottling? {
        switch cpuVia {
        case "v2":
            guard let v2Path, let max = try? RunCgroup.read(v2Path + "/cpu.max"),
                let stat = try? RunCgroup.read(v2Path + "/cpu.stat")
            else { return nil }
            let fields = max.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            return CPUThrottling(
                via: "v2", quotaMicroseconds: fields.first.flatMap { Int($0) },
                periodMicroseconds: fields.dropFirst().first.flatMap { Int($0) } ?? CgroupRequest.cpuPeriodMicroseconds,
                periods: RunCgroup.counter("nr_periods", in: stat),
                throttledPeriods: RunCgroup.counter("nr_throttled", in: stat),
                throttledMs: RunCgroup.counter("throttled_usec", in: stat).map { $0 / 1000 })
        case "v1":
            guard let path = v1Paths["cpu"], let stat = try? RunCgroup.read(path + "/cpu.stat") else { return nil }
            return CPUThrottling(
                via: "v1", quotaMicroseconds: (try? RunCgroup.read(path + "/cpu.cfs_quota_us")).flatMap {
                    Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
                },
                periodMicroseconds: (try? RunCgroup.read(path + "/cpu.cfs_period_us")).flatMap {
                    Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
                } ?? CgroupRequest.cpuPeriodMicroseconds,
                periods: RunCgroup.counter("nr_periods", in: stat),
                throttledPeriods: RunCgroup.counter("nr_throttled", in: stat),
                throttledMs: RunCgroup.counter("throttled_time", in: stat).map { $0 / 1_000_000 })
        default:
            return nil
        }
    }

    public func oomKills() -> Int? {
        if memoryVia == "v2", let v2Path, let text = try? RunCgroup.read(v2Path + "/memory.events") {
            return RunCgroup.counter("oom_kill", in: text)
        }
        if memoryVia == "v1", let path = v1Paths["memory"], let text = try? RunCgroup.read(path + "/memory.oom_control")
        {
            return RunCgroup.counter("oom_kill", in: text)
        }
        return nil
    }

    static func counter(_ key: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key { return Int(parts[1]) }
        }
        return nil
    }

    /// Thaw, kill every process, wait for the cgroups to empty, remove them. Safe to call twice and from
    /// several threads at once (the signal teardown and the run): the descriptors are taken out under the lock
    /// and closed by the one caller that got them.
    public func destroy() {
        let fds = procsFds.withLock { fds -> [Int32] in
            defer { fds = nil }
            return fds ?? []
        }
        for fd in fds { System.close(fd) }
        RunCgroup.destroy(paths: allPaths)
    }

    /// Teardown by path, also used by the sweep of cgroups that killed runs left behind.
    public static func destroy(paths: [String]) {
        let existing = paths.filter { FileManager.default.fileExists(atPath: $0) }
        guard !existing.isEmpty else { return }
        /// SIGKILL to every process of the cgroups; whether any was left to kill.
        func killAll() -> Bool {
            var remaining = false
            for path in existing {
                if FileManager.default.fileExists(atPath: path + "/cgroup.kill") {
                    try? write("1", to: path + "/cgroup.kill")
                }
                let pids = ((try? read(path + "/cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
                for pid in pids { kill(pid, SIGKILL) }
                if !pids.isEmpty { remaining = true }
            }
            return remaining
        }
        // Kill, then thaw: a frozen task handles the pending SIGKILL before it returns to user space, so a frozen
        // program never runs another instruction (thawing first let `go version` print its line during teardown).
        // cgroup v2 kills frozen tasks anyway; the v1 freezer needs the thaw.
        var remaining = killAll()
        for path in existing {
            if FileManager.default.fileExists(atPath: path + "/cgroup.freeze") { try? write("0", to: path + "/cgroup.freeze") }
            if FileManager.default.fileExists(atPath: path + "/freezer.state") { try? write("THAWED", to: path + "/freezer.state") }
        }
        let deadline = Date().addingTimeInterval(5)
        while remaining && Date() < deadline {
            usleep(1_000)
            remaining = killAll()
        }
        for path in existing {
            var attempts = 0
            while case .failure(.busy) = System.rmdir(path), attempts < 1000 {
                attempts += 1
                usleep(1_000)
            }
            // The `ghostrun` parent goes too once it holds no run; with other runs active rmdir fails and it stays.
            // (A delegated placement's runs sit in ghostrun's own cgroup, which systemd removes with its scope.)
            let parent = (path as NSString).deletingLastPathComponent
            if (parent as NSString).lastPathComponent == CgroupParentName.name { removeStandaloneParent(parent) }
        }
    }

    /// Removes run cgroups whose owning ghostrun process is gone (killed runs), in every hierarchy.
    /// Returns the paths removed.
    @discardableResult
    public static func sweep(hierarchies h: CgroupHierarchies, ownerFilter: ((Int32) -> Bool)? = nil) -> [String] {
        var removed: [String] = []
        let parents = [h.v2RunParent].compactMap { $0 } + h.v1.values.sorted().map { $0 + "/" + CgroupParentName.name }
        var byRun: [String: [String]] = [:]
        for parent in Set(parents) {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { continue }
            for entry in entries {
                guard let owner = RunCgroup.owner(ofRunName: entry) else { continue }
                let ownerGone = ownerFilter?(owner) ?? !ownerAlive(owner, path: parent + "/" + entry)
                if ownerGone { byRun[entry, default: []].append(parent + "/" + entry) }
            }
        }
        for (_, paths) in byRun.sorted(by: { $0.key < $1.key }) {
            destroy(paths: paths)
            removed.append(contentsOf: paths.filter { !FileManager.default.fileExists(atPath: $0) })
        }
        return removed
    }

    /// The owner runs and started before the cgroup was made (its change time, set at creation: the sweep must
    /// not kill a renamed ghostrun's live runs, nor spare a dead one's because its pid was reused).
    static func ownerAlive(_ owner: Int32, path: String) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0 else { return false }
        let made = Double(info.st_ctim.tv_sec) + Double(info.st_ctim.tv_nsec) / 1e9
        return GhostrunProcess.isAlive(owner, startedBy: made)
    }

    /// Run cgroup names are `r<owner pid>-<sequence>-<scenario>`.
    public static func runName(owner: Int32, sequence: Int, scenario: String) -> String {
        let safe = scenario.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" }
        return "r\(owner)-\(sequence)-" + String(safe.prefix(64))
    }

    public static func owner(ofRunName name: String) -> Int32? {
        guard name.hasPrefix("r"), let dash = name.firstIndex(of: "-") else { return nil }
        return Int32(name[name.index(after: name.startIndex)..<dash])
    }

    static func write(_ text: String, to path: String) throws {
        let fd = try System.open(path, O_WRONLY).orThrow(
            step: "cgroup", syscall: "open", path: path, "cannot open \(path)")
        defer { System.close(fd) }
        try System.writeAll(fd, Array(text.utf8)).orThrow(
            step: "cgroup", syscall: "write", path: path, "cannot write \"\(text)\" to \(path)")
    }

    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }
}

/// Whether a ghostrun process still owns its runs. A pid alone proves nothing (pids are reused, and a renamed
/// ghostrun binary has any name), so ownership is the pid plus the process's start time: recorded in a work tree's
/// marker, or for a cgroup bounded by the cgroup's own time (its owner started before it was made).
public enum GhostrunProcess {
    /// Field 22 of /proc/PID/stat: the start time in clock ticks since boot; nil when the process is gone.
    public static func startTime(_ pid: Int32) -> UInt64? {
        guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name (which may hold spaces and parentheses) start at field 3.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// The process `pid` runs and is the one that started at `startTime`.
    public static func isAlive(_ pid: Int32, startTime: UInt64) -> Bool {
        guard let current = Self.startTime(pid) else { return false }
        return current == startTime
    }

    /// The process `pid` runs and started no later than `time` (seconds since the epoch), e.g. the creation of a
    /// cgroup it made: a pid reused after that time belongs to another process.
    public static func isAlive(_ pid: Int32, startedBy time: Double) -> Bool {
        guard let ticks = startTime(pid), let boot = bootTime else { return false }
        let started = Double(boot) + Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
        return started <= time + 1
    }

    /// `btime` of /proc/stat: the boot time in seconds since the epoch.
    static let bootTime: UInt64? = {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("btime ") }.flatMap { UInt64($0.dropFirst(6)) }
    }()
}

/// An exclusive flock(2) on a cgroup directory, held while ghostrun makes or removes its cgroups under it, so
/// ghostrun processes running at once see each other's changes whole (a cgroup file system keeps no other state
/// to coordinate on, and the lock goes with the descriptor when a process dies).
enum CgroupLock {
    static func holding<Result>(_ directory: String, _ body: () throws -> Result) rethrows -> Result {
        guard case .success(let fd) = System.open(directory, O_RDONLY | O_DIRECTORY) else { return try body() }
        defer { System.close(fd) }
        _ = valueOrErrno { flock(fd, LOCK_EX) }
        return try body()
    }
}
