import CGhostrun
import CSeccomp
import Foundation
import Glibc
import Synchronization

/// One seccomp audit record (`type=1326`) the kernel wrote when a filter acted on a syscall.
///
/// The kernel logs kill-process, kill-thread and log actions always (when listed in
/// `/proc/sys/kernel/seccomp/actions_logged`); trap, errno, trace and user-notif only for filters loaded
/// with `SECCOMP_FILTER_FLAG_LOG`. The record carries the action only, never the errno value.
public struct AuditRecord: Equatable, Sendable {
    public var pid: Int32
    public var comm: String
    public var exe: String?
    public var syscallNumber: Int
    /// Audit architecture (`AUDIT_ARCH_*`, e.g. 0xc000003e for x86-64), when the record names one.
    public var arch: UInt32?
    /// Signal the kernel delivered: 31 (SIGSYS) for kills, 0 otherwise.
    public var signal: Int
    /// The filter's return value as logged (action bits; the kernel drops the data bits).
    public var code: UInt32
    /// Kernel timestamp in microseconds of CLOCK_MONOTONIC; nil for audit.log lines, which have wall time only.
    /// For records read from netlink it is derived from the record's coarse wall time (a few ms early).
    public var kernelTimeUsec: UInt64?
    /// `kill-process`, `kill-thread`, `trap`, `errno`, `user-notif`, `trace`, `log`, `allow`.
    public var action: String
    /// The audit serial of `audit(SECONDS.MILLIS:SERIAL)`: the same record read from two sources has the same one.
    public var serial: UInt64?
    /// The wall-clock time of `audit(SECONDS.MILLIS:SERIAL)` in milliseconds since the epoch.
    public var wallTimeMs: UInt64?

    public init(
        pid: Int32, comm: String, exe: String?, syscallNumber: Int, arch: UInt32? = nil, signal: Int, code: UInt32,
        kernelTimeUsec: UInt64?, serial: UInt64? = nil, wallTimeMs: UInt64? = nil
    ) {
        self.serial = serial
        self.wallTimeMs = wallTimeMs
        self.pid = pid
        self.comm = comm
        self.exe = exe
        self.syscallNumber = syscallNumber
        self.arch = arch
        self.signal = signal
        self.code = code
        self.kernelTimeUsec = kernelTimeUsec
        self.action = Self.actionName(code: code)
    }

    /// The errno value of an `errno` action, when the record carries it (kernels log 0 here).
    public var errnoValue: Int32? {
        guard action == "errno", code & GHOSTRUN_SECCOMP_RET_DATA != 0 else { return nil }
        return Int32(code & GHOSTRUN_SECCOMP_RET_DATA)
    }

    /// Names a `SECCOMP_RET_*` action from a filter return value.
    public static func actionName(code: UInt32) -> String {
        switch code & GHOSTRUN_SECCOMP_RET_ACTION_FULL {
        case GHOSTRUN_SECCOMP_RET_KILL_PROCESS: return "kill-process"
        case GHOSTRUN_SECCOMP_RET_KILL_THREAD: return "kill-thread"
        case GHOSTRUN_SECCOMP_RET_TRAP: return "trap"
        case GHOSTRUN_SECCOMP_RET_ERRNO: return "errno"
        case GHOSTRUN_SECCOMP_RET_USER_NOTIF: return "user-notif"
        case GHOSTRUN_SECCOMP_RET_TRACE: return "trace"
        case GHOSTRUN_SECCOMP_RET_LOG: return "log"
        case GHOSTRUN_SECCOMP_RET_ALLOW: return "allow"
        default: return String(format: "unknown-0x%08x", code)
        }
    }

