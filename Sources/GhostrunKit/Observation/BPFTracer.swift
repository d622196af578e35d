import CGhostrunBPF
import Foundation

/// Why the BPF backend cannot be used, in words a user can act on.
public struct BPFUnavailable: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Restrictions of one process as the kernel held them when it was forked or last exec'd, read by the BPF program.
public struct BPFAttestation: Codable, Equatable, Sendable {
    public var capEff: UInt64
    public var capPrm: UInt64
    public var capBnd: UInt64
    public var capInh: UInt64
    public var capAmb: UInt64
    public var uid: UInt32
    public var euid: UInt32
    public var gid: UInt32
    public var noNewPrivs: Int
    /// 0 disabled, 1 strict, 2 filter.
    public var seccompMode: Int
    public var seccompFilters: Int
    /// Namespace inode numbers (as in `/proc/PID/ns/*`).
    public var namespaces: [String: UInt32]
}

/// One process of the run as the BPF program followed it.
public struct BPFProcess: Codable, Equatable, Sendable {
    public var pid: Int32
    public var ppid: Int32
    public var comm: String
    public var exe: String?
    /// Milliseconds since the run started; nil for the first process (forked before the program was attached).
    public var forkMs: Int?
    public var execMs: Int?
    public var exitMs: Int?
    /// The wait status the kernel kept at exit (code << 8 | signal).
    public var exitStatus: Int32?
    public var execs: Int
    public var threads: Int
    public var attestation: BPFAttestation
}

/// Per-process, per-syscall counts (what `strace -c -f` gives, attributed to processes).
public struct BPFSyscallCount: Codable, Equatable, Sendable {
    public var pid: Int32
    public var syscall: String
    public var number: Int32
    public var calls: Int
    public var errors: Int
    public var firstMs: Int
}

/// How often one process got one errno from one syscall, with the first such call.
public struct BPFErrorCount: Codable, Equatable, Sendable {
    public var pid: Int32
    public var tid: Int32
    public var syscall: String
    public var number: Int32
    public var errno: String
    public var errnoValue: Int32
    public var count: Int
    public var firstMs: Int
    /// The path argument of the first failing call, for file syscalls.
    public var path: String?
}

/// Everything the BPF program saw of one run: plain values, read from the maps when the run ended.
public struct BPFObservation: Codable, Equatable, Sendable {
    public var processes: [BPFProcess]
    public var calls: [BPFSyscallCount]
    public var errors: [BPFErrorCount]
    public var forks: Int
    public var threads: Int
    public var execs: Int
    public var exits: Int
    public var totalCalls: Int
    /// `--trace-out` records the ring buffer had no room for.
    public var lostRecords: Int
    /// Calls, errors or processes that a full map could not hold (counted in the totals, missing from the detail).
    public var lostKeys: Int
    /// The kernel's ids of the programs, for `bpftool prog show id N`.
    public var programIDs: [UInt32]
}

/// The eBPF observation backend for one run: BTF raw tracepoints on sys_enter/sys_exit and the scheduler's
/// fork/exec/exit, filtered in the kernel by the run's cgroup v2 id, so concurrent runs never see each other.
/// The programs are loaded once per ghostrun process (`BPFPrograms`) and attached while a run is registered;
/// programs, links, maps and the ring buffer are descriptors of this process, so if ghostrun is killed the kernel
/// closes them, which detaches the programs (nothing is pinned).
public final class BPFTracer: @unchecked Sendable {
    private let slot: UInt32
    private let cgroupID: UInt64
    private let monotonicAtRunStart: UInt64
    private let lock = NSLock()
    private var result: BPFObservation?

    /// Whether this build embeds the BPF program (scripts/build-bpf.sh ran before `swift build`).
    public static var isEmbedded: Bool { ghostrun_bpf_embedded() != 0 }

