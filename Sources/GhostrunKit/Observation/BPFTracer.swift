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
/// Programs, links, maps and the ring buffer are descriptors this object owns: `stop()` closes them, and if
/// ghostrun is killed the kernel closes them with the process, which detaches the programs (nothing is pinned).
public final class BPFTracer: @unchecked Sendable {
    private var tracer: OpaquePointer?
    private let monotonicAtRunStart: UInt64
    private let lock = NSLock()
    private var stopped = false
    private var recordThread: Thread?
    private let recordsDone = DispatchSemaphore(value: 0)
    private var recordSink: RecordWriter?

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
        if getuid() != 0 { return "loading BPF programs needs root (CAP_BPF and CAP_PERFMON)" }
        if access("/sys/kernel/btf/vmlinux", R_OK) != 0 {
            return "the kernel has no BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF)"
        }
        return nil
    }

    /// Loads and attaches the programs for the cgroup v2 directory `cgroupDirectory` (and its descendants).
    /// - Parameters:
    ///   - v2Root: the cgroup v2 mount point, to compute the directory's depth.
    ///   - runStart: the instant times in the observation are relative to.
    ///   - traceOut: write every call as a JSON line here (`--trace-out`), through the ring buffer.
    ///   - describe: names a process for trace lines (comm, exe → role), when traceOut is set.
    ///   - probeOnly: load and attach with a filter that matches no cgroup (to learn whether the host can).
    public init(cgroupDirectory: String, v2Root: String, runStart: ContinuousClock.Instant,
                traceOut: String? = nil, workRoot: String = "", goroot: String = "", probeOnly: Bool = false) throws {
        if let problem = BPFTracer.hostProblem() { throw BPFUnavailable(description: problem) }
        var cgroupID: UInt64 = 0
        var level = 0
        if !probeOnly {
            var info = stat()
            guard stat(cgroupDirectory, &info) == 0 else {
                throw BPFUnavailable(description: "cannot stat \(cgroupDirectory): \(String(cString: strerror(errno)))")
            }
            let root = v2Root.hasSuffix("/") ? String(v2Root.dropLast()) : v2Root
            guard cgroupDirectory.hasPrefix(root + "/") else {
                throw BPFUnavailable(description: "\(cgroupDirectory) is not under the cgroup v2 mount \(root)")
            }
            // cgroup v2 ids are the directories' inode numbers (kernfs); the root is level 0.
            cgroupID = UInt64(info.st_ino)
            level = cgroupDirectory.dropFirst(root.count + 1).split(separator: "/").count
        }
        let elapsed = ContinuousClock.now - runStart
        let (seconds, attoseconds) = elapsed.components
        monotonicAtRunStart = BPFTracer.monotonicNanoseconds()
            &- UInt64(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))

        var options = ghostrun_bpf_options(cgroup_id: cgroupID, cgroup_level: UInt32(level),
                                           emit_records: traceOut == nil ? 0 : 1)
        var message = [CChar](repeating: 0, count: 1024)
        var handle: OpaquePointer?
        let status = ghostrun_bpf_start(&options, &handle, &message, message.count)
        guard status == 0, let handle else {
            throw BPFUnavailable(description: "cannot load the BPF program: " + String(cString: message))
        }
        tracer = handle
        if let traceOut {
            let writer = try RecordWriter(path: traceOut, monotonicAtRunStart: monotonicAtRunStart,
                                          workRoot: workRoot, goroot: goroot)
            recordSink = writer
            let thread = Thread { [self] in
                pollRecords(writer)
                recordsDone.signal()
            }
            thread.name = "ghostrun-bpf-records"
            recordThread = thread
            thread.start()
        }
    }

    deinit {
        if let tracer { ghostrun_bpf_stop(tracer) }
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    private func pollRecords(_ writer: RecordWriter) {
        let context = Unmanaged.passUnretained(writer).toOpaque()
        while true {
            let stopping = isStopping
            let count = ghostrun_bpf_poll_records(tracer, stopping ? 0 : 100, { context, record in
                guard let context, let record else { return 0 }
                Unmanaged<RecordWriter>.fromOpaque(context).takeUnretainedValue().append(record.pointee)
                return 0
            }, context)
            // After the stop request one last non-blocking poll drains what is left.
            if stopping || count < 0 { break }
        }
        writer.finish()
    }

    /// Reads the maps, then detaches and frees everything. Call once, after the run's processes are gone.
    public func stop() -> BPFObservation {
        lock.lock()
        stopped = true
        lock.unlock()
        if recordThread != nil { recordsDone.wait() }
        let observation = read()
        ghostrun_bpf_stop(tracer)
        tracer = nil
        return observation
    }

    // MARK: - Reading the maps

    private func milliseconds(_ ns: UInt64) -> Int {
        ns <= monotonicAtRunStart ? 0 : Int((ns - monotonicAtRunStart) / 1_000_000)
    }

    private func entries<Key, Value>(_ map: ghostrun_bpf_map, _: Key.Type, _: Value.Type,
                                     zero key: Key, value: Value) -> [(Key, Value)] {
        let fd = ghostrun_bpf_map_fd(tracer, map)
        var result: [(Key, Value)] = []
        var current = key
        var next = key
        var first = true
        var value = value
        while true {
            let status = first
                ? withUnsafeMutablePointer(to: &next) { ghostrun_bpf_next_key(fd, nil, $0) }
                : withUnsafePointer(to: &current) { c in withUnsafeMutablePointer(to: &next) { ghostrun_bpf_next_key(fd, c, $0) } }
            if status != 0 { break }
            first = false
            current = next
            if withUnsafePointer(to: &current, { c in withUnsafeMutablePointer(to: &value) { ghostrun_bpf_lookup(fd, c, $0) } }) == 0 {
                result.append((current, value))
            }
        }
        return result
    }

    private func read() -> BPFObservation {
        let countersFD = ghostrun_bpf_map_fd(tracer, GHOSTRUN_BPF_MAP_COUNTERS)
        var counters = [Int](repeating: 0, count: Int(GHOSTRUN_BPF_COUNTER_COUNT.rawValue))
        for index in 0..<counters.count {
            var key = UInt32(index)
            var value: UInt64 = 0
            if ghostrun_bpf_lookup(countersFD, &key, &value) == 0 { counters[index] = Int(value) }
        }

        let processes = entries(GHOSTRUN_BPF_MAP_PROCESSES, UInt32.self, ghostrun_bpf_process.self, zero: 0,
                                value: ghostrun_bpf_process()).map { _, p -> BPFProcess in
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
                    namespaces: ["mnt": a.ns_mnt, "pid_for_children": a.ns_pid, "net": a.ns_net, "uts": a.ns_uts,
                                 "ipc": a.ns_ipc, "user": a.ns_user, "cgroup": a.ns_cgroup]))
        }.sorted { ($0.forkMs ?? -1, $0.pid) < ($1.forkMs ?? -1, $1.pid) }

        let calls = entries(GHOSTRUN_BPF_MAP_CALLS, ghostrun_bpf_call_key.self, ghostrun_bpf_call_value.self,
                            zero: ghostrun_bpf_call_key(), value: ghostrun_bpf_call_value()).map { k, v in
            BPFSyscallCount(pid: Int32(bitPattern: k.tgid), syscall: BPFTracer.syscallName(k.nr), number: k.nr,
                            calls: Int(v.calls), errors: Int(v.errors), firstMs: milliseconds(v.first_ns))
        }.sorted { ($0.pid, $0.number) < ($1.pid, $1.number) }

        let errors = entries(GHOSTRUN_BPF_MAP_ERRORS, ghostrun_bpf_error_key.self, ghostrun_bpf_error_value.self,
                             zero: ghostrun_bpf_error_key(), value: ghostrun_bpf_error_value()).map { k, v in
            let path = BPFTracer.string(v.path)
            return BPFErrorCount(
                pid: Int32(bitPattern: k.tgid), tid: Int32(bitPattern: v.first_tid),
                syscall: BPFTracer.syscallName(k.nr), number: k.nr,
                errno: ErrnoName.name(of: k.err) ?? String(k.err), errnoValue: k.err, count: Int(v.count),
                firstMs: milliseconds(v.first_ns), path: path.isEmpty ? nil : path)
        }.sorted { ($0.firstMs, $0.pid, $0.number) < ($1.firstMs, $1.pid, $1.number) }

        var ids = [UInt32](repeating: 0, count: 8)
        let idCount = Int(ghostrun_bpf_program_ids(tracer, &ids, Int32(ids.count)))
        return BPFObservation(
            processes: processes, calls: calls, errors: errors,
            forks: counters[Int(GHOSTRUN_BPF_FORKS.rawValue)], threads: counters[Int(GHOSTRUN_BPF_THREADS.rawValue)],
            execs: counters[Int(GHOSTRUN_BPF_EXECS.rawValue)], exits: counters[Int(GHOSTRUN_BPF_EXITS.rawValue)],
            totalCalls: counters[Int(GHOSTRUN_BPF_CALLS.rawValue)],
            lostRecords: counters[Int(GHOSTRUN_BPF_LOST_RECORDS.rawValue)] + (recordSink?.unwritten ?? 0),
            lostKeys: counters[Int(GHOSTRUN_BPF_LOST_KEYS.rawValue)], programIDs: Array(ids.prefix(idCount)))
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
        let role = roles[comm] ?? {
            let role = ProcessRole.of(comm: comm, exe: nil, goroot: goroot, workRoot: workRoot)
            roles[comm] = role
            return role
        }()
        let syscall = BPFTracer.syscallName(record.nr)
        let failed = record.ret < 0 && record.ret >= -4095
        var line = "{\"t_ms\":\(ms),\"pid\":\(record.tgid),\"tid\":\(record.tid),\"comm\":\(jsonString(comm)),"
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
