import Foundation
import Glibc

/// Parsers for `/proc/PID/*` files and cheap readers for them.
///
/// The readers run every sampling round (20 ms) on every process of a run, so they go through one
/// open/read/close chokepoint instead of Foundation's file APIs, and every one of them returns nil
/// when the process is gone: a process may exit between any two reads, and that is not an error.
public enum ProcFiles {
    /// The fields of `/proc/PID/stat` the observer needs.
    public struct StatFields: Equatable, Sendable {
        /// The command name between the parentheses (may contain spaces and parentheses).
        public var comm: String
        /// One-letter state, as in `/proc/PID/status`.
        public var state: String
        public var ppid: Int32
        public var pgrp: Int32
        /// User and system CPU time in clock ticks (`sysconf(_SC_CLK_TCK)`).
        public var utime: UInt64
        public var stime: UInt64
        /// Start time after boot in clock ticks: with the pid, it identifies a process across pid reuse.
        public var startTime: UInt64
        public var numThreads: Int

        public init(
            comm: String, state: String, ppid: Int32, pgrp: Int32, utime: UInt64, stime: UInt64, startTime: UInt64,
            numThreads: Int
        ) {
            self.comm = comm
            self.state = state
            self.ppid = ppid
            self.pgrp = pgrp
            self.utime = utime
            self.stime = stime
            self.startTime = startTime
            self.numThreads = numThreads
        }
    }

    // MARK: - Pure parsers