    /// Why the backend cannot be used on this host, or nil if it can (the program must still load: `start` says).
    public static func hostProblem() -> String? {
        if !isEmbedded {
            return "this ghostrun was built without its BPF program (scripts/bootstrap.sh builds it: needs clang, "
                + "bpftool, libbpf-dev)"
        }
        #if !arch(x86_64)
            return "the BPF program supports x86_64 only"
        #endif
        if geteuid() != 0 { return "loading BPF programs needs root (CAP_BPF and CAP_PERFMON)" }
        if access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
            return "the kernel has no BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF)"
        }
        return nil
    }

    /// Starts observing the cgroup v2 directory `cgroupDirectory` (the processes in it, not in its children).
    /// - Parameters:
    ///   - runStart: the instant times in the observation are relative to.
    ///   - traceOut: write every call as a JSON line here (`--trace-out`), through the ring buffer.
    ///   - workRoot, goroot: to name the roles in trace lines.
    public init(
        cgroupDirectory: String, runStart: ContinuousClock.Instant, traceOut: String? = nil,
        workRoot: String = "", goroot: String = ""
    ) throws {
        if let problem = BPFTracer.hostProblem() { throw BPFUnavailable(description: problem) }
        var info = stat()
        guard stat(cgroupDirectory, &info) == 0 else {
            throw BPFUnavailable(description: "cannot stat \(cgroupDirectory): \(Errno.current)")
        }
        // A cgroup v2 id is its directory's inode number (kernfs), as bpf_get_current_cgroup_id() returns it.
        cgroupID = UInt64(info.st_ino)
        let elapsed = ContinuousClock.now - runStart
        let (seconds, attoseconds) = elapsed.components
        let monotonicAtRunStart =
            BPFTracer.monotonicNanoseconds()
            &- UInt64(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        self.monotonicAtRunStart = monotonicAtRunStart
        let writer = try traceOut.map {
            try RecordWriter(path: $0, monotonicAtRunStart: monotonicAtRunStart, workRoot: workRoot, goroot: goroot)
        }
        slot = try BPFPrograms.shared.register(cgroupID: cgroupID, writer: writer)
    }

    deinit {
        if result == nil { _ = BPFPrograms.shared.unregister(slot: slot, cgroupID: cgroupID) }
    }

    /// Stops observing and returns what was seen. Call once the run's processes are gone; later calls return the
    /// same observation.
    public func stop() -> BPFObservation {
        lock.lock()
        defer { lock.unlock() }
        if let result { return result }
        let raw = BPFPrograms.shared.unregister(slot: slot, cgroupID: cgroupID)
        let observation = raw.observation(monotonicAtRunStart: monotonicAtRunStart)
        result = observation
        return observation
    }

    static func syscallName(_ number: Int32) -> String {
        SyscallName.name(of: Int(number)) ?? "syscall_\(number)"
    }

    /// A NUL-terminated C array imported as a tuple.
    static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

/// One run's entries, taken out of the shared maps.
struct BPFRunEntries {
    var counters: [Int]
    var processes: [ghostrun_bpf_process]
    var calls: [(ghostrun_bpf_call_key, ghostrun_bpf_call_value)]
    var errors: [(ghostrun_bpf_error_key, ghostrun_bpf_error_value)]
    var programIDs: [UInt32]
    var unwrittenLines: Int

    func observation(monotonicAtRunStart: UInt64) -> BPFObservation {
        func milliseconds(_ ns: UInt64) -> Int {
            ns <= monotonicAtRunStart ? 0 : Int((ns - monotonicAtRunStart) / 1_000_000)
        }
        let processes = processes.map { p -> BPFProcess in
            let a = p.attestation
            let exe = BPFTracer.string(p.exe)
            return BPFProcess(
                pid: Int32(bitPattern: p.tgid), ppid: Int32(bitPattern: p.ppid), comm: BPFTracer.string(p.comm),
                exe: exe.isEmpty ? nil : exe, forkMs: p.fork_ns == 0 ? nil : milliseconds(p.fork_ns),
                execMs: p.exec_ns == 0 ? nil : milliseconds(p.exec_ns),
                exitMs: p.exit_ns == 0 ? nil : milliseconds(p.exit_ns),
                exitStatus: p.exit_ns == 0 ? nil : p.exit_code, execs: Int(p.execs), threads: Int(p.threads),
                attestation: BPFAttestation(
                    capEff: a.cap_eff, capPrm: a.cap_prm, capBnd: a.cap_bnd, capInh: a.cap_inh, capAmb: a.cap_amb,
                    uid: a.uid, euid: a.euid, gid: a.gid, noNewPrivs: Int(a.no_new_privs),
                    seccompMode: Int(a.seccomp_mode), seccompFilters: Int(a.seccomp_filters),
                    namespaces: [
                        "mnt": a.ns_mnt, "pid_for_children": a.ns_pid, "net": a.ns_net, "uts": a.ns_uts,
                        "ipc": a.ns_ipc, "user": a.ns_user, "cgroup": a.ns_cgroup,
                    ]))
        }.sorted { ($0.forkMs ?? -1, $0.pid) < ($1.forkMs ?? -1, $1.pid) }
        let calls = calls.map { k, v in
            BPFSyscallCount(
                pid: Int32(bitPattern: k.tgid), syscall: BPFTracer.syscallName(k.nr), number: k.nr,
                calls: Int(v.calls), errors: Int(v.errors), firstMs: milliseconds(v.first_ns))
        }.sorted { ($0.pid, $0.number) < ($1.pid, $1.number) }
        let errors = errors.map { k, v in
            let path = BPFTracer.string(v.path)
            return BPFErrorCount(
                pid: Int32(bitPattern: k.tgid), tid: Int32(bitPattern: v.first_tid),
                syscall: BPFTracer.syscallName(k.nr), number: k.nr,
                errno: ErrnoName.name(of: k.err) ?? String(k.err), errnoValue: k.err, count: Int(v.count),
                firstMs: milliseconds(v.first_ns), path: path.isEmpty ? nil : path)
        }.sorted { ($0.firstMs, $0.pid, $0.number) < ($1.firstMs, $1.pid, $1.number) }
        func counter(_ which: ghostrun_bpf_counter) -> Int { counters[Int(which.rawValue)] }
        return BPFObservation(
            processes: processes, calls: calls, errors: errors, forks: counter(GHOSTRUN_BPF_FORKS),
            threads: counter(GHOSTRUN_BPF_THREADS), execs: counter(GHOSTRUN_BPF_EXECS),
            exits: counter(GHOSTRUN_BPF_EXITS), totalCalls: counter(GHOSTRUN_BPF_CALLS),
            lostRecords: counter(GHOSTRUN_BPF_LOST_RECORDS) + unwrittenLines,
            lostKeys: counter(GHOSTRUN_BPF_LOST_KEYS), programIDs: programIDs)
    }
}

/// The programs and maps, loaded once per ghostrun process (a load parses the kernel's BTF and runs the verifier:
/// tens of milliseconds) and attached while runs are registered. Attaching and detaching five raw tracepoints costs
/// 7–39 ms (measured with GHOSTRUN_TIMING=1), so the links stay for `detachGrace` after the last run: a matrix run
/// one after another attaches once, and an idle ghostrun still costs the host nothing. Each run gets a slot that
/// keys its entries in every map.
final class BPFPrograms: @unchecked Sendable {
    static let shared = BPFPrograms()

    private let lock = NSLock()
    private var tracer: OpaquePointer?
    private var loadFailure: String?
    private var attached = false
    /// slot → the run's `--trace-out` writer (nil without one).
    private var writers: [UInt32: RecordWriter?] = [:]
    private var recordsThread: Thread?
    /// Bumped by every register: a detach scheduled before it is stale.
    private var generation = 0
    /// How long the programs stay attached once no run is registered.
    static let detachGrace: Duration = .seconds(1)
    private static let counterCount = Int(GHOSTRUN_BPF_COUNTER_COUNT.rawValue)

    /// Loads the programs if needed and checks that they attach; nil when they do, else why not.
    func probe() -> String? {
        lock.lock()
        defer { lock.unlock() }
        if let failure = loadLocked() { return failure }
        if attached { return nil }
        var message = [CChar](repeating: 0, count: 1024)
        if ghostrun_bpf_attach(tracer, &message, message.count) != 0 {
            return "cannot attach the BPF programs: " + String(cString: message)
        }
        ghostrun_bpf_detach(tracer)
        return nil
    }

    private func loadLocked() -> String? {
        if tracer != nil { return nil }
        if let loadFailure { return loadFailure }
        if let problem = BPFTracer.hostProblem() {
            loadFailure = problem
            return problem
        }
        var message = [CChar](repeating: 0, count: 1024)
        var handle: OpaquePointer?
        if ghostrun_bpf_load(&handle, &message, message.count) != 0 || handle == nil {
            loadFailure = "cannot load the BPF program: " + String(cString: message)
            return loadFailure
        }
        tracer = handle
        return nil
    }

    func register(cgroupID: UInt64, writer: RecordWriter?) throws -> UInt32 {
        lock.lock()
        defer { lock.unlock() }
        if let failure = loadLocked() { throw BPFUnavailable(description: failure) }
        guard let slot = (0..<UInt32(GHOSTRUN_BPF_MAX_RUNS)).first(where: { writers[$0] == nil }) else {
            throw BPFUnavailable(description: "more than \(GHOSTRUN_BPF_MAX_RUNS) runs observed at once")
        }
        let counters = ghostrun_bpf_map_fd(tracer, GHOSTRUN_BPF_MAP_COUNTERS)
        for counter in 0..<BPFPrograms.counterCount {
            var index = slot * UInt32(BPFPrograms.counterCount) + UInt32(counter)
            var zero: UInt64 = 0
            _ = ghostrun_bpf_update(counters, &index, &zero, 0)
        }
        if writer != nil { try startRecordsLocked() }
        var key = cgroupID
        var run = ghostrun_bpf_run(slot: slot, emit_records: writer == nil ? 0 : 1)
        let status = ghostrun_bpf_update(ghostrun_bpf_map_fd(tracer, GHOSTRUN_BPF_MAP_RUNS), &key, &run, 0)
        guard status == 0 else {
            throw BPFUnavailable(description: "cannot register the run's cgroup: \(Errno(negated: status))")
        }
        writers[slot] = .some(writer)
        generation += 1
        if !attached {
            var message = [CChar](repeating: 0, count: 1024)
            if ghostrun_bpf_attach(tracer, &message, message.count) != 0 {
                _ = ghostrun_bpf_delete(ghostrun_bpf_map_fd(tracer, GHOSTRUN_BPF_MAP_RUNS), &key)
                writers[slot] = nil
                throw BPFUnavailable(description: "cannot attach the BPF programs: " + String(cString: message))
            }
            attached = true
        }
        return slot
    }

    /// The ring buffer is drained by one thread for every run; records carry their run's slot.
    private func startRecordsLocked() throws {
        guard recordsThread == nil else { return }
        let context = Unmanaged.passUnretained(self).toOpaque()
        let fd = ghostrun_bpf_records_fd(
            tracer,
            { context, record in
                guard let context, let record else { return 0 }
                // Called inside consume, which holds the lock.
                Unmanaged<BPFPrograms>.fromOpaque(context).takeUnretainedValue().dispatch(record.pointee)
                return 0
            }, context)
        guard fd >= 0 else {
            throw BPFUnavailable(description: "cannot open the BPF ring buffer: \(Errno(negated: fd))")
        }
        let thread = Thread { [self] in
            while true {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&poller, 1, -1) < 0 && errno != EINTR { return }
                lock.lock()
                _ = ghostrun_bpf_consume_records(tracer)
                lock.unlock()
            }
        }
        thread.name = "ghostrun-bpf-records"
        recordsThread = thread
        thread.start()
    }

    private func dispatch(_ record: ghostrun_bpf_call_record) {
        if let writer = writers[record.slot] ?? nil { writer.append(record) }
    }

    func unregister(slot: UInt32, cgroupID: UInt64) -> BPFRunEntries {
        lock.lock()
        defer { lock.unlock() }
        var key = cgroupID
        _ = ghostrun_bpf_delete(ghostrun_bpf_map_fd(tracer, GHOSTRUN_BPF_MAP_RUNS), &key)
        // What the run's processes wrote before they went away is in the ring buffer already.
        if recordsThread != nil { _ = ghostrun_bpf_consume_records(tracer) }
        let writer = writers[slot] ?? nil
        writer?.finish()
        writers[slot] = nil

        let countersFD = ghostrun_bpf_map_fd(tracer, GHOSTRUN_BPF_MAP_COUNTERS)
        var counters = [Int](repeating: 0, count: BPFPrograms.counterCount)
        for index in 0..<counters.count {
            var key = slot * UInt32(BPFPrograms.counterCount) + UInt32(index)
            var value: UInt64 = 0
            if ghostrun_bpf_lookup(countersFD, &key, &value) == 0 { counters[index] = Int(value) }
        }
        let processes = take(GHOSTRUN_BPF_MAP_PROCESSES, ghostrun_bpf_process_key(), ghostrun_bpf_process()) {
            $0.slot == slot
        }.map(\.1)
        let calls = take(GHOSTRUN_BPF_MAP_CALLS, ghostrun_bpf_call_key(), ghostrun_bpf_call_value()) { $0.slot == slot }
        let errors = take(GHOSTRUN_BPF_MAP_ERRORS, ghostrun_bpf_error_key(), ghostrun_bpf_error_value()) {
            $0.slot == slot
        }
        var ids = [UInt32](repeating: 0, count: 8)
        let idCount = Int(ghostrun_bpf_program_ids(tracer, &ids, Int32(ids.count)))
        if writers.isEmpty && attached {
            // No run left: detach after the grace period unless another run registers first.
            let scheduled = generation
            let grace = BPFPrograms.detachGrace
            DispatchQueue.global().asyncAfter(
                deadline: .now() + .milliseconds(Int(grace.components.seconds * 1000))
            ) { [self] in
                lock.lock()
                defer { lock.unlock() }
                if writers.isEmpty && attached && generation == scheduled {
                    ghostrun_bpf_detach(tracer)
                    attached = false
                }
            }
        }
        return BPFRunEntries(
            counters: counters, processes: processes, calls: calls, errors: errors,
            programIDs: Array(ids.prefix(idCount)), unwrittenLines: writer?.unwritten ?? 0)
    }

    /// The entries of `map` whose key `belongs`, removed from the map. Keys are listed first, then deleted: deleting
    /// during a get-next-key walk would restart it.
    private func take<Key, Value>(
        _ map: ghostrun_bpf_map, _ zeroKey: Key, _ zeroValue: Value,
        belongs: (Key) -> Bool
    ) -> [(Key, Value)] {
        let fd = ghostrun_bpf_map_fd(tracer, map)
        var keys: [Key] = []
        var current = zeroKey
        var next = zeroKey
        var status = withUnsafeMutablePointer(to: &next) { ghostrun_bpf_next_key(fd, nil, $0) }
        while status == 0 {
            current = next
            if belongs(current) { keys.append(current) }
            status = withUnsafePointer(to: &current) { c in
                withUnsafeMutablePointer(to: &next) { ghostrun_bpf_next_key(fd, c, $0) }
            }
        }
        var result: [(Key, Value)] = []
        result.reserveCapacity(keys.count)
        for var key in keys {
            var value = zeroValue
            if withUnsafePointer(
                to: &key, { k in withUnsafeMutablePointer(to: &value) { ghostrun_bpf_lookup(fd, k, $0) } })
                == 0
            {
                result.append((key, value))
            }
            _ = withUnsafePointer(to: &key) { ghostrun_bpf_delete(fd, $0) }
        }
        return result
    }
}