    /// Parses a seccomp record from `/dev/kmsg` (`6,1234,5678901,-;audit: type=1326 ...`), from `dmesg`
    /// (`[  929.378192] audit: type=1326 ...`) or from audit.log (`type=SECCOMP msg=audit(...): ...`).
    /// Nil for any other record.
    public static func parse(line: String) -> AuditRecord? {
        // kmsg appends dictionary lines (" SUBSYSTEM=...") after the first newline; they are not the record.
        var text = Substring(line.prefix(while: { $0 != "\n" }))
        var kernelTime: UInt64?
        if let semicolon = text.firstIndex(of: ";"),
            case let prefix = text[..<semicolon].split(separator: ",", omittingEmptySubsequences: false),
            prefix.count >= 3, prefix[0...2].allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) })
        {
            kernelTime = UInt64(prefix[2])
            text = text[text.index(after: semicolon)...]
        } else if text.first == "[", let close = text.firstIndex(of: "]") {
            // dmesg prints the same clock as seconds with six decimals.
            let stamp = text[text.index(after: text.startIndex)..<close].trimmingCharacters(in: .whitespaces)
            let parts = stamp.split(separator: ".")
            if parts.count == 2, let seconds = UInt64(parts[0]), let micros = UInt64(parts[1]) {
                kernelTime = seconds * 1_000_000 + micros
            }
            text = text[text.index(after: close)...]
        }
        guard text.contains("type=1326") || text.contains("type=SECCOMP") else { return nil }
        let fields = keyValues(text)
        guard let pid = fields["pid"].flatMap({ Int32($0) }), let syscall = fields["syscall"].flatMap({ Int($0) }),
            let codeText = fields["code"], let code = hexNumber(codeText)
        else { return nil }
        let exe = fields["exe"].map(untrusted)
        var record = AuditRecord(
            pid: pid, comm: fields["comm"].map(untrusted) ?? "", exe: exe == "(null)" ? nil : exe,
            syscallNumber: syscall, arch: fields["arch"].flatMap(hexNumber),
            signal: fields["sig"].flatMap({ Int($0) }) ?? 0, code: code, kernelTimeUsec: kernelTime)
        // "audit(1795279813.274:2):" — seconds.millis:serial.
        if let stamp = text.range(of: "audit("), let end = text[stamp.upperBound...].firstIndex(of: ")") {
            let parts = text[stamp.upperBound..<end].split(separator: ":")
            if parts.count == 2 {
                record.serial = UInt64(parts[1])
                let time = parts[0].split(separator: ".")
                if time.count == 2, let seconds = UInt64(time[0]), let millis = UInt64(time[1]) {
                    record.wallTimeMs = seconds * 1000 + millis
                }
            }
        }
        return record
    }

    /// Parses the payload of a NETLINK_AUDIT message (`audit(...): auid=...`) of the given message type.
    static func parse(netlinkType: UInt16, payload: String) -> AuditRecord? {
        guard netlinkType == GHOSTRUN_AUDIT_SECCOMP else { return nil }
        return parse(line: "type=1326 msg=" + payload)
    }

    /// `key=value` and `key="quoted value"` pairs.
    private static func keyValues(_ text: Substring) -> [String: String] {
        var result: [String: String] = [:]
        var index = text.startIndex
        while index < text.endIndex {
            while index < text.endIndex, text[index] == " " { index = text.index(after: index) }
            let keyStart = index
            while index < text.endIndex, text[index] != "=", text[index] != " " { index = text.index(after: index) }
            guard index < text.endIndex, text[index] == "=" else { continue }
            let key = String(text[keyStart..<index])
            index = text.index(after: index)
            if index < text.endIndex, text[index] == "\"" {
                let valueStart = text.index(after: index)
                let valueEnd = text[valueStart...].firstIndex(of: "\"") ?? text.endIndex
                // Quotes are kept so `untrusted` can tell a quoted string from a hex-encoded one.
                result[key] = "\"" + text[valueStart..<valueEnd] + "\""
                index = valueEnd < text.endIndex ? text.index(after: valueEnd) : valueEnd
            } else {
                let valueStart = index
                while index < text.endIndex, text[index] != " " { index = text.index(after: index) }
                result[key] = String(text[valueStart..<index])
            }
        }
        return result
    }

    /// Audit prints strings with spaces, quotes or control characters as bare hex, others in quotes.
    private static func untrusted(_ value: String) -> String {
        if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 {
            return String(value.dropFirst().dropLast())
        }
        let digits = Array(value.utf8)
        guard digits.count % 2 == 0, !digits.isEmpty, value.allSatisfy(\.isHexDigit) else { return value }
        var bytes: [UInt8] = []
        for offset in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[offset..<offset + 2], as: UTF8.self), radix: 16) else {
                return value
            }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexNumber(_ text: String) -> UInt32? {
        let digits = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
        return UInt32(digits, radix: 16)
    }
}

