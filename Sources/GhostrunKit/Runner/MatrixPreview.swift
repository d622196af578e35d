import Foundation

/// What `ghostrun check` shows: each matrix entry and whether it would run or be skipped, and why, decided the
/// way `run` decides it before anything starts (the `go:` constraint, then the plan stage's host checks). It
/// creates no directory, cgroup or process.
public enum MatrixPreview {
    public struct Row: Equatable, Sendable {
        public var entry: String
        /// `scenarios/x.yaml:3`.
        public var location: String
        /// nil: the entry would run.
        public var skipReason: String?
        public var skipCause: SkipCause?
        /// The expected outcomes, `crash or clear-error`; nil when nothing is expected.
        public var expected: String?
    }

    public static func rows(_ entries: [MatrixEntry], host: PlanHost = .current(),
                            hierarchies: CgroupHierarchies = .discover()) -> [Row] {
        // The plan stage is pure: a work tree that is never created is enough to resolve it.
        let work = WorkDirectory(root: "/nonexistent/ghostrun-check")
        return entries.map { entry in
            let scenario = entry.scenario, toolchain = entry.toolchain
            var row = Row(
                entry: entry.id, location: "\(scenario.location.file):\(scenario.location.line)", skipReason: nil,
                skipCause: nil, expected: scenario.expect?.outcomes.map { $0.map(\.rawValue).joined(separator: " or ") })
            if let constraint = scenario.goConstraint, !constraint.allows(toolchain.version) {
                row.skipReason = "go \(toolchain.label) does not satisfy go: \"\(constraint)\""
                row.skipCause = .goConstraint
                return row
            }
            do {
                let plan = try RunPlan.resolve(scenario: scenario, toolchain: toolchain, host: host, work: work)
                if let reason = missingCgroupFeature(plan.cgroup, hierarchies: hierarchies, host: host) {
                    row.skipReason = reason
                    row.skipCause = .host
                }
            } catch let error as HostUnsupported {
                row.skipReason = error.reason
                row.skipCause = .host
            } catch {
                // Anything else depends on the files the run would write ($WORK); `run` reports it.
            }
            return row
        }
    }

    /// What `RunCgroup` would refuse as `HostUnsupported` for this request, read from the mounted hierarchies
    /// without creating a cgroup (the same messages).
    static func missingCgroupFeature(_ request: CgroupRequest, hierarchies h: CgroupHierarchies, host: PlanHost)
        -> String?
    {
        let v2Controllers = Set(
            (h.v2ControllerSource.flatMap { host.readFile($0 + "/cgroup.controllers") } ?? "")
                .split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        if request.pidsMax != nil, !v2Controllers.contains("pids"), h.v1["pids"] == nil {
            return "cgroup.pids_max needs the pids controller (neither cgroup v2 nor v1 offers it)"
        }
        if request.memoryMax != nil, !v2Controllers.contains("memory"), h.v1["memory"] == nil {
            return "cgroup.memory_max needs the memory controller (neither cgroup v2 nor v1 offers it)"
        }
        // cgroup.freeze exists in every non-root v2 cgroup since Linux 5.2.
        if !request.freeze.isEmpty, !(h.v2 != nil && host.kernelAtLeast(5, 2)), h.v1["freezer"] == nil {
            return "cgroup.freeze needs cgroup v2's cgroup.freeze or the v1 freezer"
        }
        if h.v2 == nil, h.v1["pids"] == nil, h.v1["freezer"] == nil, h.v1["memory"] == nil {
            return "no cgroup hierarchy is mounted (checked /proc/self/mountinfo)"
        }
        return nil
    }

    /// `RUN   name@1.23.4  scenarios/x.yaml:3  expect crash` or `SKIP  ...  reason (go constraint)`, then the
    /// totals.
    public static func render(_ rows: [Row]) -> String {
        let width = rows.map(\.entry.count).max() ?? 0
        var text = ""
        for row in rows {
            var line = (row.skipReason == nil ? "RUN " : "SKIP") + "  "
                + row.entry.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + row.location
            if let reason = row.skipReason {
                line += "  " + TerminalReport.escapingControls(reason)
                line += row.skipCause == .goConstraint ? " (go: constraint)" : " (host: fails the run unless --allow-skip"
                    + (row.expected == nil ? ", nothing expected)" : ")")
            } else if let expected = row.expected {
                line += "  expect " + expected
            }
            text += line + "\n"
        }
        let skipped = rows.filter { $0.skipReason != nil }.count
        text += "\(rows.count) entr\(rows.count == 1 ? "y" : "ies"): \(rows.count - skipped) would run, \(skipped) skipped"
        return text + "\n"
    }
}
