import Foundation

public struct FaultSpecError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The short `--fault` syntax: `SYSCALL[:ERRNO][:path=GLOB][:process=NAME][:nth=N|:every|:probability=P][:delay=D]`.
public enum FaultSpec {
    public static func parse(_ spec: String) throws -> Fault {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let syscall = parts.first, !syscall.isEmpty else {
            throw FaultSpecError(message: "--fault \(spec): starts with the syscall name")
        }
        guard SyscallName.number(of: syscall) != nil else {
            let hint = closestNames(to: syscall, in: ["openat", "read", "write", "mkdirat", "execve", "clone3",
                                                      "pidfd_open", "unlinkat", "renameat2", "newfstatat", "statx"])
            throw FaultSpecError(message: "--fault \(spec): unknown syscall `\(syscall)`"
                + (hint.isEmpty ? "" : " (did you mean \(hint.joined(separator: ", "))?)"))
        }
        var fault = Fault(syscall: syscall, errno: nil)
        var when: Fault.When?
        for part in parts.dropFirst() {
            if part == "every" {
                when = .every
                continue
            }
            guard let equals = part.firstIndex(of: "=") else {
                guard let value = ErrnoName.value(of: part) else {
                    throw FaultSpecError(message: "--fault \(spec): `\(part)` is not an errno name or key=value")
                }
                fault.errno = value
                continue
            }
            let key = String(part[..<equals]), value = String(part[part.index(after: equals)...])
            switch key {
            case "path": fault.path = value
            case "process": fault.process = value
            case "nth":
                guard let n = Int(value), n >= 1 else { throw FaultSpecError(message: "--fault \(spec): nth must be ≥ 1") }
                when = .nth(n)
            case "probability":
                guard let p = Double(value), p >= 0, p <= 1 else {
                    throw FaultSpecError(message: "--fault \(spec): probability must be between 0 and 1")
                }
                when = .probability(p)
            case "delay":
                guard let d = parseDuration(value) else { throw FaultSpecError(message: "--fault \(spec): bad delay") }
                fault.delay = d
            case "errno":
                guard let e = ErrnoName.value(of: value) else {
                    throw FaultSpecError(message: "--fault \(spec): unknown errno `\(value)`")
                }
                fault.errno = e
            default:
                throw FaultSpecError(message: "--fault \(spec): unknown key `\(key)` (path, process, nth, every, probability, delay, errno)")
            }
        }
        if fault.errno == nil && fault.delay == nil {
            throw FaultSpecError(message: "--fault \(spec): give an errno (e.g. EACCES) or a delay")
        }
        fault.when = when ?? .every
        return fault
    }
}
