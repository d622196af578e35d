import CGhostrun
import Foundation

/// What the supervisor needs to answer notifications, decided before the run.
public struct SupervisorPlan: Sendable {
    public var faults: [Fault]
    public var seed: UInt64
    public var policy: SeccompPolicy
    /// `policy` resolved once by the plan stage (the filter was compiled from the same table); nil makes the
    /// supervisor resolve `policy` itself.
    public var decisions: SeccompDecisionTable?
    public var trace: TraceRequest
    public var goroot: String
    /// The run's temporary root: paths under it are the run's own ($WORK, GOTMPDIR, the built programs).
    public var workRoot: String
    /// Expands `$WORK` and friends in fault paths.
    public var expand: @Sendable (String) -> String
    /// Write every notified call as a JSON line here (`--trace-out`).
    public var traceOut: String?

    public init(faults: [Fault], seed: UInt64, policy: SeccompPolicy, trace: TraceRequest, goroot: String,
                workRoot: String, expand: @escaping @Sendable (String) -> String, traceOut: String? = nil) {
        self.faults = faults
        self.seed = seed
        self.policy = policy
        self.trace = trace
        self.goroot = goroot
        self.workRoot = workRoot
        self.expand = expand
        self.traceOut = traceOut
    }

    /// The syscalls the kernel must notify.
    public func notifyPlan(handOverDescriptor: Int32) -> NotifyPlan {
        let traced: Set<String>
        switch trace {
        case .off, .all: traced = []
        case .syscalls(let names): traced = Set(names)
        }
        return NotifyPlan(traceAll: trace == .all, traced: traced, faulted: Set(faults.map(\.syscall)),
                          handOverDescriptor: handOverDescriptor)
    }
}

/// Answers seccomp user notifications for one run on its own thread: attributes each call to a process and
/// role, decodes path arguments, injects faults, and counts everything. Work per call does not grow with the
/// number of processes or calls seen: faults are indexed by syscall number and processes by pid.
///
/// `@unchecked Sendable`, justified: every mutable field is touched either by the supervisor thread inside
/// `handle` with `lock` held, or by `stop()` after that thread has signalled `finished` (so it no longer runs).
/// A `Mutex<State>` would put the per-call hot path (~1 µs) behind a closure and a copy of the counters' dictionary
/// access for no added safety.
public final class Supervisor: @unchecked Sendable {
    private let listener: Int32
    private let plan: SupervisorPlan
    private let start: ContinuousClock.Instant
    private let lock = NSLock()
    private var stopping = false
    /// Set, with the listener closed, under `lock` by `stop()`; delayed replies check it under the same lock.
    private var listenerClosed = false
    /// Delayed replies that came due after `stop()` and were dropped (their tasks are gone with the run).
    private(set) var lateRepliesDropped = 0
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// Whether the kernel hands the CPU straight between target and supervisor (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP).
    public private(set) var syncWakeup = false
    private var notifSize: Int32 = 0
    private var respSize: Int32 = 0
    private var faultsByNumber: [Int32: [CompiledFault]] = [:]
    /// The policy, resolved: notified calls are answered from the same table the filter was compiled from.
    private let decisions: SeccompDecisionTable
    private var names: [Int32: String] = [:]
    /// Notifications carry the thread id; a process is its thread group.
    private struct Identity {
        var tgid: Int32
        var comm: String
        var exe: String?
        var role: ProcessRole
        /// Stable across runs: what seeded faults are decided from (`ProcessIdentity`).
        var key: String
        var stale = false
    }
    private var identities: [Int32: Identity] = [:]
    /// The stable identity of each thread group, named once per program it runs (an exec names it anew).
    private var processKeys: [Int32: String] = [:]
    private var processNames: ProcessIdentity
    private struct Counter {
        var calls = 0
        var errors = 0
        var firstMs = 0
    }
    /// (role, syscall number) → counts.
    private var counters: [Int: Counter] = [:]
    private var processCalls: [Int32: (comm: String, role: ProcessRole, calls: Int, firstMs: Int)] = [:]
    private var totalCalls = 0
    /// `TraceSummary.recordedArguments`: the distinct values seen, up to `maxRecordedValues` per syscall; a syscall
    /// with more goes to `argumentOverflow`.
    private var argumentValues: [String: Set<UInt64>] = [:]
    private var argumentOverflow: Set<String> = []
    private var injected = 0
    private var busyNanoseconds: UInt64 = 0
    private var denials = DenialLog()
    private var traceBuffer: [UInt8] = []
    private var traceHandle: FileHandle?