extension AuditRecord {
    /// The record as a denial of the run that started at `runStartKernelUsec` (from `kernelMonotonicNowUsec()`).
    public func denial(runStartKernelUsec: UInt64) -> Denial {
        let name = Self.syscallName(number: syscallNumber, arch: arch) ?? "syscall_\(syscallNumber)"
        var timeMs = 0
        if let kernelTimeUsec {
            // Clamped: a netlink record's time comes from the kernel's coarse wall clock and may read a
            // few milliseconds early, but a run's denial cannot precede the run.
            timeMs = max(0, Int((Int64(bitPattern: kernelTimeUsec) - Int64(bitPattern: runStartKernelUsec)) / 1000))
        }
        return Denial(
            pid: pid, comm: comm, exe: exe, syscall: name, syscallNumber: syscallNumber, action: action,
            errno: errnoValue.map { ErrnoName.name(of: $0) ?? String($0) }, signal: signal != 0 ? signal : nil,
            timeMs: timeMs, source: "audit")
    }

    /// Resolves the number in the record's architecture: a 32-bit process on a 64-bit kernel numbers
    /// its syscalls differently.
    static func syscallName(number: Int, arch: UInt32?) -> String? {
        guard let arch, arch != seccomp_arch_native() else { return SyscallName.name(of: number) }
        guard let pointer = seccomp_syscall_resolve_num_arch(arch, Int32(number)) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// CLOCK_MONOTONIC in microseconds: the clock `/dev/kmsg` stamps its records with.
    public static func kernelMonotonicNowUsec() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}

/// Collects the seccomp records the kernel writes after `KernelAuditLog.subscribe()`.
///
/// Every subscription sees every record: concurrent runs filter by the pids they observed.
public final class AuditSubscription: Sendable {
    private struct State {
        var records: [AuditRecord] = []
        var cancelled = false
    }

    private let log: KernelAuditLog
    private let state = ConditionBox(State())
    /// CLOCK_MONOTONIC (µs) at subscription: records stamped before it were written before the
    /// subscription and read late by the reader, and are dropped. Also a run start for `denial(runStartKernelUsec:)`.
    public let startUsec: UInt64

    init(log: KernelAuditLog, startUsec: UInt64) {
        self.log = log
        self.startUsec = startUsec
    }

    func deliver(_ record: AuditRecord) {
        // Netlink records are placed on the clock by the kernel's coarse wall clock (one jiffy, up to
        // 10 ms, behind): allow for that.
        if let time = record.kernelTimeUsec, time + 20_000 < startUsec { return }
        state.withLock { state in
            guard !state.cancelled else { return }
            state.records.append(record)
        }
    }

    /// Returns and forgets the records collected so far, after reading what the kernel has already written.
    public func drain() -> [AuditRecord] {
        log.catchUp()
        return state.withLock { state in
            defer { state.records.removeAll() }
            return state.records
        }
    }

    /// Waits until a collected (not yet drained) record satisfies `predicate`, or `timeout` passes.
    ///
    /// The kernel hands audit records to its `kauditd` thread, which prints them a little after the
    /// syscall was denied: a runner that saw its process die of SIGSYS waits here for the record.
    @discardableResult
    public func wait(timeout: Duration, for predicate: (AuditRecord) -> Bool) -> Bool {
        let deadline = Date(
            timeIntervalSinceNow: Double(timeout.components.seconds)
                + Double(timeout.components.attoseconds) / 1e18)
        log.catchUp()
        return state.wait(
            until: deadline, for: { $0.cancelled || $0.records.contains(where: predicate) },
            then: { $0.records.contains(where: predicate) })
    }

    /// Stops collecting; later records are dropped.
    public func cancel() {
        state.withLock { state in
            state.cancelled = true
            state.records.removeAll()
        }
        log.remove(self)
    }

