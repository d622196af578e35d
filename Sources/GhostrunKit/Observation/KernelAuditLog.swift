import CSeccomp
import Foundation
import Glibc

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
        guard action == "errno", code & 0xffff != 0 else { return nil }
        return Int32(code & 0xffff)
    }

    /// Names a `SECCOMP_RET_*` action from a filter return value.
    public static func actionName(code: UInt32) -> String {
        switch code & 0xffff_0000 {
        case 0x8000_0000: return "kill-process"
        case 0x0000_0000: return "kill-thread"
        case 0x0003_0000: return "trap"
        case 0x0005_0000: return "errno"
        case 0x7fc0_0000: return "user-notif"
        case 0x7ff0_0000: return "trace"
        case 0x7ffc_0000: return "log"
        case 0x7fff_0000: return "allow"
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
        guard netlinkType == 1326 else { return nil }
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
public final class AuditSubscription: @unchecked Sendable {
    private let log: KernelAuditLog
    private let condition = NSCondition()
    private var records: [AuditRecord] = []
    private var cancelled = false
    /// CLOCK_MONOTONIC (µs) at subscription: records stamped before it were written before the
    /// subscription and read late by the reader, and are dropped. Also a run start for `denial(runStartKernelUsec:)`.
    public let startUsec: UInt64

    init(log: KernelAuditLog, startUsec: UInt64) {
        self.log = log
        self.startUsec = startUsec
    }

    func deliver(_ record: AuditRecord) {
        condition.lock()
        defer { condition.unlock() }
        guard !cancelled else { return }
        // Netlink records are placed on the clock by the kernel's coarse wall clock (one jiffy, up to
        // 10 ms, behind): allow for that.
        if let time = record.kernelTimeUsec, time + 20_000 < startUsec { return }
        records.append(record)
        condition.broadcast()
    }

    /// Returns and forgets the records collected so far, after reading what the kernel has already written.
    public func drain() -> [AuditRecord] {
        log.catchUp()
        condition.lock()
        defer { condition.unlock() }
        let result = records
        records.removeAll()
        return result
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
        condition.lock()
        defer { condition.unlock() }
        while !records.contains(where: predicate) {
            if cancelled || !condition.wait(until: deadline) { return records.contains(where: predicate) }
        }
        return true
    }

    /// Stops collecting; later records are dropped.
    public func cancel() {
        condition.lock()
        cancelled = true
        records.removeAll()
        condition.broadcast()
        condition.unlock()
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
public final class KernelAuditLog: @unchecked Sendable {
    /// The process-wide reader.
    public static let shared = KernelAuditLog(kmsgPath: "/dev/kmsg", netlink: true)

    /// Whether records can be read from at least one source.
    public var isAvailable: Bool { kmsgFD >= 0 || netlinkFD >= 0 }
    /// Why records cannot be read, with what to do about it; nil when available.
    public var unavailableReason: String? { isAvailable ? nil : sourceProblems.joined(separator: "; ") }
    /// The sources being read: `netlink`, `kmsg`.
    public var sources: [String] { (netlinkFD >= 0 ? ["netlink"] : []) + (kmsgFD >= 0 ? ["kmsg"] : []) }
    /// Why a source could not be opened, for `ghostrun doctor`.
    public let sourceProblems: [String]

    private let kmsgFD: Int32
    private let netlinkFD: Int32
    private let lock = NSLock()
    private var subscribers: [ObjectIdentifier: Weak] = [:]
    /// Serializes reading the fds between the reader thread and `catchUp`; guards the serials below.
    private let readLock = NSLock()
    private var recentSerials = Set<UInt64>()
    private var serialOrder: [UInt64] = []

    private struct Weak {
        weak var subscription: AuditSubscription?
    }

    init(kmsgPath: String, netlink: Bool) {
        var problems: [String] = []
        let opened = ProcFiles.retryingEINTR { open(kmsgPath, O_RDONLY | O_NONBLOCK | O_CLOEXEC) }
        if opened < 0 {
            let code = errno
            var reason = "cannot open \(kmsgPath): \(String(cString: strerror(code)))"
            if code == EPERM || code == EACCES {
                reason += " (reading kernel records needs root or CAP_SYSLOG; check kernel.dmesg_restrict)"
            }
            problems.append(reason)
        } else {
            lseek(opened, 0, SEEK_END)
        }
        kmsgFD = opened
        if netlink {
            switch Self.openNetlink() {
            case .success(let fd): netlinkFD = fd
            case .failure(let problem):
                netlinkFD = -1
                problems.append(problem.description)
            }
        } else {
            netlinkFD = -1
        }
        sourceProblems = problems
        guard kmsgFD >= 0 || netlinkFD >= 0 else { return }
        let thread = Thread { [self] in self.run() }
        thread.name = "ghostrun-audit"
        thread.stackSize = 256 * 1024
        thread.start()
    }

    /// Joins the audit read-log multicast group (AUDIT_NLGRP_READLOG).
    private static func openNetlink() -> Result<Int32, NetlinkProblem> {
        let netlinkAudit: Int32 = 9
        let fd = socket(
            AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
            netlinkAudit)
        guard fd >= 0 else {
            return .failure(NetlinkProblem("cannot open a NETLINK_AUDIT socket: \(String(cString: strerror(errno)))"))
        }
        // A flood of records from other runs must not overflow the socket before the thread reads it.
        var size: Int32 = 4 * 1024 * 1024
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        // struct sockaddr_nl { sa_family_t nl_family; unsigned short nl_pad; __u32 nl_pid; __u32 nl_groups; },
        // which Glibc does not import into Swift: filled byte by byte.
        var address = [UInt8](repeating: 0, count: 12)
        address.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt16(AF_NETLINK), toByteOffset: 0, as: UInt16.self)
            raw.storeBytes(of: UInt32(1), toByteOffset: 8, as: UInt32.self)  // group 1 = AUDIT_NLGRP_READLOG
        }
        let bound = address.withUnsafeBytes { raw in
            bind(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            var reason = "cannot join the audit multicast group: \(String(cString: strerror(code)))"
            if code == EPERM { reason += " (needs CAP_AUDIT_READ in the initial user and network namespace)" }
            return .failure(NetlinkProblem(reason))
        }
        return .success(fd)
    }

    struct NetlinkProblem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Starts collecting seccomp records written from now on. Call `cancel()` when done.
    public func subscribe() -> AuditSubscription {
        let subscription = AuditSubscription(log: self, startUsec: AuditRecord.kernelMonotonicNowUsec())
        lock.lock()
        subscribers[ObjectIdentifier(subscription)] = Weak(subscription: subscription)
        lock.unlock()
        return subscription
    }

    func remove(_ subscription: AuditSubscription) {
        lock.lock()
        subscribers[ObjectIdentifier(subscription)] = nil
        lock.unlock()
    }

    private func run() {
        var descriptors = [kmsgFD, netlinkFD].filter { $0 >= 0 }.map {
            pollfd(fd: $0, events: Int16(POLLIN), revents: 0)
        }
        while true {
            for index in descriptors.indices { descriptors[index].revents = 0 }
            let ready = poll(&descriptors, nfds_t(descriptors.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            catchUp()
        }
    }

    /// Reads every record available now from both sources and hands the seccomp ones to the subscribers.
    func catchUp() {
        readLock.lock()
        defer { readLock.unlock() }
        // One read returns one kmsg record (at most 8 KiB, CONSOLE_EXT_LOG_MAX) or one netlink datagram.
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        // Netlink first: it gets each record before printk does, and drops none.
        if netlinkFD >= 0 {
            while true {
                let count = buffer.withUnsafeMutableBytes { raw in
                    ProcFiles.retryingEINTR { recv(netlinkFD, raw.baseAddress, raw.count, 0) }
                }
                if count < 0 {
                    // ENOBUFS: the socket overflowed and records were lost; the next recv continues.
                    if errno == ENOBUFS { continue }
                    break
                }
                if count < 16 { break }
                deliver(netlinkMessage: buffer[0..<count])
            }
        }
        if kmsgFD >= 0 {
            while true {
                let count = buffer.withUnsafeMutableBytes { raw in
                    ProcFiles.retryingEINTR { Glibc.read(kmsgFD, raw.baseAddress, raw.count) }
                }
                if count < 0 {
                    // EPIPE: the ring buffer overwrote records we had not read yet; the next read continues
                    // at the oldest record still there.
                    if errno == EPIPE { continue }
                    break
                }
                if count == 0 { break }
                if let record = AuditRecord.parse(line: String(decoding: buffer[0..<count], as: UTF8.self)) {
                    publish(record)
                }
            }
        }
    }

    /// A datagram may hold several netlink messages: nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid }.
    private func deliver(netlinkMessage bytes: ArraySlice<UInt8>) {
        var offset = bytes.startIndex
        while offset + 16 <= bytes.endIndex {
            let length = bytes[offset..<offset + 4].enumerated().reduce(UInt32(0)) {
                $0 | UInt32($1.element) << (8 * UInt32($1.offset))
            }
            let type = UInt16(bytes[offset + 4]) | UInt16(bytes[offset + 5]) << 8
            let end = min(bytes.endIndex, offset + max(16, Int(length)))
            let payload = String(decoding: bytes[(offset + 16)..<end].prefix(while: { $0 != 0 }), as: UTF8.self)
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
                publish(record)
            }
            // Messages are padded to 4 bytes (NLMSG_ALIGN).
            offset += (max(16, Int(length)) + 3) & ~3
        }
    }

    /// Hands a record to every subscriber once, however many sources delivered it. Called under `readLock`.
    private func publish(_ record: AuditRecord) {
        if let serial = record.serial {
            guard recentSerials.insert(serial).inserted else { return }
            serialOrder.append(serial)
            if serialOrder.count > 4096 {
                let dropped = serialOrder.prefix(1024)
                serialOrder.removeFirst(1024)
                recentSerials.subtract(dropped)
            }
        }
        lock.lock()
        let targets = subscribers.values.compactMap(\.subscription)
        lock.unlock()
        for subscription in targets { subscription.deliver(record) }
    }
}