    /// `listener` is the seccomp notification fd; the supervisor owns and closes it.
    public init(listener: Int32, plan: SupervisorPlan, runStart: ContinuousClock.Instant) throws {
        self.listener = listener
        self.plan = plan
        self.start = runStart
        self.decisions = try plan.decisions ?? SeccompDecisionTable(plan.policy)
        self.processNames = ProcessIdentity(workRoot: plan.workRoot, goroot: plan.goroot)
        var notif: Int32 = 0, resp: Int32 = 0
        let status = ghostrun_notify_sizes(&notif, &resp)
        guard status == 0 else { throw SpawnError(step: "notify-sizes", errno: -status) }
        notifSize = notif
        respSize = resp
        // Best effort: kernels before 6.6 answer EINVAL and keep scheduler wake-ups.
        if ProcessInfo.processInfo.environment["GHOSTRUN_SYNC_WAKEUP"] != "0" {
            syncWakeup = ghostrun_notify_sync_wakeup(listener) == 0
        }
        for (index, fault) in plan.faults.enumerated() {
            guard let number = SyscallName.number(of: fault.syscall) else { continue }
            faultsByNumber[number, default: []].append(
                CompiledFault(index: index, fault: fault, pathGlob: fault.path.map(plan.expand)))
        }
        if let path = plan.traceOut {
            FileManager.default.createFile(atPath: path, contents: nil)
            traceHandle = FileHandle(forWritingAtPath: path)
        }
    }