    deinit { log.remove(self) }
}

/// Reads seccomp audit records on a background thread.
///
/// Two sources, both read when available, with records deduplicated by their audit serial:
/// - the NETLINK_AUDIT read-log multicast group (needs CAP_AUDIT_READ): every record, never rate-limited;
/// - `/dev/kmsg` (needs root or CAP_SYSLOG): records stamped with the monotonic clock, but printed through
///   `printk_ratelimit()` when no audit daemon runs, so under load (10 per 5 s) the kernel drops records
///   with "kauditd_printk_skb: N callbacks suppressed".
///
/// Opened lazily on first use and positioned at the end, so records from before ghostrun started are
/// skipped. The thread blocks in poll(2) while nothing is logged and does not keep the process alive.
public final class KernelAuditLog: Sendable {
    /// The process-wide reader, opened on first use; pass it (or another instance) to whatever needs records.
    ///
    /// One reader per process is a choice, not a kernel rule (the kernel copies every record to each socket in the
    /// multicast group): one thread reads and parses each record once and hands it to every run's subscription,
    /// where a reader per run would parse every record once per concurrent run; and a reader opened late starts at
    /// the end of /dev/kmsg, so runs share one that has been reading since the first of them started.
    public static let shared = KernelAuditLog()

    /// Whether records can be read from at least one source.
    public var isAvailable: Bool { kmsgFD >= 0 || netlinkFD >= 0 }
    /// Why records cannot be read, with what to do about it; nil when available.
    public var unavailableReason: String? { isAvailable ? nil : sourceProblems.joined(separator: "; ") }
    /// The sources being read: `netlink`, `kmsg`.
    public var sources: [String] { (netlinkFD >= 0 ? ["netlink"] : []) + (kmsgFD >= 0 ? ["kmsg"] : []) }
    /// Why a source could not be opened, for `ghostrun doctor`.
    public var sourceProblems: [String] { sourceErrors.map(\.description) }
    /// The same, as errors (which call failed, the errno, the hint).
    public let sourceErrors: [HarnessError]

    private let kmsgFD: Int32
    private let netlinkFD: Int32
    /// A pipe whose write end `close()` closes: the reader thread polls the read end beside the sources and ends.
    /// -1 without a thread.
    private let stopRead: Int32
    private let stopWrite: Int32
    /// Signalled by the reader thread as it ends.
    private let finished = DispatchSemaphore(value: 0)
    private let closed = Mutex(false)
    private let subscribers = Mutex<[ObjectIdentifier: Weak]>([:])
    /// Held while reading the fds (the reader thread and `catchUp` callers take turns); holds the serials of
    /// records already published, so a record read from both sources is handed on once.
    private let reading = Mutex(SerialFilter())

    private struct Weak: Sendable {
        weak var subscription: AuditSubscription?
    }

    /// The audit serials seen lately (the newest 4096 at most).
    private struct SerialFilter {
        var recent = Set<UInt64>()
        var order: [UInt64] = []

        /// Whether `serial` is new; remembers it.
        mutating func isNew(_ serial: UInt64) -> Bool {
            guard recent.insert(serial).inserted else { return false }
            order.append(serial)
            if order.count > 4096 {
                let dropped = order.prefix(1024)
                order.removeFirst(1024)
                recent.subtract(dropped)
            }
            return true
        }
    }

