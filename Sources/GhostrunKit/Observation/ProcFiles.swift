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
    ///
    /// Works on the UTF-8 bytes: this runs for every process every round, and splitting the ~55 lines
    /// into Substrings cost ten times more than reading the file.
    public static func parseStatus(_ text: String) -> ProcStatus {
        var status = ProcStatus()
        var text = text
        text.withUTF8 { bytes in
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
                defer { lineStart = lineEnd + 1 }
                var colon = lineStart
                while colon < lineEnd, bytes[colon] != UInt8(ascii: ":") { colon += 1 }
                guard colon < lineEnd else { continue }
                var valueStart = colon + 1
                while valueStart < lineEnd, bytes[valueStart] == UInt8(ascii: "\t") || bytes[valueStart] == 32 {
                    valueStart += 1
                }
                let key = UnsafeBufferPointer(rebasing: bytes[lineStart..<colon])
                let value = UnsafeBufferPointer(rebasing: bytes[valueStart..<lineEnd])
                // The first byte and the length narrow the candidates before any comparison.
                switch (key.first ?? 0, key.count) {
                case (UInt8(ascii: "N"), 4) where matches(key, "Name"):
                    status.name = String(decoding: value, as: UTF8.self)
                case (UInt8(ascii: "S"), 5) where matches(key, "State"):
                    // "S (sleeping)": only the letter is kept; the words are the kernel's description of it.
                    status.state = value.first.map { String(UnicodeScalar($0)) } ?? ""
                case (UInt8(ascii: "P"), 3) where matches(key, "Pid"):
                    status.pid = Int32(truncatingIfNeeded: decimal(value))
                case (UInt8(ascii: "P"), 4) where matches(key, "PPid"):
                    status.ppid = Int32(truncatingIfNeeded: decimal(value))
                case (UInt8(ascii: "U"), 3) where matches(key, "Uid"): status.uid = decimals(value)
                case (UInt8(ascii: "G"), 3) where matches(key, "Gid"): status.gid = decimals(value)
                case (UInt8(ascii: "C"), 6) where matches(key, "CapInh"): status.capInh = hexadecimal(value)
                case (UInt8(ascii: "C"), 6) where matches(key, "CapPrm"): status.capPrm = hexadecimal(value)
                case (UInt8(ascii: "C"), 6) where matches(key, "CapEff"): status.capEff = hexadecimal(value)
                case (UInt8(ascii: "C"), 6) where matches(key, "CapBnd"): status.capBnd = hexadecimal(value)
                case (UInt8(ascii: "C"), 6) where matches(key, "CapAmb"): status.capAmb = hexadecimal(value)
                case (UInt8(ascii: "N"), 10) where matches(key, "NoNewPrivs"): status.noNewPrivs = Int(decimal(value))
                case (UInt8(ascii: "S"), 7) where matches(key, "Seccomp"): status.seccomp = Int(decimal(value))
                case (UInt8(ascii: "S"), 15) where matches(key, "Seccomp_filters"):
                    status.seccompFilters = Int(decimal(value))
                case (UInt8(ascii: "T"), 7) where matches(key, "Threads"): status.threads = Int(decimal(value))
                default: continue
                }
            }
        }
        return status
    }

    private static func matches(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        return memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0
    }

    /// The leading decimal number (0 when there is none).
    private static func decimal(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= 48 && byte <= 57 else { break }
            value = value &* 10 &+ UInt64(byte - 48)
        }
        return value
    }

    private static func hexadecimal(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var value: UInt64 = 0
        for byte in bytes {
            let digit: UInt8
            switch byte {
            case 48...57: digit = byte - 48
            case 97...102: digit = byte - 87
            case 65...70: digit = byte - 55
            default: return value
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    /// Whitespace-separated decimal numbers (`Uid:` and `Gid:` list real, effective, saved, fs ids).
    private static func decimals(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt32] {
        var result: [UInt32] = []
        var value: UInt32 = 0
        var inNumber = false
        for byte in bytes {
            if byte >= 48 && byte <= 57 {
                value = value &* 10 &+ UInt32(byte - 48)
                inNumber = true
            } else if inNumber {
                result.append(value)
                value = 0
                inNumber = false
            }
        }
        if inNumber { result.append(value) }
        return result
    }

    /// Parses `/proc/PID/stat`; nil when the line is malformed.
    ///
    /// The command name is split off at the last `)`: a process may name itself `a) (b` and the
    /// fields after it are numbers only, so the last parenthesis is the only reliable delimiter.
    public static func parseStat(_ text: String) -> StatFields? {
        var text = text
        return text.withUTF8 { bytes -> StatFields? in
            guard let open = bytes.firstIndex(of: UInt8(ascii: "(")),
                let close = bytes.lastIndex(of: UInt8(ascii: ")")), open < close
            else { return nil }
            // Fields from 3 (state) on, as byte ranges; index 0 here is field 3 in proc(5). Only the
            // first 20 are needed (starttime is field 22).
            var fields: [Range<Int>] = []
            fields.reserveCapacity(20)
            var index = close + 1
            while index < bytes.count, fields.count < 20 {
                while index < bytes.count, bytes[index] == 32 || bytes[index] == 10 { index += 1 }
                let start = index
                while index < bytes.count, bytes[index] != 32, bytes[index] != 10 { index += 1 }
                if start < index { fields.append(start..<index) }
            }
            guard fields.count == 20 else { return nil }
            func number(_ field: Int) -> Int64? {
                let range = fields[field]
                var negative = false
                var value: Int64 = 0
                for offset in range {
                    let byte = bytes[offset]
                    if offset == range.lowerBound, byte == UInt8(ascii: "-") {
                        negative = true
                        continue
                    }
                    guard byte >= 48 && byte <= 57 else { return nil }
                    value = value &* 10 &+ Int64(byte - 48)
                }
                return negative ? -value : value
            }
            guard let ppid = number(1), let pgrp = number(2), let utime = number(11), let stime = number(12),
                let threads = number(17), let start = number(19)
            else { return nil }
            return StatFields(
                comm: String(decoding: UnsafeBufferPointer(rebasing: bytes[(open + 1)..<close]), as: UTF8.self),
                state: String(decoding: UnsafeBufferPointer(rebasing: bytes[fields[0]]), as: UTF8.self),
                ppid: Int32(truncatingIfNeeded: ppid), pgrp: Int32(truncatingIfNeeded: pgrp),
                utime: UInt64(max(0, utime)), stime: UInt64(max(0, stime)), startTime: UInt64(max(0, start)),
                numThreads: Int(threads))
        }
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
    /// The mount and network namespaces of a process (`mnt:[4026532301]`, `net:[4026532304]`).
    public static func namespaces(pid: Int32) -> (mount: String?, network: String?) {
        func link(_ name: String) -> String? {
            var buffer = [CChar](repeating: 0, count: 64)
            let length = retryingEINTR { readlink("/proc/\(pid)/ns/\(name)", &buffer, buffer.count - 1) }
            guard length > 0 else { return nil }
            return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return (link("mnt"), link("net"))
    }

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
        guard case .success(let fd) = System.open(path, O_RDONLY) else { return nil }
        defer { System.close(fd) }
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

    /// Calls `body` again while it fails with EINTR (a signal arrived, e.g. SIGCHLD from the run); -1 otherwise.
    /// The readers here only need to know that a read failed (the process is gone), not why.
    @inline(__always)
    static func retryingEINTR<T: FixedWidthInteger>(_ body: () -> T) -> T {
        switch valueOrErrno(body) {
        case .success(let value): return value
        case .failure: return -1
        }
    }
}