    public func startThread() {
        let thread = Thread { [self] in
            loop()
            finished.signal()
        }
        thread.name = "ghostrun-supervisor"
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    /// Stops answering (the run is over: every process of the tree is gone or killed) and returns what was seen.
    public func stop() -> (trace: TraceSummary, denials: [Denial]) {
        lock.lock()
        stopping = true
        lock.unlock()
        finished.wait()
        lock.lock()
        listenerClosed = true
        close(listener)
        lock.unlock()
        flushTrace(force: true)
        try? traceHandle?.close()
        lock.lock()
        defer { lock.unlock() }
        return (summary(), denials.denials)
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func loop() {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Int(notifSize), alignment: 16)
        let response = UnsafeMutableRawPointer.allocate(byteCount: Int(respSize), alignment: 16)
        defer {
            buffer.deallocate()
            response.deallocate()
        }
        var notification = ghostrun_notification()
        while true {
            let ready = ghostrun_notify_wait(listener, 50)
            if ready < 0 { break }  // every task using the filter is gone
            if ready == 0 {
                if isStopping { break }
                continue
            }
            let status = ghostrun_notify_receive(listener, buffer, notifSize, &notification)
            if status == -ENOENT || status == -EINTR { continue }  // the task died or was interrupted first
            if status < 0 { break }
            let began = DispatchTime.now().uptimeNanoseconds
            lock.lock()
            let (error, delay) = handle(notification)
            busyNanoseconds += DispatchTime.now().uptimeNanoseconds - began
            lock.unlock()
            if let delay {
                let id = notification.id
                let size = respSize
                DispatchQueue.global().asyncAfter(deadline: .now() + delay.timeInterval) { [self] in
                    // Under the lock `stop()` closes the listener with: a reply due after it would otherwise go
                    // to whatever descriptor reused the number (another run's listener, a file).
                    lock.lock()
                    defer { lock.unlock() }
                    guard !listenerClosed else {
                        lateRepliesDropped += 1
                        return
                    }
                    let late = UnsafeMutableRawPointer.allocate(byteCount: Int(size), alignment: 16)
                    defer { late.deallocate() }
                    _ = ghostrun_notify_respond(listener, late, size, id, error ?? 0, error == nil ? 1 : 0)
                }
            } else {
                // ENOENT here means the task died while we decided: nothing to answer.
                _ = ghostrun_notify_respond(listener, response, respSize, notification.id, error ?? 0,
                                            error == nil ? 1 : 0)
            }
        }
    }

    private func name(of number: Int32) -> String {
        if let known = names[number] { return known }
        let resolved = SyscallName.name(of: Int(number)) ?? "syscall_\(number)"
        names[number] = resolved
        return resolved
    }

    private func identity(of pid: Int32) -> Identity {
        if let known = identities[pid], !known.stale { return known }
        let comm = ProcFiles.comm(pid: pid) ?? "?"
        let exe = ProcFiles.exe(pid: pid)
        let tgid = ProcFiles.read("/proc/\(pid)/status").flatMap { text in
            text.split(separator: "\n").first { $0.hasPrefix("Tgid:") }.flatMap {
                Int32($0.dropFirst(5).trimmingCharacters(in: .whitespaces))
            }
        } ?? pid
        // Only seeded faults need the stable identity: a trace-only run reads no command lines.
        let key: String
        if faultsByNumber.isEmpty {
            key = ""
        } else if let known = processKeys[tgid], identities[pid]?.stale != true {
            key = known
        } else {
            key = processNames.name(arguments: ProcessIdentity.arguments(pid: tgid), exe: exe)
            processKeys[tgid] = key
        }
        let identity = Identity(tgid: tgid, comm: comm, exe: exe,
                                role: ProcessRole.of(comm: comm, exe: exe, goroot: plan.goroot, workRoot: plan.workRoot),
                                key: key)
        identities[pid] = identity
        return identity
    }

    /// Decides one call: (errno to fail it with, or nil to continue; delay before answering).
    private func handle(_ n: ghostrun_notification) -> (Int32?, Duration?) {
        let nowMs = (ContinuousClock.now - start).milliseconds
        let syscall = name(of: n.nr)
        let who = identity(of: n.pid)
        if syscall == "execve" || syscall == "execveat" { identities[n.pid]?.stale = true }

        let faults = faultsByNumber[n.nr] ?? []
        var path: String?
        if let argument = FaultMatcher.pathArgument[syscall],
            traceHandle != nil || faults.contains(where: { $0.needsPath })
        {
            let args = withUnsafeBytes(of: n.args) { Array($0.bindMemory(to: UInt64.self)) }
            path = readPath(pid: n.pid, address: args[argument], syscall: syscall, directory: args[0])
            // The memory read is only the caller's if the call is still pending (pid reuse, a dead task).
            if ghostrun_notify_id_valid(listener, n.id) == 0 { return (nil, nil) }
        }

        var error: Int32?
        var delay: Duration?
        var action = "continue"
        for fault in faults where fault.applies(comm: who.comm, exe: who.exe, path: path) {
            // The path as the run names it ($WORK/...), not this run's temporary directory: the same in every run.
            guard let match = fault.decide(seed: plan.seed, process: who.key, path: path.map(processNames.normalised))
            else { continue }
            delay = fault.fault.delay
            if path == nil, let argument = FaultMatcher.pathArgument[syscall] {
                // Evidence names the path of every injected call, even when no filter needed it.
                let args = withUnsafeBytes(of: n.args) { Array($0.bindMemory(to: UInt64.self)) }
                path = readPath(pid: n.pid, address: args[argument], syscall: syscall, directory: args[0])
                if ghostrun_notify_id_valid(listener, n.id) == 0 { path = nil }
            }
            if let errno = fault.errno {
                error = errno
                action = "injected"
                injected += 1
                var denial = Denial(pid: who.tgid, comm: who.comm, exe: who.exe, syscall: syscall,
                                    syscallNumber: Int(n.nr), action: "injected",
                                    errno: ErrnoName.name(of: errno) ?? String(errno), timeMs: nowMs,
                                    source: "supervisor", role: who.role.rawValue, path: path.map(shown))
                denial.process = who.key
                denial.match = Int(match)
                denials.append(denial)
            } else {
                action = "delayed"
            }
            break
        }
        if error == nil, action == "continue", case let decision = answer(n), case .errno(let errno) = decision.action {
            error = errno
            action = "errno"
            var denial = Denial(pid: who.tgid, comm: who.comm, exe: who.exe, syscall: syscall,
                                syscallNumber: Int(n.nr), action: "errno",
                                errno: ErrnoName.name(of: errno) ?? String(errno), timeMs: nowMs,
                                source: "supervisor", role: who.role.rawValue, path: path.map(shown))
            denial.rule = decision.origin.description
            denials.append(denial)
        }

        if let index = TraceSummary.recordedArguments[syscall] {
            let value = withUnsafeBytes(of: n.args) { $0.bindMemory(to: UInt64.self)[index] }
            if argumentValues[syscall, default: []].count < TraceSummary.maxRecordedValues {
                argumentValues[syscall, default: []].insert(value)
            } else if !argumentValues[syscall]!.contains(value) {
                argumentOverflow.insert(syscall)
            }
        }
        totalCalls += 1
        let key = who.role.hashValueIndex << 20 | Int(n.nr & 0xfffff)
        var counter = counters[key] ?? Counter(firstMs: nowMs)
        counter.calls += 1
        if error != nil { counter.errors += 1 }
        counters[key] = counter
        if var process = processCalls[who.tgid] {
            process.calls += 1
            // After an exec the process carries its new program's name.
            process.comm = who.comm
            process.role = who.role
            processCalls[who.tgid] = process
        } else {
            processCalls[who.tgid] = (who.comm, who.role, 1, nowMs)
        }
        if traceHandle != nil { appendTraceLine(nowMs, who.tgid, who, syscall, path, action, error) }
        return (error, delay)
    }

    /// The policy's decision for a notified call (no fault applied): argument rules are evaluated on the
    /// notification's arguments, as the filter would have.
    private func answer(_ n: ghostrun_notification) -> SeccompDecision {
        Supervisor.answer(decisions, number: n.nr) {
            withUnsafeBytes(of: n.args) { Array($0.bindMemory(to: UInt64.self)) }
        }
    }

    /// The supervisor's answer function, apart from the notification plumbing (the property test calls it):
    /// the arguments are only read for a syscall with argument rules.
    static func answer(_ table: SeccompDecisionTable, number: Int32, args: () -> [UInt64]) -> SeccompDecision {
        switch table.decision(number: number) {
        case .unconditional(let decision): return decision
        case .conditional: return table.decide(number: number, args: args())
        }
    }

    /// Paths in evidence say `$WORK/...`: readable, and equal across runs of the same scenario.
    private func shown(_ path: String) -> String {
        let work = plan.workRoot + "/work"
        return path.hasPrefix(work) ? "$WORK" + path.dropFirst(work.count) : path
    }

    private func readPath(pid: Int32, address: UInt64, syscall: String, directory: UInt64) -> String? {
        var bytes = [CChar](repeating: 0, count: 4096)
        let length = ghostrun_read_remote_string(pid, address, &bytes, Int32(bytes.count))
        guard length >= 0 else { return nil }
        var path = String(cString: bytes)
        // Relative paths are resolved as the kernel will: against the directory fd, or the cwd for AT_FDCWD.
        if !path.hasPrefix("/") {
            let base: String?
            if FaultMatcher.directoryArgument.contains(syscall) && Int32(truncatingIfNeeded: directory) != -100 {
                base = try? FileManager.default.destinationOfSymbolicLink(
                    atPath: "/proc/\(pid)/fd/\(Int32(truncatingIfNeeded: directory))")
            } else {
                base = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")
            }
            if let base { path = base + "/" + path }
        }
        return path
    }

    private func appendTraceLine(_ ms: Int, _ pid: Int32, _ who: Identity, _ syscall: String, _ path: String?,
                                 _ action: String, _ error: Int32?) {
        var line = "{\"t_ms\":\(ms),\"pid\":\(pid),\"comm\":\(jsonString(who.comm)),\"role\":\"\(who.role.rawValue)\","
            + "\"syscall\":\"\(syscall)\",\"action\":\"\(action)\""
        if let path { line += ",\"path\":\(jsonString(path))" }
        if let error { line += ",\"errno\":\"\(ErrnoName.name(of: error) ?? String(error))\"" }
        line += "}\n"
        traceBuffer.append(contentsOf: line.utf8)
        flushTrace(force: false)
    }

    private func flushTrace(force: Bool) {
        guard let traceHandle, force ? !traceBuffer.isEmpty : traceBuffer.count >= 1 << 16 else { return }
        traceHandle.write(Data(traceBuffer))
        traceBuffer.removeAll(keepingCapacity: true)
    }

    private func jsonString(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    private func summary() -> TraceSummary {
        var byRole: [String: [TraceSummary.SyscallCalls]] = [:]
        for (key, counter) in counters {
            let role = ProcessRole.allCases[key >> 20]
            let syscall = name(of: Int32(key & 0xfffff))
            byRole[role.rawValue, default: []].append(
                TraceSummary.SyscallCalls(syscall: syscall, calls: counter.calls, errors: counter.errors,
                                          firstMs: counter.firstMs))
        }
        for role in byRole.keys {
            byRole[role]?.sort { ($0.calls, $1.syscall) > ($1.calls, $0.syscall) }
        }
        let processes = processCalls.map {
            TraceSummary.ProcessCalls(pid: $0.key, comm: $0.value.comm, role: $0.value.role.rawValue,
                                      calls: $0.value.calls, firstMs: $0.value.firstMs)
        }.sorted { ($0.firstMs, $0.pid) < ($1.firstMs, $1.pid) }
        let notified: [String]
        switch plan.trace {
        case .all: notified = ["all"]
        case .syscalls(let names): notified = names.sorted()
        case .off: notified = Array(Set(plan.faults.map(\.syscall))).sorted()
        }
        var summary = TraceSummary(
            notified: notified, totalCalls: totalCalls, byRole: byRole, byProcess: processes, injected: injected,
            supervisorMicrosecondsPerCall: totalCalls == 0 ? 0 : Double(busyNanoseconds) / 1000 / Double(totalCalls))
        // A syscall with more distinct values than the bound is left out: its rule must stay unconditional.
        let arguments = argumentValues.filter { !argumentOverflow.contains($0.key) }.mapValues { $0.sorted() }
        if !arguments.isEmpty { summary.arguments = arguments }
        return summary
    }
}

extension ProcessRole {
    /// Position in `allCases`, for compact counter keys.
    var hashValueIndex: Int { ProcessRole.allCases.firstIndex(of: self)! }
}