    /// Parses the text of `/proc/PID/status`; fields that are missing keep their defaults.
    public static func parseStatus(_ text: String) -> ProcStatus {
        var status = ProcStatus()
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[line.startIndex..<colon]
            let value = line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" })
            switch key {
            case "Name": status.name = String(value)
            // "S (sleeping)": only the letter is kept; the words are the kernel's description of it.
            case "State": status.state = value.first.map { String($0) } ?? ""
            case "Pid": status.pid = Int32(value) ?? 0
            case "PPid": status.ppid = Int32(value) ?? 0
            case "Uid": status.uid = numbers(value)
            case "Gid": status.gid = numbers(value)
            case "CapInh": status.capInh = UInt64(value, radix: 16) ?? 0
            case "CapPrm": status.capPrm = UInt64(value, radix: 16) ?? 0
            case "CapEff": status.capEff = UInt64(value, radix: 16) ?? 0
            case "CapBnd": status.capBnd = UInt64(value, radix: 16) ?? 0
            case "CapAmb": status.capAmb = UInt64(value, radix: 16) ?? 0
            case "NoNewPrivs": status.noNewPrivs = Int(value) ?? 0
            case "Seccomp": status.seccomp = Int(value) ?? 0
            case "Seccomp_filters": status.seccompFilters = Int(value) ?? 0
            case "Threads": status.threads = Int(value) ?? 0
            default: continue
            }
        }
        return status
    }

    /// Parses `/proc/PID/stat`; nil when the line is malformed.
    ///
    /// The command name is split off at the last `)`: a process may name itself `a) (b` and the
    /// fields after it are numbers only, so the last parenthesis is the only reliable delimiter.
    public static func parseStat(_ text: String) -> StatFields? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close else {
            return nil
        }
        let comm = String(text[text.index(after: open)..<close])
        // Fields from 3 (state) on; index 0 here is field 3 in proc(5).
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count > 19 else { return nil }
        guard let ppid = Int32(fields[1]), let pgrp = Int32(fields[2]), let utime = UInt64(fields[11]),
            let stime = UInt64(fields[12]), let threads = Int(fields[17]), let start = UInt64(fields[19])
        else { return nil }
        return StatFields(
            comm: comm, state: String(fields[0]), ppid: ppid, pgrp: pgrp, utime: utime, stime: stime,
            startTime: start, numThreads: threads)
    }

    /// The first field of `/proc/PID/syscall`: a syscall number, `running`, or `-1` (blocked, but not in a syscall).
    public static func parseSyscall(_ text: String) -> String? {
        let first = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first
        return first.map(String.init)
    }

    /// Pids in a `cgroup.procs` or `children` file (whitespace-separated decimal numbers).
    public static func parsePids(_ text: String) -> [Int32] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
    }

    private static func numbers(_ value: Substring) -> [UInt32] {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt32($0) }
    }

    // MARK: - Live readers (nil when the process is gone)

    /// Parsed `/proc/PID/status`.
    public static func status(pid: Int32) -> ProcStatus? {
        read("/proc/\(pid)/status").map(parseStatus)
    }

    /// Parsed `/proc/PID/stat`.
    public static func stat(pid: Int32) -> StatFields? {
        read("/proc/\(pid)/stat").flatMap(parseStat)
    }

    /// The kernel function the process sleeps in; nil when it is running (the kernel prints `0`) or gone.
    public static func wchan(pid: Int32) -> String? {
        guard let text = read("/proc/\(pid)/wchan") else { return nil }
        let symbol = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return symbol.isEmpty || symbol == "0" ? nil : symbol
    }

    /// First field of `/proc/PID/syscall` (needs ptrace access to the process, which root has).
    public static func syscall(pid: Int32) -> String? {
        read("/proc/\(pid)/syscall").flatMap(parseSyscall)
    }

    /// The executable's path; nil for kernel threads, zombies and gone processes.
    public static func exe(pid: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = retryingEINTR { readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1) }
        guard length > 0 else { return nil }
        let path = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // The kernel appends this to an unlinked executable, e.g. `go run`'s temporary binary.
        let deleted = " (deleted)"
        return path.hasSuffix(deleted) ? String(path.dropLast(deleted.count)) : path
    }

    /// `/proc/PID/comm` without its newline.
    public static func comm(pid: Int32) -> String? {
        guard let text = read("/proc/\(pid)/comm") else { return nil }
        return text.hasSuffix("\n") ? String(text.dropLast()) : text
    }

    /// The kernel stack of the process (`/proc/PID/stack`); readable by root only.
    public static func stack(pid: Int32) -> String? {
        read("/proc/\(pid)/stack", limit: 64 * 1024)
    }

    /// Children of every thread of the process: a child belongs to the thread that forked it, so the
    /// main thread's `children` file alone misses most of a Go program's children.
    public static func children(pid: Int32) -> [Int32] {
        let taskDirectory = "/proc/\(pid)/task"
        guard let directory = opendir(taskDirectory) else { return [] }
        defer { closedir(directory) }
        var result: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let tid = Int32(name) else { continue }
            if let text = read("\(taskDirectory)/\(tid)/children") {
                result.append(contentsOf: parsePids(text))
            }
        }
        return result
    }

    /// The pids listed in a `cgroup.procs` file; empty when the cgroup is gone.
    public static func listPids(cgroupProcsPath: String) -> [Int32] {
        read(cgroupProcsPath, limit: 1024 * 1024).map(parsePids) ?? []
    }

    // MARK: - Chokepoint

    /// Reads a whole small file with open/read/close, retrying EINTR; nil on any error.
    ///
    /// Files under /proc report size 0 and are generated on read, so the file is read until EOF into a
    /// stack buffer first; only files larger than that (a long stack) grow a heap buffer.
    public static func read(_ path: String, limit: Int = 16 * 1024) -> String? {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let chunk = 4096
        var overflow: [UInt8] = []
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: chunk) { buffer -> String? in
            var filled = 0
            while true {
                if filled == chunk {
                    overflow.append(contentsOf: buffer[0..<filled])
                    filled = 0
                    if overflow.count >= limit { break }
                }
                let count = retryingEINTR { Glibc.read(fd, buffer.baseAddress! + filled, chunk - filled) }
                if count < 0 { return nil }
                if count == 0 { break }
                filled += count
            }
            if overflow.isEmpty {
                return String(decoding: UnsafeBufferPointer(rebasing: buffer[0..<filled]), as: UTF8.self)
            }
            overflow.append(contentsOf: buffer[0..<filled])
            return String(decoding: overflow, as: UTF8.self)
        }
    }

    /// Calls `body` again while it fails with EINTR (a signal arrived, e.g. SIGCHLD from the run).
    @inline(__always)
    static func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let result = body()
            if result >= 0 || errno != EINTR { return result }
        }
    }
}