/// Writes `--trace-out` lines from ring-buffer records, in the supervisor's format (t_ms, pid, comm, role,
/// syscall, action, path, errno) plus the thread id and the raw return value.
final class RecordWriter: @unchecked Sendable {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private let monotonicAtRunStart: UInt64
    private let workRoot: String
    private let goroot: String
    /// Lines that could not be written (a failing disk): counted with the lost records.
    private(set) var unwritten = 0
    private var roles: [String: ProcessRole] = [:]

    init(path: String, monotonicAtRunStart: UInt64, workRoot: String, goroot: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw BPFUnavailable(description: "cannot create --trace-out file \(path)") }
        self.handle = handle
        self.monotonicAtRunStart = monotonicAtRunStart
        self.workRoot = workRoot
        self.goroot = goroot
    }

    func append(_ record: ghostrun_bpf_call_record) {
        let ms = record.ns <= monotonicAtRunStart ? 0 : Int((record.ns - monotonicAtRunStart) / 1_000_000)
        let comm = BPFTracer.string(record.comm)
        let role =
            roles[comm]
            ?? {
                let role = ProcessRole.of(comm: comm, exe: nil, goroot: goroot, workRoot: workRoot)
                roles[comm] = role
                return role
            }()
        let syscall = BPFTracer.syscallName(record.nr)
        let failed = record.ret < 0 && record.ret >= -4095
        var line =
            "{\"t_ms\":\(ms),\"pid\":\(record.tgid),\"tid\":\(record.tid),\"comm\":\(jsonString(comm)),"
            + "\"role\":\"\(role.rawValue)\",\"syscall\":\"\(syscall)\",\"ret\":\(record.ret)"
        let path = BPFTracer.string(record.path)
        if !path.isEmpty { line += ",\"path\":\(jsonString(path))" }
        if failed {
            let value = Int32(-record.ret)
            line += ",\"errno\":\"\(ErrnoName.name(of: value) ?? String(value))\""
        }
        line += "}\n"
        buffer.append(contentsOf: line.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    private func flush() {
        guard !buffer.isEmpty else { return }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            unwritten += buffer.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    func finish() {
        flush()
        try? handle.close()
    }

    private func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