    /// Opens the sources and starts the reader thread, which runs until `close()` (the shared reader's, as long as
    /// the process). An instance other than `shared` must be closed: its thread holds it.
    ///
    /// - Parameters:
    ///   - kmsgPath: the kernel log device (a test may pass another file).
    ///   - netlink: whether to join the audit multicast group too.
    public init(kmsgPath: String = "/dev/kmsg", netlink: Bool = true) {
        var problems: [HarnessError] = []
        switch System.open(kmsgPath, O_RDONLY | O_NONBLOCK) {
        case .success(let fd):
            lseek(fd, 0, SEEK_END)
            kmsgFD = fd
        case .failure(let error):
            let denied = error == .notPermitted || error == .permissionDenied
            problems.append(
                HarnessError(
                    step: "audit log", syscall: "open", path: kmsgPath, errno: error, "cannot open \(kmsgPath)",
                    hint: denied
                        ? "reading kernel records needs root or CAP_SYSLOG; check kernel.dmesg_restrict" : nil))
            kmsgFD = -1
        }
        if netlink {
            switch Self.openNetlink() {
            case .success(let fd): netlinkFD = fd
            case .failure(let problem):
                netlinkFD = -1
                problems.append(problem)
            }
        } else {
            netlinkFD = -1
        }
        sourceErrors = problems
        var stop: [Int32] = [-1, -1]
        guard kmsgFD >= 0 || netlinkFD >= 0, ghostrun_pipe_cloexec(&stop) == 0 else {
            stopRead = -1
            stopWrite = -1
            return
        }
        stopRead = stop[0]
        stopWrite = stop[1]
        let thread = Thread { [self] in
            ghostrun_set_thread_name("ghostrun-audit")
            self.run()
            self.finished.signal()
        }
        thread.name = "ghostrun-audit"
        thread.stackSize = 256 * 1024
        thread.start()
    }

