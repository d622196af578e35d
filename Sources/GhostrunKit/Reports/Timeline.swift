import Foundation

/// `--timeline FILE`: the runs as Chrome trace-event JSON (the format of Go's `go build -debug-trace` and Bazel's
/// `--profile`), which ui.perfetto.dev and chrome://tracing open. Each result is a trace process named
/// `scenario@version`; each of its processes is a track (`comm (role) pid N`) with its lifetime, its exec, the states
/// the /proc sampler saw, instants for denials, injections and cgroup events (freeze, thaw, hang), and flows from
/// parent to child at each fork. A pure function of the results: times are the runs' own milliseconds.
public enum Timeline {
    public static func render(_ results: [RunResult]) -> Data {
        var events: [[String: Any]] = []
        for (index, result) in results.enumerated() {
            events += self.events(for: result, tracePid: index + 1)
        }
        let document: [String: Any] = ["traceEvents": events, "displayTimeUnit": "ms"]
        return (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    static let stateNames = [
        "R": "running", "S": "sleeping", "D": "disk sleep (D)", "T": "stopped", "t": "traced",
        "Z": "zombie", "I": "idle",
    ]

    static func events(for result: RunResult, tracePid pid: Int) -> [[String: Any]] {
        var events: [[String: Any]] = []
        func us(_ ms: Int) -> Int { ms * 1000 }
        let end = result.durationMs
        events.append([
            "ph": "M", "name": "process_name", "pid": pid, "tid": 0,
            "args": ["name": "\(result.name)@\(result.goVersion) (\(result.outcome.rawValue))"],
        ])
        events.append(["ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": ["sort_index": pid]])
        events.append([
            "ph": "X", "name": "run", "cat": "run", "pid": pid, "tid": 0, "ts": 0, "dur": us(max(end, 1)),
            "args": ["outcome": result.outcome.rawValue, "summary": result.summary],
        ])
        events.append(["ph": "M", "name": "thread_name", "pid": pid, "tid": 0, "args": ["name": "run"]])

        let sampled = Dictionary(result.evidence.processes.map { ($0.pid, $0) }, uniquingKeysWith: { a, _ in a })
        var tracks = Set<Int32>()
        func track(_ processPid: Int32, comm: String, exe: String?) {
            guard tracks.insert(processPid).inserted else { return }
            let role = exe.map { ($0 as NSString).lastPathComponent } ?? comm
            events.append([
                "ph": "M", "name": "thread_name", "pid": pid, "tid": Int(processPid),
                "args": ["name": "\(comm) (\(role)) pid \(processPid)"],
            ])
        }

        if let tree = result.evidence.processTree {
            let known = Set(tree.map(\.pid))
            for process in tree {
                track(process.pid, comm: process.comm, exe: process.exe)
                let start = process.forkMs ?? process.execMs ?? 0
                let stop = process.exitMs ?? end
                var args: [String: Any] = [
                    "ppid": Int(process.ppid), "execs": process.execs,
                    "threads": process.threads, "CapEff": String(format: "%016llx", process.attestation.capEff),
                    "Seccomp": process.attestation.seccompMode,
                    "NoNewPrivs": process.attestation.noNewPrivs, "uid": Int(process.attestation.uid),
                ]
                if let exe = process.exe { args["exe"] = exe }
                if let status = process.exitStatus { args["exit_status"] = Int(status) }
                events.append([
                    "ph": "X", "name": process.comm, "cat": "process", "pid": pid,
                    "tid": Int(process.pid), "ts": us(start), "dur": max(us(stop - start), 1), "args": args,
                ])
                if let exec = process.execMs {
                    events.append([
                        "ph": "i", "s": "t", "name": "exec " + (process.exe ?? process.comm), "cat": "exec",
                        "pid": pid, "tid": Int(process.pid), "ts": us(exec),
                    ])
                }
                // Fork flow: from the parent's track to the child's start.
                if let fork = process.forkMs, known.contains(process.ppid) {
                    let id = Int(process.pid) * 1000 + pid
                    events.append([
                        "ph": "s", "name": "fork", "cat": "fork", "id": id, "pid": pid,
                        "tid": Int(process.ppid), "ts": us(fork),
                    ])
                    events.append([
                        "ph": "f", "bp": "e", "name": "fork", "cat": "fork", "id": id, "pid": pid,
                        "tid": Int(process.pid), "ts": us(fork),
                    ])
                }
            }
        }

        // States as the sampler saw them: a slice per state, nested in the process's lifetime.
        for process in result.evidence.processes {
            track(process.pid, comm: process.comm, exe: process.exe)
            let changes = process.stateChanges
            for (i, change) in changes.enumerated() {
                let stop =
                    i + 1 < changes.count ? changes[i + 1].timeMs : (sampled[process.pid] != nil ? end : change.timeMs)
                var args: [String: Any] = [:]
                if let wchan = change.wchan { args["wchan"] = wchan }
                events.append([
                    "ph": "X", "name": stateNames[change.state] ?? change.state, "cat": "state",
                    "pid": pid, "tid": Int(process.pid), "ts": us(change.timeMs),
                    "dur": max(us(stop - change.timeMs), 1), "args": args,
                ])
            }
        }

        for denial in result.evidence.denials {
            var args: [String: Any] = ["action": denial.action, "source": denial.source]
            if let errno = denial.errno { args["errno"] = errno }
            if let path = denial.path { args["path"] = path }
            let name = (denial.action == "injected" ? "injected " : "denied ") + denial.syscall
            events.append([
                "ph": "i", "s": tracks.contains(denial.pid) ? "t" : "p", "name": name, "cat": "denial",
                "pid": pid, "tid": tracks.contains(denial.pid) ? Int(denial.pid) : 0,
                "ts": us(denial.timeMs), "args": args,
            ])
        }
        for event in result.evidence.cgroup?.events ?? [] {
            var args: [String: Any] = [:]
            if let detail = event.detail { args["detail"] = detail }
            events.append([
                "ph": "i", "s": "p", "name": event.event, "cat": "cgroup", "pid": pid, "tid": 0,
                "ts": us(event.timeMs), "args": args,
            ])
        }
        if result.outcome == .hang {
            events.append([
                "ph": "i", "s": "p", "name": "hang snapshot", "cat": "hang", "pid": pid, "tid": 0,
                "ts": us(end), "args": ["processes": result.evidence.hangSnapshots.count],
            ])
        }
        // Syscall rate: each process's calls spread evenly over its life (the counts are totals per process, not
        // a time series), summed over the processes alive: a piecewise-constant calls/s counter.
        if let trace = result.evidence.trace, let tree = result.evidence.processTree {
            let calls = Dictionary(trace.byProcess.map { ($0.pid, $0.calls) }, uniquingKeysWith: +)
            var steps: [(ms: Int, delta: Double)] = []
            for process in tree {
                guard let count = calls[process.pid], count > 0 else { continue }
                let start = process.forkMs ?? process.execMs ?? 0
                let stop = max(process.exitMs ?? end, start + 1)
                let rate = Double(count) / (Double(stop - start) / 1000)
                steps.append((start, rate))
                steps.append((stop, -rate))
            }
            var rate = 0.0
            for step in steps.sorted(by: { $0.ms < $1.ms }) {
                rate = max(0, rate + step.delta)
                events.append([
                    "ph": "C", "name": "syscalls/s", "pid": pid, "tid": 0, "ts": us(step.ms),
                    "args": ["calls per second (mean over each process's life)": Int(rate.rounded())],
                ])
            }
        }
        return events
    }
}