    /// Joins the audit read-log multicast group (AUDIT_NLGRP_READLOG).
    private static func openNetlink() -> Result<Int32, HarnessError> {
        let opened = valueOrErrno {
            socket(
                AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                GHOSTRUN_NETLINK_AUDIT)
        }
        let fd: Int32
        switch opened {
        case .success(let opened): fd = opened
        case .failure(let error):
            return .failure(
                HarnessError(step: "audit log", syscall: "socket", errno: error, "cannot open a NETLINK_AUDIT socket"))
        }
        // A flood of records from other runs must not overflow the socket before the thread reads it.
        var size: Int32 = 4 * 1024 * 1024
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = ghostrun_sockaddr_nl()
        address.nl_family = UInt16(AF_NETLINK)
        // nl_groups is a bit mask of groups 1...32.
        address.nl_groups = 1 << (GHOSTRUN_AUDIT_NLGRP_READLOG - 1)
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                nothingOrErrno { bind(fd, address, socklen_t(MemoryLayout<ghostrun_sockaddr_nl>.size)) }
            }
        }
        if case .failure(let error) = bound {
            System.close(fd)
            return .failure(
                HarnessError(
                    step: "audit log", syscall: "bind", errno: error, "cannot join the audit multicast group",
                    hint: error == .notPermitted
                        ? "needs CAP_AUDIT_READ in the initial user and network namespace" : nil))
        }
        return .success(fd)
    }

    /// Starts collecting seccomp records written from now on. Call `cancel()` when done.
    public func subscribe() -> AuditSubscription {
        let subscription = AuditSubscription(log: self, startUsec: AuditRecord.kernelMonotonicNowUsec())
        subscribers.withLock { $0[ObjectIdentifier(subscription)] = Weak(subscription: subscription) }
        return subscription
    }

    func remove(_ subscription: AuditSubscription) {
        _ = subscribers.withLock { $0.removeValue(forKey: ObjectIdentifier(subscription)) }
    }

    private func run() {
        var descriptors = [stopRead, kmsgFD, netlinkFD].filter { $0 >= 0 }.map {
            pollfd(fd: $0, events: Int16(POLLIN), revents: 0)
        }
        while true {
            for index in descriptors.indices { descriptors[index].revents = 0 }
            guard case .success = valueOrErrno({ poll(&descriptors, nfds_t(descriptors.count), -1) }) else { return }
            if descriptors[0].revents != 0 { return }
            catchUp()
        }
    }

    /// Stops the reader thread and closes the sources; subscriptions see no more records. Idempotent. The shared
    /// reader is never closed (runs of this process share it until it exits).
    public func close() {
        let first = closed.withLock { wasClosed in
            defer { wasClosed = true }
            return !wasClosed
        }
        guard first else { return }
        if stopWrite >= 0 {
            System.close(stopWrite)  // POLLHUP on the read end
            finished.wait()
            System.close(stopRead)
        }
        reading.withLock { _ in
            if kmsgFD >= 0 { System.close(kmsgFD) }
            if netlinkFD >= 0 { System.close(netlinkFD) }
        }
    }

    /// Whether `close()` was called: reads after it would use closed descriptors.
    private var isClosed: Bool { closed.withLock { $0 } }

    /// Reads every record available now from both sources and hands the seccomp ones to the subscribers.
    func catchUp() {
        reading.withLock { serials in
            // `close()` marks the log closed before it takes this lock to close the descriptors.
            guard !isClosed else { return }
            // One read returns one kmsg record (at most 8 KiB, CONSOLE_EXT_LOG_MAX) or one netlink datagram.
            var buffer = [UInt8](repeating: 0, count: 16 * 1024)
            // Netlink first: it gets each record before printk does, and drops none.
            if netlinkFD >= 0 {
                while true {
                    let received = buffer.withUnsafeMutableBytes { raw in
                        valueOrErrno { recv(netlinkFD, raw.baseAddress, raw.count, 0) }
                    }
                    switch received {
                    // ENOBUFS: the socket overflowed and records were lost; the next recv continues.
                    case .failure(.noBufferSpace): continue
                    case .failure: break
                    case .success(let count) where count < MemoryLayout<ghostrun_nlmsghdr>.size: break
                    case .success(let count):
                        deliver(netlinkMessage: buffer[0..<count], serials: &serials)
                        continue
                    }
                    break
                }
            }
            if kmsgFD >= 0 {
                while true {
                    let read = buffer.withUnsafeMutableBytes { System.read(kmsgFD, into: $0) }
                    switch read {
                    // EPIPE: the ring buffer overwrote records we had not read yet; the next read continues
                    // at the oldest record still there.
                    case .failure(.brokenPipe): continue
                    case .failure, .success(0): break
                    case .success(let count):
                        if let record = AuditRecord.parse(line: String(decoding: buffer[0..<count], as: UTF8.self)) {
                            publish(record, serials: &serials)
                        }
                        continue
                    }
                    break
                }
            }
        }
    }

    /// A datagram may hold several netlink messages, each a `nlmsghdr` and its payload.
    private func deliver(netlinkMessage bytes: ArraySlice<UInt8>, serials: inout SerialFilter) {
        let headerSize = MemoryLayout<ghostrun_nlmsghdr>.size
        let align = Int(GHOSTRUN_NLMSG_ALIGNTO)
        var offset = bytes.startIndex
        while offset + headerSize <= bytes.endIndex {
            let header = bytes[offset..<offset + headerSize].withUnsafeBytes {
                $0.loadUnaligned(as: ghostrun_nlmsghdr.self)
            }
            let length = max(headerSize, Int(header.nlmsg_len))
            let type = header.nlmsg_type
            let end = min(bytes.endIndex, offset + length)
            let payload = String(decoding: bytes[(offset + headerSize)..<end].prefix(while: { $0 != 0 }), as: UTF8.self)
            if var record = AuditRecord.parse(netlinkType: type, payload: payload) {
                // Netlink records carry wall time only: placed on the monotonic clock by their age.
                if let wall = record.wallTimeMs {
                    var now = timespec()
                    clock_gettime(CLOCK_REALTIME, &now)
                    let nowMs = UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
                    let ageUsec = nowMs > wall ? (nowMs - wall) * 1000 : 0
                    let monotonic = AuditRecord.kernelMonotonicNowUsec()
                    record.kernelTimeUsec = monotonic > ageUsec ? monotonic - ageUsec : 0
                }
                publish(record, serials: &serials)
            }
            // Messages are padded to NLMSG_ALIGNTO bytes (NLMSG_ALIGN).
            offset += (length + align - 1) & ~(align - 1)
        }
    }

    /// Hands a record to every subscriber once, however many sources delivered it. Called while reading.
    private func publish(_ record: AuditRecord, serials: inout SerialFilter) {
        if let serial = record.serial, !serials.isNew(serial) { return }
        let targets = subscribers.withLock { $0.values.compactMap(\.subscription) }
        for subscription in targets { subscription.deliver(record) }
    }
}
